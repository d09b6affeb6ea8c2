"""LangGraph: checkpointers.

- :class:`ChatledgerSaver`: a ``BaseCheckpointSaver`` whose checkpoints live in chatledger's
  own tables (``graph_*``, on SQLite, PostgreSQL and MariaDB), and whose ``put`` also appends
  the thread's new messages to the chatledger conversation the thread is bound to, in the same
  transaction. Concurrent invocations of one thread do not lose turns: the later writer gets a
  :class:`CheckpointConflictError` it can retry.
- :func:`checkpointer_for`: LangGraph's official saver (SQLite, PostgreSQL, or MySQL/MariaDB
  through ``langgraph-checkpoint-mysql``) for chatledger's configuration, owning its
  connection and set up.

``docs/integrations/langgraph.md`` describes the thread binding, the concurrency behaviour and
how both compare with the official savers.
"""

from __future__ import annotations

from ._bridge import Runner, require

require("langgraph.checkpoint.base", "langgraph-checkpoint", "langgraph")

import contextlib  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from collections import OrderedDict  # noqa: E402
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence  # noqa: E402
from typing import Any, Final, Literal, overload  # noqa: E402

from langchain_core.messages import BaseMessage  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langgraph.checkpoint.base import (  # noqa: E402
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol  # noqa: E402
from sqlalchemy.engine import URL  # noqa: E402

from .. import _validate as check  # noqa: E402
from .._ops import checkpoints as _ckpt  # noqa: E402
from .._ops.checkpoints import CheckpointConflictError  # noqa: E402
from .._run.engine import prepare_sqlite_file  # noqa: E402
from .._validate import Id  # noqa: E402
from ..config import Config  # noqa: E402
from ..errors import ConfigurationError  # noqa: E402
from .langchain import prepare_messages  # noqa: E402

__all__ = [
    "FORK_KEY",
    "USER_KEY",
    "ChatledgerSaver",
    "CheckpointConflictError",
    "checkpointer_for",
]

#: ``configurable`` key: the chatledger user a new thread's conversation is created for.
USER_KEY: Final = "chatledger_user_id"
#: ``configurable`` key: accept a checkpoint whose parent is not the thread's newest one
#: (time travel: resuming or updating an older checkpoint starts a branch).
FORK_KEY: Final = "chatledger_fork"
#: Checkpoints read per round trip by ``list``.
_PAGE: Final = 50
#: Threads a saver remembers (see :class:`_Threads`), and message seqs per thread.
_THREADS: Final = 256
_LOGGED: Final = 20_000
#: A thread as the saver's memory keys it: (scope owner, acting user, thread id).
_ThreadKey = tuple[uuid.UUID | None, uuid.UUID | None, str]


class _Known:
    """What committed operations taught a saver about one thread."""

    __slots__ = ("logged", "thread")

    def __init__(self, thread: _ckpt.Thread) -> None:
        self.thread = thread
        #: Message id -> seq of the thread's messages known to be stored.
        self.logged: dict[str, int] = {}


class _Threads:
    """A saver's memory of threads: each one's binding and the seqs of its logged messages,
    learned from operations that committed (never inside a caller's transaction, which could
    still roll back). Both change only when the thread is deleted, and the statements that use
    them check they still hold (a deleted binding is seen, and the full path runs). The least
    recently used thread is forgotten beyond ``_THREADS``."""

    __slots__ = ("_items", "_lock")

    def __init__(self) -> None:
        self._items: OrderedDict[_ThreadKey, _Known] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _ThreadKey) -> _Known | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def learn(
        self, key: _ThreadKey, thread: _ckpt.Thread, logged: Mapping[str, int] | None = None
    ) -> None:
        with self._lock:
            known = self._items.get(key)
            if known is None or known.thread != thread:
                known = self._items[key] = _Known(thread)
            if logged and len(known.logged) < _LOGGED:
                known.logged.update(logged)
            self._items.move_to_end(key)
            while len(self._items) > _THREADS:
                self._items.popitem(last=False)

    def forget(self, thread_id: str) -> None:
        with self._lock:
            for key in [key for key in self._items if key[2] == thread_id]:
                del self._items[key]


class _Pages:
    """Where a ``list`` is: the page query's arguments, and how many checkpoints are left."""

    __slots__ = ("args", "done", "remaining")

    def __init__(self, args: dict[str, Any], limit: int | None) -> None:
        self.args = args
        self.remaining = limit
        self.done = limit is not None and limit <= 0

    def next_size(self) -> int | None:
        """The size of the next page (``None``: the listing is over). With a metadata filter
        pages stay full: rows that do not match do not count."""
        if self.done:
            return None
        if self.remaining is None or self.args["accept"] is not None:
            return _PAGE
        return max(1, min(_PAGE, self.remaining))

    def take(
        self, found: list[_ckpt.StoredCheckpoint], cursor: str | None
    ) -> list[_ckpt.StoredCheckpoint]:
        """The checkpoints of a page to return, moving past it."""
        if self.remaining is not None:
            found = found[: self.remaining]
            self.remaining -= len(found)
            self.done = self.remaining <= 0
        if cursor is None:
            self.done = True
        self.args["before"] = cursor
        return found


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


class ChatledgerSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer stored in chatledger's database, that logs the thread's
    messages in chatledger's message table in the same transaction as each checkpoint.

    ``ledger`` is a :class:`~chatledger.Ledger`, an :class:`~chatledger.AsyncLedger` or a user
    scope of either (then only that user's threads exist for the saver). Graphs run with
    ``invoke``/``stream`` use the sync methods, ``ainvoke``/``astream`` the async ones: on a
    ``Ledger`` both work (the async ones on a worker thread); on an ``AsyncLedger`` use the async
    ones (the sync ones work only from a thread other than the event loop's).

    **Threads and conversations.** Each thread is bound to one conversation on its first
    checkpoint: a thread id that is a conversation id (``str(conversation.id)``) binds to that
    conversation; any other thread id gets a new conversation, owned by the user scope's user,
    else by ``configurable["chatledger_user_id"]``, else by ``user_id`` (one of them is
    required). :meth:`conversation_id` tells which conversation a thread is bound to. Thread
    ids are per owner: two users may run the same thread id, each in a conversation of their
    own, and neither sees the other's checkpoints (an unscoped saver without a user reading a
    thread id that several users use raises :class:`~chatledger.ValidationError`).

    **Messages.** In the same transaction as each root-namespace checkpoint that changed
    ``messages_channel``, the channel's messages that the conversation does not hold yet (by
    LangChain message id, stored as ``idempotency_key``) are appended, with their usage columns
    (see :mod:`chatledger.integrations.langchain` for the mapping). The message log is
    append-only: messages removed from the state (``RemoveMessage``) stay logged, and a message
    edited in place under the same id is not logged again. ``messages_channel=None`` turns this
    off.

    **Concurrency.** With ``linear=True`` (the default) a checkpoint must extend its thread's
    history: its parent must be the newest checkpoint of its thread and namespace (or, for a
    checkpoint without a parent, the namespace must be empty). Otherwise another invocation
    wrote first, and :class:`CheckpointConflictError` (a :class:`~chatledger.ConflictError`) is
    raised: nothing of the put is written, and re-running the invocation starts from the new
    head, so no turn is lost. Puts of one thread are serialised on the conversation's row lock.
    Time travel (resuming or updating an older checkpoint) is a branch: allow it per call with
    ``configurable["chatledger_fork"] = True``. ``linear=False`` accepts every put, as the
    official savers do (and then, like them, concurrent invocations overwrite each other's
    turns).
    """

    def __init__(
        self,
        ledger: object,
        *,
        user_id: Id | None = None,
        messages_channel: str | None = "messages",
        linear: bool = True,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._runner = Runner(ledger)
        self.user_id = None if user_id is None else check.identifier("user_id", user_id)
        self.messages_channel = messages_channel
        self.linear = linear
        self._threads = _Threads()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} linear={self.linear} store={self._runner.store!r}>"

    # -- serialisation ------------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The version after ``current``: a zero-padded counter and a random fraction, as the
        official PostgreSQL saver makes them (they sort as strings)."""
        # Versions made by another saver may be integers.
        number = 0 if current is None else int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    def _decode(self, kind: str, data: bytes) -> dict[str, Any]:
        decoded: dict[str, Any] = self.serde.loads_typed((kind, data))
        return decoded

    def _prepare(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> _ckpt.NewCheckpoint:
        conf = config["configurable"]
        thread_id, checkpoint_ns = _ckpt.check_keys(
            conf.get("thread_id"), conf.get("checkpoint_ns", "")
        )
        _ckpt.check_blob_keys(checkpoint["id"], new_versions)
        stored: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = stored.pop("channel_values", None) or {}
        blobs: list[tuple[str, str, str, bytes | None]] = []
        for channel, version in new_versions.items():
            if channel in values:
                kind, data = self.serde.dumps_typed(values[channel])
                blobs.append((channel, str(version), kind, data))
            else:
                blobs.append((channel, str(version), "empty", None))
        kind, data = self.serde.dumps_typed(stored)
        metadata_kind, metadata_data = self.serde.dumps_typed(
            get_serializable_checkpoint_metadata(config, metadata)
        )
        logged: list[tuple[str, Any]] = []
        chat = self.messages_channel
        if checkpoint_ns == "" and chat is not None and chat in new_versions:
            value = values.get(chat)
            if isinstance(value, list):
                logged = [
                    (m.id, m) for m in value if isinstance(m, BaseMessage) and isinstance(m.id, str)
                ]
        user = conf.get(USER_KEY)
        return _ckpt.NewCheckpoint(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=conf.get("checkpoint_id"),
            type=kind,
            checkpoint=data,
            metadata_type=metadata_kind,
            metadata=metadata_data,
            blobs=blobs,
            messages=logged,
            prepare=self._prepare_messages,
            allow_fork=not self.linear or bool(conf.get(FORK_KEY)),
            user_id=self.user_id if user is None else check.identifier(USER_KEY, user),
        )

    def _prepare_messages(self, messages: Sequence[Any]) -> list[Any]:
        return prepare_messages(self._runner.store.limits, messages)

    def _hint(self, key: _ThreadKey) -> _ckpt.Thread | None:
        known = self._threads.get(key)
        return None if known is None else known.thread

    def _put_args(self, new: _ckpt.NewCheckpoint) -> tuple[_ThreadKey, tuple[Any, ...]]:
        """The thread's key in the saver's memory, and the arguments of ``_ops`` ``put``."""
        key = (self._runner.owner, new.user_id, new.thread_id)
        known = self._threads.get(key)
        hint, logged = (None, None) if known is None else (known.thread, known.logged)
        return key, (self._runner.owner, new, self._runner.max_batch, hint, logged)

    def _learn(
        self,
        key: _ThreadKey,
        committed: bool,
        thread: _ckpt.Thread | None,
        logged: Mapping[str, int] | None = None,
    ) -> None:
        """Remember what an operation learned, if it committed (it did not run in a caller's
        transaction)."""
        if committed and thread is not None:
            self._threads.learn(key, thread, logged)

    def _writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> tuple[_ThreadKey, dict[str, Any]]:
        """The thread's key in the saver's memory, and the keyword arguments of
        ``_ops.checkpoints.put_writes``."""
        conf = config["configurable"]
        thread_id, checkpoint_ns = _ckpt.check_keys(
            conf.get("thread_id"), conf.get("checkpoint_ns", "")
        )
        rows = []
        for idx, (channel, value) in enumerate(writes):
            kind, data = self.serde.dumps_typed(value)
            rows.append((WRITES_IDX_MAP.get(channel, idx), channel, kind, data))
        _ckpt.check_task(task_id, [kind for _, _, kind, _ in rows])
        user = self._user(conf)
        return (self._runner.owner, user, thread_id), {
            "owner": self._runner.owner,
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": conf["checkpoint_id"],
            "task_id": task_id,
            "task_path": task_path,
            "writes": rows,
            "replace": all(channel in WRITES_IDX_MAP for channel, _ in writes),
            "user_id": user,
        }

    def _quick_writes(self, key: _ThreadKey, arguments: dict[str, Any]) -> tuple[Any, ...] | None:
        """The arguments of ``_ops`` ``insert_writes`` when the writes can take that path (a
        remembered binding, ordinary writes), else ``None``."""
        thread = self._hint(key)
        if thread is None or arguments["replace"] or not arguments["writes"]:
            return None
        return (
            thread,
            *(arguments[name] for name in ("checkpoint_ns", "checkpoint_id", "task_id")),
            arguments["task_path"],
            arguments["writes"],
        )

    def _tuple(self, stored: _ckpt.StoredCheckpoint) -> CheckpointTuple:
        loads = self.serde.loads_typed
        checkpoint: Any = {
            **stored.checkpoint,
            "channel_values": {
                channel: loads((kind, blob))
                for channel, kind, blob in stored.values
                if kind != "empty" and blob is not None
            },
        }
        parent = stored.parent_checkpoint_id
        return CheckpointTuple(
            config=_config(stored.thread_id, stored.checkpoint_ns, stored.checkpoint_id),
            checkpoint=checkpoint,
            metadata=loads((stored.metadata_type, stored.metadata)),
            parent_config=(
                None if parent is None else _config(stored.thread_id, stored.checkpoint_ns, parent)
            ),
            pending_writes=[
                (task_id, channel, loads((kind, blob or b"")))
                for task_id, channel, kind, blob in stored.writes
            ],
        )

    def _get_args(self, config: RunnableConfig) -> tuple[Any, ...]:
        conf = config["configurable"]
        thread_id, checkpoint_ns = _ckpt.check_keys(
            conf.get("thread_id"), conf.get("checkpoint_ns", "")
        )
        user = self._user(conf)
        return (
            self._runner.owner,
            thread_id,
            checkpoint_ns,
            get_checkpoint_id(config),
            self._decode,
            user,
            self._hint((self._runner.owner, user, thread_id)),
        )

    def _user(self, conf: Mapping[str, Any] | None) -> uuid.UUID | None:
        """The acting user: ``configurable["chatledger_user_id"]``, else the saver's."""
        user = None if conf is None else conf.get(USER_KEY)
        return self.user_id if user is None else check.identifier(USER_KEY, user)

    def _list_args(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
    ) -> dict[str, Any]:
        conf: dict[str, Any] = dict((config or {}).get("configurable") or {})
        thread_id = conf.get("thread_id")
        checkpoint_ns = conf.get("checkpoint_ns") if "checkpoint_ns" in conf else None
        if thread_id is not None:
            thread_id, _ = _ckpt.check_keys(str(thread_id), "")
        if checkpoint_ns is not None:
            _, checkpoint_ns = _ckpt.check_keys("", checkpoint_ns)
        wanted = dict(filter or {})
        accept = None
        if wanted:

            def accept(kind: str, data: bytes) -> bool:
                metadata = self.serde.loads_typed((kind, data))
                return all(metadata.get(key) == value for key, value in wanted.items())

        return {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": conf.get("checkpoint_id"),
            "before": None if before is None else get_checkpoint_id(before),
            "decode": self._decode,
            "accept": accept,
            "user_id": self._user(conf),
        }

    # -- sync ---------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``), or the thread's newest."""
        stored = self._runner.call(_ckpt.get, *self._get_args(config))
        return None if stored is None else self._tuple(stored)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (every thread the store sees when
        ``None``) and namespace (all when not given), whose metadata has ``filter``'s items,
        older than ``before``; at most ``limit``. Read in pages of 50."""
        pages = _Pages(self._list_args(config, filter, before), limit)
        while (size := pages.next_size()) is not None:
            page = self._runner.call(_ckpt.page, self._runner.owner, limit=size, **pages.args)
            for stored in pages.take(*page):
                yield self._tuple(stored)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and append its new messages, in one transaction; raises
        :class:`CheckpointConflictError` when another run extended the thread first."""
        new = self._prepare(config, checkpoint, metadata, new_versions)
        key, args = self._put_args(new)
        committed = not self._runner.in_transaction
        done = self._runner.call(_ckpt.put, *args, write=True)
        self._learn(key, committed, done.thread, done.logged)
        return _config(new.thread_id, new.checkpoint_ns, new.checkpoint_id)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes against the checkpoint ``config`` names."""
        key, arguments = self._writes(config, writes, task_id, task_path)
        quick = self._quick_writes(key, arguments)
        # One statement: on PostgreSQL in autocommit, one round trip.
        if quick is not None and self._runner.call(
            _ckpt.insert_writes, *quick, write=True, single=True
        ):
            return
        committed = not self._runner.in_transaction
        bound = self._runner.call(_ckpt.put_writes, **arguments, write=True)
        self._learn(key, committed, bound)

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints and writes (its conversation and messages stay)."""
        self._threads.forget(str(thread_id))
        self._runner.call(
            _ckpt.delete_thread, self._runner.owner, str(thread_id), self.user_id, write=True
        )

    def conversation_id(self, thread_id: str) -> uuid.UUID | None:
        """The conversation the thread is bound to (``None`` before its first checkpoint)."""
        bound = self._runner.call(_ckpt.thread, self._runner.owner, str(thread_id), self.user_id)
        return None if bound is None else bound.conversation_id

    # -- async --------------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``), or the thread's newest."""
        stored = await self._runner.acall(_ckpt.get, *self._get_args(config))
        return None if stored is None else self._tuple(stored)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first (see :meth:`list`)."""
        pages = _Pages(self._list_args(config, filter, before), limit)
        while (size := pages.next_size()) is not None:
            page = await self._runner.acall(
                _ckpt.page, self._runner.owner, limit=size, **pages.args
            )
            for stored in pages.take(*page):
                yield self._tuple(stored)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and append its new messages, in one transaction (see
        :meth:`put`)."""
        new = self._prepare(config, checkpoint, metadata, new_versions)
        key, args = self._put_args(new)
        committed = not self._runner.in_transaction
        done = await self._runner.acall(_ckpt.put, *args, write=True)
        self._learn(key, committed, done.thread, done.logged)
        return _config(new.thread_id, new.checkpoint_ns, new.checkpoint_id)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes against the checkpoint ``config`` names."""
        key, arguments = self._writes(config, writes, task_id, task_path)
        quick = self._quick_writes(key, arguments)
        if quick is not None and await self._runner.acall(
            _ckpt.insert_writes, *quick, write=True, single=True
        ):
            return
        committed = not self._runner.in_transaction
        bound = await self._runner.acall(_ckpt.put_writes, **arguments, write=True)
        self._learn(key, committed, bound)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints and writes (its conversation and messages stay)."""
        self._threads.forget(str(thread_id))
        await self._runner.acall(
            _ckpt.delete_thread, self._runner.owner, str(thread_id), self.user_id, write=True
        )

    async def aconversation_id(self, thread_id: str) -> uuid.UUID | None:
        """The conversation the thread is bound to (``None`` before its first checkpoint)."""
        bound = await self._runner.acall(
            _ckpt.thread, self._runner.owner, str(thread_id), self.user_id
        )
        return None if bound is None else bound.conversation_id


# -- the official savers --------------------------------------------------------------------------


def _url_of(source: object) -> URL:
    """The database URL of a configuration, URL string, ledger or ``None`` (the default
    configuration)."""
    if isinstance(source, Config):
        return source.url
    config = getattr(source, "config", None)
    if isinstance(config, Config):
        return config.url
    if source is None or isinstance(source, str | URL):
        return Config.load(source).url
    raise TypeError(f"expected a Config, URL, ledger or None, not {type(source).__name__}")


def _kind(url: URL) -> str:
    name = url.get_backend_name()
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name in ("sqlite", "postgresql"):
        return name
    raise ConfigurationError(f"no LangGraph saver for {name} databases")


def _sqlite_path(url: URL) -> str:
    """The file of an SQLite URL, its directory created as chatledger's own open does."""
    try:
        prepare_sqlite_file(url)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the directory of the SQLite database {url.database}: {exc.strerror}"
        ) from exc
    return url.database or ":memory:"


def _postgres_conninfo(url: URL) -> str:
    """A libpq URI (psycopg's connection string) for a SQLAlchemy PostgreSQL URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _mysql_arguments(url: URL) -> dict[str, Any]:
    """PyMySQL/aiomysql connection arguments for a SQLAlchemy MySQL/MariaDB URL (from the URL's
    parts, so passwords with reserved characters survive)."""
    arguments: dict[str, Any] = {
        "host": url.host or "localhost",
        "user": url.username,
        "password": url.password or "",
        "db": url.database,
        "port": url.port or 3306,
        "autocommit": True,
    }
    socket = url.query.get("unix_socket")
    if isinstance(socket, str):
        arguments["unix_socket"] = socket
    return arguments


@contextlib.contextmanager
def _sync_saver(url: URL) -> Iterator[BaseCheckpointSaver[Any]]:
    kind = _kind(url)
    if kind == "sqlite":
        require("langgraph.checkpoint.sqlite", "langgraph-checkpoint-sqlite", "langgraph")
        from langgraph.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(_sqlite_path(url)) as saver:
            saver.setup()
            yield saver
    elif kind == "postgresql":
        require("langgraph.checkpoint.postgres", "langgraph-checkpoint-postgres", "langgraph")
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(_postgres_conninfo(url)) as saver:
            saver.setup()
            yield saver
    else:
        require("langgraph.checkpoint.mysql.pymysql", "langgraph-checkpoint-mysql", "langgraph")
        import pymysql
        from langgraph.checkpoint.mysql.pymysql import PyMySQLSaver

        arguments = _mysql_arguments(url)
        arguments["database"] = arguments.pop("db")  # PyMySQL deprecates "db"; aiomysql wants it
        with pymysql.connect(**arguments) as conn:
            mysql_saver = PyMySQLSaver(conn)
            mysql_saver.setup()
            yield mysql_saver


@contextlib.asynccontextmanager
async def _async_saver(url: URL) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    kind = _kind(url)
    if kind == "sqlite":
        require("langgraph.checkpoint.sqlite.aio", "aiosqlite", "langgraph")
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(_sqlite_path(url)) as saver:
            await saver.setup()
            yield saver
    elif kind == "postgresql":
        require("langgraph.checkpoint.postgres.aio", "langgraph-checkpoint-postgres", "langgraph")
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(_postgres_conninfo(url)) as pg_saver:
            await pg_saver.setup()
            yield pg_saver
    else:
        require("langgraph.checkpoint.mysql.aio", "langgraph-checkpoint-mysql", "langgraph")
        import aiomysql
        from langgraph.checkpoint.mysql.aio import AIOMySQLSaver

        conn = await aiomysql.connect(**_mysql_arguments(url))
        try:
            mysql_saver = AIOMySQLSaver(conn)
            await mysql_saver.setup()
            yield mysql_saver
        finally:
            conn.close()


@overload
def checkpointer_for(
    source: object = None, *, async_: Literal[False] = False
) -> contextlib.AbstractContextManager[BaseCheckpointSaver[Any]]: ...


@overload
def checkpointer_for(
    source: object = None, *, async_: Literal[True]
) -> contextlib.AbstractAsyncContextManager[BaseCheckpointSaver[Any]]: ...


def checkpointer_for(
    source: object = None, *, async_: bool = False
) -> (
    contextlib.AbstractContextManager[BaseCheckpointSaver[Any]]
    | contextlib.AbstractAsyncContextManager[BaseCheckpointSaver[Any]]
):
    """LangGraph's official saver for chatledger's database configuration, as a context
    manager that opens its own connection, runs the saver's ``setup()`` (creating its tables),
    and closes the connection on exit.

    ``source`` is a :class:`~chatledger.config.Config`, a database URL (SQLAlchemy form, as
    chatledger takes it), a ledger (its configuration), or ``None`` (``Config.load()``: the
    environment, the configuration file, the default SQLite file). The saver is
    ``SqliteSaver``/``AsyncSqliteSaver``, ``PostgresSaver``/``AsyncPostgresSaver``, or
    ``PyMySQLSaver``/``AIOMySQLSaver`` for MySQL and MariaDB (``async_=True`` for the async
    one, entered with ``async with``).

    LangGraph's SQLite savers use Python's own ``sqlite3``. With chatledger's bundled SQLite
    (the ``sqlite`` extra) that is a second copy of SQLite in the process, and two copies must
    not open the same file (each ignores the other's locks): give the saver a file of its own
    (a URL or ``Config`` naming another file), or use :class:`ChatledgerSaver`."""
    url = _url_of(source)
    _kind(url)
    return _async_saver(url) if async_ else _sync_saver(url)
