"""The peers, used the way an app uses them, each on its own scratch database:

- ``langchain-sql``: LangChain ``SQLChatMessageHistory`` (langchain-community) on a SQLAlchemy
  engine (SQLite, PostgreSQL; MariaDB too, since it is plain SQLAlchemy);
- ``langchain-postgres``: ``PostgresChatMessageHistory`` on a psycopg connection (PostgreSQL);
- ``langgraph``: a minimal ``StateGraph`` (a ``messages`` channel with ``add_messages``, one
  node returning one ``AIMessage``) checkpointed by ``SqliteSaver`` / ``PostgresSaver``;
  one turn = ``invoke`` with one ``HumanMessage`` = 2 messages stored;
- ``langgraph-chatledger``: the same graph checkpointed by chatledger's own
  ``ChatledgerSaver`` on a ``Ledger`` (all three backends; append only: the saver row, per
  turn against the official saver's).

Durability is the same as for chatledger: SQLite connections get WAL and synchronous=NORMAL
(set here on the peers' engines and connections), PostgreSQL runs with the server defaults.
A peer that is not installed, or cannot do a workload, raises :class:`NotAvailable`.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Final

import sqlalchemy as sa

from .data import Msg, message
from .databases import Scratch
from .harness import NotAvailable

__all__ = ["PEERS", "Peer", "peer_class"]

_SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
)


def _require(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise NotAvailable(f"{module} is not installed (pip install -e '.[bench]')")


def _installed(*modules: str) -> str | None:
    """Why a peer cannot run (a missing module), or None."""
    try:
        _require(*modules)
    except NotAvailable as exc:
        return str(exc)
    return None


@functools.cache
def _to_langchain(msg: Msg) -> Any:
    from langchain_core.messages import AIMessage, HumanMessage

    if msg.role == "user":
        return HumanMessage(content=msg.content)
    return AIMessage(
        content=msg.content,
        response_metadata={"model_name": msg.model, "latency_ms": msg.latency_ms},
        usage_metadata={
            "input_tokens": msg.input_tokens or 0,
            "output_tokens": msg.output_tokens or 0,
            "total_tokens": (msg.input_tokens or 0) + (msg.output_tokens or 0),
        },
    )


@functools.cache
def _as_json(msg: Msg) -> str:
    from langchain_core.messages import message_to_dict

    return json.dumps(message_to_dict(_to_langchain(msg)))


class Peer:
    """Base of the peers: one per scratch database."""

    system: ClassVar[str]
    backends: ClassVar[tuple[str, ...]]
    modules: ClassVar[tuple[str, ...]]
    surface: ClassVar[str] = "sync"
    #: Messages stored by one append call.
    units_per_append: ClassVar[int] = 1
    note: ClassVar[str | None] = None
    sidebar_reason: ClassVar[str]
    #: The workloads it runs (``None``: every one).
    workloads: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def unavailable(cls, backend: str, workload: str | None = None) -> str | None:
        """Why this peer cannot run on ``backend`` (or that ``workload`` there), or None."""
        if backend not in cls.backends:
            return f"{cls.system} has no {backend} backend"
        if workload is not None and cls.workloads is not None and workload not in cls.workloads:
            return f"{cls.system} is measured on {', '.join(cls.workloads)} only"
        return _installed(*cls.modules)

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch

    def append(self, conversation_id: uuid.UUID, msg: Msg) -> object:
        raise NotImplementedError

    def last(self, conversation_id: uuid.UUID) -> Sequence[Any]:
        raise NotImplementedError

    def sidebar(self, owner_id: uuid.UUID) -> Sequence[Any]:
        raise NotAvailable(self.sidebar_reason)

    def bulk(self, conversation_id: uuid.UUID, batch: Sequence[Msg]) -> None:
        raise NotImplementedError

    def load(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        """Store ``messages_each`` messages in each conversation (untimed, fastest path)."""
        raise NotImplementedError

    def count(self, conversation_id: uuid.UUID) -> int:
        """How many messages the conversation holds (checks after concurrency)."""
        raise NotImplementedError

    def clone(self) -> Peer:
        """Another client on the same database (one per thread)."""
        return type(self)(self.scratch)

    def close(self) -> None:
        pass


class LangChainSQL(Peer):
    """``SQLChatMessageHistory``: one ``message_store`` table (id, session_id, message JSON).
    History objects are cached per session (the best case: an app building one per request
    also pays its ``create_all`` check)."""

    system = "langchain-sql"
    backends = ("sqlite", "postgresql", "mariadb")
    modules = ("langchain_community", "langchain_core")
    note = "SQLChatMessageHistory; no index on session_id; reads load the whole session"
    sidebar_reason = "sessions are bare ids: no owner, no conversation list by activity"

    def __init__(self, scratch: Scratch, engine: sa.Engine | None = None) -> None:
        super().__init__(scratch)
        self.own_engine = engine is None
        self.engine = engine if engine is not None else self._engine(scratch)
        self._histories: dict[uuid.UUID, Any] = {}
        if self.own_engine:
            self.history(uuid.UUID(int=0))  # creates the table (racing threads would not)

    @staticmethod
    def _engine(scratch: Scratch) -> sa.Engine:
        engine = sa.create_engine(scratch.url_string)
        if scratch.backend == "sqlite":

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                for pragma in _SQLITE_PRAGMAS:
                    cursor.execute(pragma)
                cursor.close()

        return engine

    def history(self, conversation_id: uuid.UUID) -> Any:
        found = self._histories.get(conversation_id)
        if found is None:
            from langchain_community.chat_message_histories import SQLChatMessageHistory

            found = SQLChatMessageHistory(
                session_id=str(conversation_id),
                connection=self.engine,
                table_name="message_store",
            )
            self._histories[conversation_id] = found
        return found

    def append(self, conversation_id: uuid.UUID, msg: Msg) -> object:
        self.history(conversation_id).add_message(_to_langchain(msg))
        return None

    def last(self, conversation_id: uuid.UUID) -> Sequence[Any]:
        messages: list[Any] = self.history(conversation_id).messages
        return messages[-20:]

    def bulk(self, conversation_id: uuid.UUID, batch: Sequence[Msg]) -> None:
        self.history(conversation_id).add_messages([_to_langchain(msg) for msg in batch])

    def count(self, conversation_id: uuid.UUID) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM message_store WHERE session_id = :s"),
                    {"s": str(conversation_id)},
                ).scalar_one()
            )

    def load(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        self.history(conversations[0])  # creates the table
        rows = (
            (str(conversation), _as_json(message(i)))
            for conversation in conversations
            for i in range(messages_each)
        )
        _bulk_insert(self.engine, "message_store", ("session_id", "message"), rows)

    def clone(self) -> Peer:
        return LangChainSQL(self.scratch, self.engine)

    def close(self) -> None:
        for history in self._histories.values():
            history.session_maker.remove()
        if self.own_engine:
            self.engine.dispose()


def _bulk_insert(engine: sa.Engine, table: str, columns: tuple[str, ...], rows: Any) -> None:
    """Load rows with the fastest path: COPY on PostgreSQL, else executemany in batches."""
    with engine.begin() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.close()
            return
        mark = "?" if engine.dialect.name == "sqlite" else "%s"
        marks = ", ".join([mark] * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        batch: list[Any] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= 20_000:
                cursor.executemany(sql, batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)
        cursor.close()


class LangChainPostgres(Peer):
    """``PostgresChatMessageHistory`` (langchain-postgres) on one psycopg connection, as its
    documentation shows: a table (id serial, session_id uuid indexed, message jsonb)."""

    system = "langchain-postgres"
    backends = ("postgresql",)
    modules = ("langchain_postgres", "langchain_core")
    note = "PostgresChatMessageHistory; reads load the whole session"
    sidebar_reason = "sessions are bare ids: no owner, no conversation list by activity"
    TABLE: ClassVar[str] = "chat_history"

    def __init__(self, scratch: Scratch) -> None:
        super().__init__(scratch)
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        self.conn = psycopg.connect(scratch.psycopg_conninfo())
        PostgresChatMessageHistory.create_tables(self.conn, self.TABLE)
        self._histories: dict[uuid.UUID, Any] = {}

    def history(self, conversation_id: uuid.UUID) -> Any:
        found = self._histories.get(conversation_id)
        if found is None:
            from langchain_postgres import PostgresChatMessageHistory

            found = PostgresChatMessageHistory(
                self.TABLE, str(conversation_id), sync_connection=self.conn
            )
            self._histories[conversation_id] = found
        return found

    def append(self, conversation_id: uuid.UUID, msg: Msg) -> object:
        self.history(conversation_id).add_messages([_to_langchain(msg)])
        return None

    def last(self, conversation_id: uuid.UUID) -> Sequence[Any]:
        messages: list[Any] = self.history(conversation_id).get_messages()
        return messages[-20:]

    def bulk(self, conversation_id: uuid.UUID, batch: Sequence[Msg]) -> None:
        self.history(conversation_id).add_messages([_to_langchain(msg) for msg in batch])

    def count(self, conversation_id: uuid.UUID) -> int:
        with self.conn.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*) FROM {self.TABLE} WHERE session_id = %s", (conversation_id,)
            )
            row = cursor.fetchone()
        self.conn.commit()
        return int(row[0]) if row else 0

    def load(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        with (
            self.conn.cursor() as cursor,
            cursor.copy(f"COPY {self.TABLE} (session_id, message) FROM STDIN") as copy,
        ):
            for conversation in conversations:
                for i in range(messages_each):
                    copy.write_row((conversation, _as_json(message(i))))
        self.conn.commit()
        self.conn.execute(f"ANALYZE {self.TABLE}")
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


class LangGraph(Peer):
    """A minimal LangGraph chat graph checkpointed in the database. One turn is
    ``graph.invoke({"messages": [HumanMessage]}, thread)``: the node answers with one
    ``AIMessage``, so a turn stores 2 messages (both counted in messages/s)."""

    system = "langgraph"
    backends: ClassVar[tuple[str, ...]] = ("sqlite", "postgresql")
    modules = ("langgraph", "langchain_core")
    units_per_append = 2
    note = "one turn = invoke(HumanMessage) -> node returns one AIMessage: 2 messages stored"
    sidebar_reason = "checkpoints are keyed by thread_id: no owner, no list by last activity"

    def __init__(self, scratch: Scratch) -> None:
        super().__init__(scratch)
        _require("langgraph.checkpoint.sqlite" if scratch.backend == "sqlite" else "langgraph")
        if scratch.backend == "postgresql":
            _require("langgraph.checkpoint.postgres")
        self.conn: Any
        self.saver: Any
        if scratch.backend == "sqlite":
            from langgraph.checkpoint.sqlite import SqliteSaver

            self.conn = sqlite3.connect(str(scratch.path), check_same_thread=False)
            for pragma in _SQLITE_PRAGMAS:
                self.conn.execute(pragma)
            self.saver = SqliteSaver(self.conn)
        else:
            import psycopg
            from langgraph.checkpoint.postgres import PostgresSaver
            from psycopg.rows import dict_row

            # What PostgresSaver.from_conn_string does.
            self.conn = psycopg.connect(
                scratch.psycopg_conninfo(),
                autocommit=True,
                prepare_threshold=0,
                row_factory=dict_row,
            )
            self.saver = PostgresSaver(self.conn)
        self.saver.setup()
        self.graph = _graph().compile(checkpointer=self.saver)

    @staticmethod
    def _config(conversation_id: uuid.UUID) -> dict[str, Any]:
        return {"configurable": {"thread_id": str(conversation_id)}}

    def append(self, conversation_id: uuid.UUID, msg: Msg) -> object:
        from langchain_core.messages import HumanMessage

        return self.graph.invoke(
            {"messages": [HumanMessage(content=msg.content)]}, self._config(conversation_id)
        )

    def last(self, conversation_id: uuid.UUID) -> Sequence[Any]:
        messages: list[Any] = self.graph.get_state(self._config(conversation_id)).values.get(
            "messages", []
        )
        return messages[-20:]

    def bulk(self, conversation_id: uuid.UUID, batch: Sequence[Msg]) -> None:
        self.graph.update_state(
            self._config(conversation_id),
            {"messages": [_to_langchain(msg) for msg in batch]},
            as_node="reply",
        )

    def count(self, conversation_id: uuid.UUID) -> int:
        return len(self.graph.get_state(self._config(conversation_id)).values.get("messages", []))

    def load(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        batch = [_to_langchain(message(i)) for i in range(messages_each)]
        for conversation in conversations:
            self.graph.update_state(
                self._config(conversation), {"messages": list(batch)}, as_node="reply"
            )

    def close(self) -> None:
        self.conn.close()


class LangGraphChatledger(LangGraph):
    """The graph of :class:`LangGraph` checkpointed by ``ChatledgerSaver`` on a ``Ledger`` of
    the scratch database (chatledger's schema): each turn also appends its two messages to
    the thread's conversation (made for the thread on its first turn) in the checkpoint's
    transaction. Measured on the append workload: the saver row, ms per turn against the
    official saver's."""

    system = "langgraph-chatledger"
    backends = ("sqlite", "postgresql", "mariadb")
    workloads = ("append",)
    note = "ChatledgerSaver: one turn = invoke -> 2 messages logged with the checkpoint"

    def __init__(self, scratch: Scratch) -> None:
        Peer.__init__(self, scratch)
        from chatledger import Ledger
        from chatledger.integrations.langgraph import ChatledgerSaver

        self.ledger = Ledger(scratch.url_string)
        self.ledger.open()
        owner = self.ledger.users.get_or_create("bench-saver").id
        self.saver = ChatledgerSaver(self.ledger, user_id=owner)
        self.graph = _graph().compile(checkpointer=self.saver)

    def close(self) -> None:
        self.ledger.close()


def _graph() -> Any:
    from ._chat_graph import builder

    return builder()


PEERS: Final[tuple[type[Peer], ...]] = (
    LangChainSQL,
    LangChainPostgres,
    LangGraph,
    LangGraphChatledger,
)


def peer_class(name: str) -> type[Peer]:
    for peer in PEERS:
        if peer.system == name:
            return peer
    raise KeyError(name)
