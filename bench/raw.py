"""The raw-driver references: stdlib sqlite3, psycopg 3 and PyMySQL with hand-written SQL.

Two references, each on a database of its own (its own copy of the data, loaded the same way):

``raw`` (:class:`Raw`, "raw doing chatledger's work") does the same logical work as chatledger
on the tables chatledger created, trees included (docs/trees.md): a message hangs under the
conversation's active leaf, which it replaces.

- append (linear: under the active leaf while that is the newest message, as every append of
  the benchmark is): ``UPDATE conversations`` (count + 1, the new message becomes the active
  leaf, the active path one longer, activity times; RETURNING the new count and path length,
  or ``LAST_INSERT_ID(expr)`` on MariaDB), then ``INSERT`` the message with that count as
  ``seq``, ``seq - 1`` as its parent and the path length less one as its depth. PostgreSQL runs
  both as one autocommit statement (a writable CTE), as chatledger does; SQLite in
  ``BEGIN IMMEDIATE`` ... ``COMMIT``; MariaDB in one transaction, the insert reading the depth
  from the row the update locked. No more statements than chatledger's append on any backend.
- last(n): ``SELECT <columns> ... WHERE on_active_path ORDER BY seq DESC LIMIT n`` on
  ``ix_messages_active_path``; autocommit.
- sidebar: the same keyset query on ``(owner_id, last_activity_at, id)``; autocommit.
- bulk: one transaction: lock the conversation row, ``executemany`` (or ``COPY`` on
  PostgreSQL) the batch as a chain under the active leaf, set the counters.

``raw-bare`` (:class:`Bare`, the bare operation: the physical limit of a one-row-per-message
store) works on tables of the same shape (chatledger's columns and column types), with only
a plain index each: ``messages`` keyed by ``(conversation_id, seq)``, ``conversations`` by
``id`` plus ``(owner_id, last_activity_at, id)``; no other index, no constraint, no trigger:

- append: one autocommit ``INSERT`` of the message row (its ``seq`` from a counter in the
  process; parent and depth computed in Python), nothing else;
- last(n): ``SELECT <columns> ... WHERE conversation_id = ? ORDER BY seq DESC LIMIT n``;
- sidebar: ``SELECT <columns> FROM conversations WHERE owner_id = ? ORDER BY
  last_activity_at DESC, id DESC LIMIT 20`` (no status filter, no extra row);
- bulk: one transaction of ``executemany`` (``COPY`` on PostgreSQL) of the rows alone.

Values are passed in the form the column stores (SQLite: hex UUIDs, ISO text times, money as
integer billionths), so no system pays for a conversion the other skips on the way in. Rows
come back as the driver returns them: tuples, no records.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Final, cast

from uuid_utils.compat import uuid7

from .data import Msg, message
from .databases import Scratch

__all__ = [
    "REFERENCES",
    "Bare",
    "Raw",
    "RawMariaDB",
    "RawPostgres",
    "RawSQLite",
    "bare_for",
    "create_bare_tables",
    "raw_for",
]

MESSAGE_COLUMNS: Final = (
    "conversation_id",
    "seq",
    "id",
    "role",
    "content",
    "intent",
    "metadata",
    "model",
    "input_tokens",
    "output_tokens",
    "cost",
    "latency_ms",
    "request_id",
    "idempotency_key",
    "created_at",
    "parent_seq",
    "depth",
    "sibling_index",
    "on_active_path",
    "status",
    "status_reason",
    "cached_input_tokens",
    "reasoning_tokens",
)
CONVERSATION_COLUMNS: Final = (
    "id",
    "owner_id",
    "title",
    "intent",
    "status",
    "message_count",
    "last_message_at",
    "last_activity_at",
    "archived_at",
    "metadata",
    "created_at",
    "updated_at",
    "active_leaf_seq",
    "path_length",
    "forked_from_conversation_id",
    "forked_from_message_id",
)
#: What each raw reference does, per workload (recorded in every JSON result's ``meta``).
REFERENCES: Final[dict[str, dict[str, str]]] = {
    "raw-bare": {
        "what": "the bare operation, the physical limit of a one-row-per-message store, on its "
        "own database: tables with chatledger's columns and column types, messages keyed by "
        "(conversation_id, seq), conversations by id plus a plain (owner_id, "
        "last_activity_at, id) index; no other index, constraint or trigger",
        "append": "one autocommit INSERT of the message row (seq from a counter in the "
        "process), nothing else",
        "read": "SELECT <columns> FROM messages WHERE conversation_id = ? ORDER BY seq DESC "
        "LIMIT 20, autocommit",
        "sidebar": "SELECT <columns> FROM conversations WHERE owner_id = ? ORDER BY "
        "last_activity_at DESC, id DESC LIMIT 20, autocommit",
        "concurrency": "the bare append from 4 threads, a connection each",
        "bulk": "one transaction: executemany of the rows alone (COPY on PostgreSQL)",
    },
    "raw": {
        "what": "raw SQL doing chatledger's work (counters, trees, active path) on its own "
        "database with chatledger's schema (made by opening a Ledger), in no more statements "
        "than chatledger",
        "append": "UPDATE conversations (count + 1, active leaf, path length, activity "
        "times) RETURNING the count (LAST_INSERT_ID on MariaDB), then INSERT the message "
        "under the active leaf; one writable-CTE autocommit statement on PostgreSQL, "
        "BEGIN IMMEDIATE ... COMMIT on SQLite, one transaction on MariaDB",
        "read": "SELECT <columns> FROM messages WHERE conversation_id = ? AND on_active_path "
        "ORDER BY seq DESC LIMIT 20 (ix_messages_active_path), autocommit",
        "sidebar": "the keyset query of chatledger: status != 'deleted', LIMIT 21 (one extra "
        "row tells whether there is a next page), autocommit",
        "concurrency": "the raw append from 4 threads, a connection each",
        "bulk": "one transaction: lock the conversation row, executemany the batch as a "
        "chain under the active leaf, set the counters (raw-copy: COPY, PostgreSQL)",
    },
}
#: The position of ``depth`` in a message row.
_DEPTH: Final = MESSAGE_COLUMNS.index("depth")
_BASE_TIME: Final = datetime(2026, 1, 1, tzinfo=UTC)
_BILLION: Final = Decimal(10**9)


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


class Raw(ABC):
    """One connection (two on servers: a writer and an autocommit reader) to a scratch DB."""

    backend: ClassVar[str]
    #: The new count of ``UPDATE conversations``: RETURNING, or LAST_INSERT_ID on MariaDB.
    _COUNT: ClassVar[str] = "message_count + 1"
    _RETURNING: ClassVar[str] = " RETURNING message_count, path_length"
    #: The appended message's depth in its insert: a value, or (MariaDB, whose bump returns no
    #: path length) read from the conversation row the bump locked.
    _DEPTH_VALUE: ClassVar[str] = "%s"
    _LOCK: ClassVar[str] = " FOR UPDATE"
    _TRUE: ClassVar[str] = "1"
    #: One connection serves writes and reads (SQLite: outside BEGIN, reads autocommit).
    _ONE_CONNECTION: ClassVar[bool] = False

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch
        self.conn: Any = self.connect(autocommit=False)
        self.reader: Any = self.conn if self._ONE_CONNECTION else self.connect(autocommit=True)
        self.bump_sql = self._sql(self._bump(self._COUNT) + self._RETURNING)
        self.insert_sql = self._sql(
            f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
            f"VALUES ({_placeholders(len(MESSAGE_COLUMNS))})"
        )
        values = ["%s"] * len(MESSAGE_COLUMNS)
        values[_DEPTH] = self._DEPTH_VALUE
        self.append_sql = self._sql(
            f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) VALUES ({', '.join(values)})"
        )
        self.last_sql = self._sql(
            f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE conversation_id = %s "
            f"AND on_active_path = {self._TRUE} ORDER BY seq DESC LIMIT %s"
        )
        self.sidebar_sql = self._sql(
            f"SELECT {', '.join(CONVERSATION_COLUMNS)} FROM conversations "
            "WHERE owner_id = %s AND status != 'deleted' "
            "ORDER BY last_activity_at DESC, id DESC LIMIT %s"
        )
        self.lock_sql = self._sql(
            "SELECT status, message_count, active_leaf_seq, path_length FROM conversations "
            f"WHERE id = %s{self._LOCK}"
        )
        self.counters_sql = self._sql(
            "UPDATE conversations SET message_count = %s, active_leaf_seq = %s, "
            "path_length = %s, last_message_at = %s, last_activity_at = %s, updated_at = %s "
            "WHERE id = %s"
        )
        self.conversation_sql = self._sql(
            f"INSERT INTO conversations ({', '.join(CONVERSATION_COLUMNS)}) "
            f"VALUES ({_placeholders(len(CONVERSATION_COLUMNS))})"
        )

    @staticmethod
    def _bump(count: str) -> str:
        """``UPDATE conversations`` for one more message under the active leaf, while that is
        the newest message: the new message becomes the leaf, the path one longer. Parameters:
        the time five times, then the conversation id. (SET runs left to right with the
        assigned values on MariaDB, with the old row elsewhere: ``message_count`` is read
        before it is assigned, so both agree.)"""
        return (
            "UPDATE conversations SET active_leaf_seq = message_count + 1, "
            f"path_length = path_length + 1, message_count = {count}, "
            "last_message_at = CASE WHEN last_message_at IS NULL OR last_message_at < %s "
            "THEN %s ELSE last_message_at END, "
            "last_activity_at = CASE WHEN last_activity_at < %s THEN %s ELSE last_activity_at END, "
            "updated_at = %s "
            "WHERE id = %s AND status IN ('active', 'archived') "
            "AND (active_leaf_seq = message_count OR active_leaf_seq IS NULL)"
        )

    # -- the backend's dialect of values and statements ------------------------------------

    @abstractmethod
    def connect(self, *, autocommit: bool) -> Any:
        """A configured DBAPI connection."""

    def _sql(self, statement: str) -> str:
        return statement

    def uid(self, value: uuid.UUID) -> Any:
        return value

    def ts(self, value: datetime) -> Any:
        return value

    def money(self, value: Decimal | None) -> Any:
        return value

    def begin(self, cursor: Any) -> None:  # noqa: B027  (servers' drivers begin implicitly)
        """Start a write transaction (the drivers of servers begin implicitly)."""

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def bumped(self, cursor: Any, conversation: Any) -> tuple[int, Any] | None:
        """The new message's ``seq`` and the value of its depth in :attr:`append_sql`."""
        row = cursor.fetchone()
        return None if row is None else (int(row[0]), int(row[1]) - 1)

    def message_row(
        self,
        conversation: Any,
        seq: int,
        msg: Msg,
        created_at: Any,
        parent: int | None,
        depth: Any,
        ident: uuid.UUID | None = None,
    ) -> tuple[Any, ...]:
        """A message row in :data:`MESSAGE_COLUMNS` order: the first child of ``parent``, on
        the active path, completed."""
        return (
            conversation,
            seq,
            self.uid(ident or uuid7()),
            msg.role,
            msg.content,
            None,
            None,
            msg.model,
            msg.input_tokens,
            msg.output_tokens,
            self.money(msg.cost),
            msg.latency_ms,
            None,
            None,
            created_at,
            parent,
            depth,
            0,
            True,
            "completed",
            None,
            None,
            None,
        )

    # -- the timed operations ----------------------------------------------------------------

    def append(self, conversation_id: uuid.UUID, msg: Msg) -> int:
        """Bump the counter, insert the message with the new count as seq under the active
        leaf; one transaction."""
        now = self.ts(datetime.now(UTC))
        cursor = self.conn.cursor()
        try:
            self.begin(cursor)
            seq = self.append_in(cursor, conversation_id, msg, now)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        finally:
            cursor.close()
        return seq

    def append_in(self, cursor: Any, conversation_id: uuid.UUID, msg: Msg, now: Any) -> int:
        """:meth:`append`'s statements, in its transaction; the new message's ``seq``."""
        cid = self.uid(conversation_id)
        cursor.execute(self.bump_sql, (now, now, now, now, now, cid))
        bumped = self.bumped(cursor, cid)
        if bumped is None:
            raise LookupError(f"conversation {conversation_id} is missing, closed or branched")
        seq, depth = bumped
        parent = seq - 1 if seq > 1 else None
        cursor.execute(self.append_sql, self.message_row(cid, seq, msg, now, parent, depth))
        return seq

    def last(self, conversation_id: uuid.UUID, n: int = 20) -> list[Any]:
        """The last ``n`` messages, oldest first."""
        cursor = self.reader.cursor()
        try:
            cursor.execute(self.last_sql, (self.uid(conversation_id), n))
            rows = list(cursor.fetchall())
        finally:
            cursor.close()
        rows.reverse()
        return rows

    def sidebar(self, owner_id: uuid.UUID, limit: int = 20) -> list[Any]:
        """The first page of a user's conversations by last activity (one extra row tells
        whether there is a next page, as chatledger does)."""
        cursor = self.reader.cursor()
        try:
            cursor.execute(self.sidebar_sql, (self.uid(owner_id), limit + 1))
            return list(cursor.fetchall())[:limit]
        finally:
            cursor.close()

    def _bulk(self, conversation_id: uuid.UUID, batch: Sequence[Msg], *, copy: bool) -> None:
        now_dt = datetime.now(UTC)
        now = self.ts(now_dt)
        cid = self.uid(conversation_id)
        cursor = self.conn.cursor()
        try:
            self.begin(cursor)
            cursor.execute(self.lock_sql, (cid,))
            row = cursor.fetchone()
            if row is None or row[0] not in ("active", "archived"):
                raise LookupError(f"conversation {conversation_id} is missing or closed")
            count, leaf, path_length = int(row[1]), row[2], int(row[3])
            rows = []
            for i, msg in enumerate(batch):
                # A chain under the active leaf.
                seq = count + i + 1
                rows.append(self.message_row(cid, seq, msg, now, leaf, path_length + i))
                leaf = seq
            if copy:
                self.copy_rows(cursor, rows)
            else:
                cursor.executemany(self.insert_sql, rows)
            cursor.execute(
                self.counters_sql,
                (count + len(rows), leaf, path_length + len(rows), now, now, now, cid),
            )
            self.commit()
        except BaseException:
            self.rollback()
            raise
        finally:
            cursor.close()

    def bulk(self, conversation_id: uuid.UUID, batch: Sequence[Msg]) -> None:
        """Append a batch in one transaction with ``executemany``."""
        self._bulk(conversation_id, batch, copy=False)

    def bulk_copy(self, conversation_id: uuid.UUID, batch: Sequence[Msg]) -> None:
        """Append a batch in one transaction with ``COPY`` (PostgreSQL)."""
        self._bulk(conversation_id, batch, copy=True)

    def copy_rows(self, cursor: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError(f"no COPY on {self.backend}")

    # -- untimed setup and checks ------------------------------------------------------------

    def create_conversations(
        self,
        owner_id: uuid.UUID,
        count: int,
        *,
        messages_each: int = 0,
        spread: bool = False,
        ids: Sequence[uuid.UUID] | None = None,
    ) -> list[uuid.UUID]:
        """``count`` active conversations (with ``messages_each`` as their count, for stores
        loaded afterwards). ``spread`` gives them distinct activity times (the sidebar).
        ``ids``: the ids of another store's conversations (a copy of the same data)."""
        ids = list(ids) if ids is not None else [uuid7() for _ in range(count)]
        rows = []
        for index, ident in enumerate(ids):
            created = _BASE_TIME + timedelta(seconds=index)
            active = created + timedelta(seconds=(index * 7919) % 100_003) if spread else created
            rows.append(
                (
                    self.uid(ident),
                    self.uid(owner_id),
                    f"Conversation {index}",
                    None,
                    "active",
                    messages_each,
                    self.ts(active) if messages_each or spread else None,
                    self.ts(active),
                    None,
                    None,
                    self.ts(created),
                    self.ts(active),
                    messages_each or None,
                    messages_each,
                    None,
                    None,
                )
            )
        cursor = self.conn.cursor()
        try:
            self.begin(cursor)
            for start in range(0, len(rows), 5000):
                cursor.executemany(self.conversation_sql, rows[start : start + 5000])
            self.commit()
        finally:
            cursor.close()
        return ids

    def _store_rows(
        self, conversations: Sequence[uuid.UUID], messages_each: int
    ) -> Iterator[tuple[Any, ...]]:
        for number, conversation in enumerate(conversations):
            cid = self.uid(conversation)
            start = _BASE_TIME + timedelta(seconds=number)
            for seq in range(1, messages_each + 1):
                created = self.ts(start + timedelta(milliseconds=seq))
                parent = seq - 1 if seq > 1 else None
                # The id follows from the conversation's and seq: every copy of a store
                # holds the same rows.
                ident = uuid.UUID(int=conversation.int + seq)
                yield self.message_row(cid, seq, message(seq - 1), created, parent, seq - 1, ident)

    def load_messages(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        """Fill the conversations made by :meth:`create_conversations` (fastest path)."""
        cursor = self.conn.cursor()
        try:
            self.begin(cursor)
            batch: list[tuple[Any, ...]] = []
            for row in self._store_rows(conversations, messages_each):
                batch.append(row)
                if len(batch) >= 20_000:
                    cursor.executemany(self.insert_sql, batch)
                    batch.clear()
            if batch:
                cursor.executemany(self.insert_sql, batch)
            self.commit()
        finally:
            cursor.close()
        self.analyze()

    @abstractmethod
    def analyze(self) -> None:
        """Refresh the planner's statistics after a load."""

    def verify(self, conversation_id: uuid.UUID) -> tuple[list[int], int | None]:
        """The stored seqs of a conversation, and its message_count."""
        cursor = self.reader.cursor()
        try:
            cid = self.uid(conversation_id)
            cursor.execute(
                self._sql("SELECT seq FROM messages WHERE conversation_id = %s ORDER BY seq"),
                (cid,),
            )
            seqs = [int(row[0]) for row in cursor.fetchall()]
            cursor.execute(
                self._sql("SELECT message_count FROM conversations WHERE id = %s"), (cid,)
            )
            row = cursor.fetchone()
            return seqs, int(row[0]) if row else -1
        finally:
            cursor.close()

    def clone(self) -> Raw:
        """Another reference on the same database (a connection per thread)."""
        return type(self)(self.scratch)

    def close(self) -> None:
        self.conn.close()
        if self.reader is not self.conn:
            self.reader.close()


class RawSQLite(Raw):
    """stdlib sqlite3 in autocommit mode with explicit ``BEGIN IMMEDIATE`` for writes, as
    chatledger does; WAL, synchronous=NORMAL, foreign keys on, 10 s busy timeout."""

    backend = "sqlite"
    _LOCK = ""  # BEGIN IMMEDIATE already holds the write lock
    _ONE_CONNECTION = True

    def connect(self, *, autocommit: bool) -> Any:
        conn = sqlite3.connect(
            str(self.scratch.path), isolation_level=None, check_same_thread=False, timeout=10
        )
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=10000",
        ):
            conn.execute(pragma)
        return conn

    def _sql(self, statement: str) -> str:
        return statement.replace("%s", "?")

    def uid(self, value: uuid.UUID) -> Any:
        return value.hex

    def ts(self, value: datetime) -> Any:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def money(self, value: Decimal | None) -> Any:
        return None if value is None else int((value * _BILLION).to_integral_exact())

    def begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def analyze(self) -> None:
        self.conn.execute("ANALYZE")
        # A load leaves a WAL as big as the data: fold it in, so reads never consult it.
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class RawPostgres(Raw):
    """psycopg 3: a transaction per append (BEGIN is implicit), reads in autocommit."""

    backend = "postgresql"
    _TRUE = "true"
    #: The casts of the values a writable CTE selects (a bare parameter there would be text).
    _CASTS: ClassVar[dict[str, str]] = {
        "conversation_id": "uuid",
        "id": "uuid",
        "metadata": "jsonb",
        "input_tokens": "integer",
        "output_tokens": "integer",
        "cost": "numeric",
        "latency_ms": "integer",
        "created_at": "timestamptz",
        "sibling_index": "integer",
        "on_active_path": "boolean",
        "cached_input_tokens": "integer",
        "reasoning_tokens": "integer",
    }
    #: Computed from the bump's row in the writable CTE.
    _FROM_BUMP: ClassVar[dict[str, str]] = {
        "seq": "message_count",
        "parent_seq": "NULLIF(message_count - 1, 0)",
        "depth": "path_length - 1",
    }

    def __init__(self, scratch: Scratch) -> None:
        super().__init__(scratch)
        selected = [
            self._FROM_BUMP.get(name) or f"%s::{self._CASTS.get(name, 'text')}"
            for name in MESSAGE_COLUMNS
        ]
        # Bump and insert in one statement, in autocommit (its own transaction): one round
        # trip, as chatledger's append without idempotency key.
        self.bump_insert_sql = (
            f"WITH bump AS ({self._bump(self._COUNT)}{self._RETURNING}) "
            f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
            f"SELECT {', '.join(selected)} FROM bump RETURNING seq"
        )
        self._kept = [
            index for index, name in enumerate(MESSAGE_COLUMNS) if name not in self._FROM_BUMP
        ]

    def connect(self, *, autocommit: bool) -> Any:
        import psycopg

        return psycopg.connect(self.scratch.psycopg_conninfo(), autocommit=autocommit)

    def append(self, conversation_id: uuid.UUID, msg: Msg) -> int:
        """Bump and insert in one autocommit statement (a writable CTE)."""
        now = datetime.now(UTC)
        row = self.message_row(conversation_id, 0, msg, now, None, 0)
        params = (now, now, now, now, now, conversation_id, *(row[i] for i in self._kept))
        cursor = self.reader.cursor()
        try:
            cursor.execute(self.bump_insert_sql, params)
            inserted = cursor.fetchone()
        finally:
            cursor.close()
        if inserted is None:
            raise LookupError(f"conversation {conversation_id} is missing, closed or branched")
        return int(inserted[0])

    def copy_rows(self, cursor: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        with cursor.copy(f"COPY messages ({', '.join(MESSAGE_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def load_messages(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        cursor = self.conn.cursor()
        try:
            self.copy_rows(cursor, _Lazy(self._store_rows(conversations, messages_each)))
            self.conn.commit()
        finally:
            cursor.close()
        self.analyze()

    def analyze(self) -> None:
        self.reader.execute("VACUUM ANALYZE messages")
        self.reader.execute("VACUUM ANALYZE conversations")


class _Lazy(Sequence[tuple[Any, ...]]):
    """An iterator passed where a sequence of rows is expected (COPY streams it)."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self._rows

    def __len__(self) -> int:
        raise TypeError("a lazy row stream has no length")

    def __getitem__(self, index: Any) -> Any:
        raise TypeError("a lazy row stream cannot be indexed")


class RawMariaDB(Raw):
    """PyMySQL with chatledger's session settings (READ COMMITTED, strict sql_mode, UTC):
    the counter comes back through ``LAST_INSERT_ID(expr)``; reads in autocommit."""

    backend = "mariadb"
    _COUNT = "LAST_INSERT_ID(message_count + 1)"
    _RETURNING = ""
    _DEPTH_VALUE = "(SELECT path_length - 1 FROM conversations WHERE id = %s)"

    def connect(self, *, autocommit: bool) -> Any:
        import pymysql

        conn = pymysql.connect(autocommit=autocommit, **self.scratch.pymysql_kwargs())
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    def uid(self, value: uuid.UUID) -> Any:
        return str(value)

    def ts(self, value: datetime) -> Any:
        return value.astimezone(UTC).replace(tzinfo=None)

    def bumped(self, cursor: Any, conversation: Any) -> tuple[int, Any] | None:
        # The insert reads the depth from the locked row: its parameter is the id.
        return (int(cursor.lastrowid), conversation) if cursor.rowcount == 1 else None

    def append_in(self, cursor: Any, conversation_id: uuid.UUID, msg: Msg, now: Any) -> int:
        """As chatledger's unscoped append since revision 0015: one ``INSERT ... RETURNING``
        with ``seq`` 0, numbered (and the conversation bumped) by ``trg_messages_append``."""
        cursor.execute(
            self.numbered_sql, self.message_row(self.uid(conversation_id), 0, msg, now, None, 0)
        )
        row = cursor.fetchone()
        if row is None:
            raise LookupError(f"conversation {conversation_id} took no append")
        return int(row[0])

    @functools.cached_property
    def numbered_sql(self) -> str:
        return f"{self.insert_sql} RETURNING seq"

    def load_messages(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute("SET SESSION unique_checks = 0, foreign_key_checks = 0")
        try:
            super().load_messages(conversations, messages_each)
        finally:
            with self.conn.cursor() as cursor:
                cursor.execute("SET SESSION unique_checks = 1, foreign_key_checks = 1")

    def analyze(self) -> None:
        with self.reader.cursor() as cursor:
            cursor.execute("ANALYZE TABLE messages, conversations")
            cursor.fetchall()


def raw_for(scratch: Scratch) -> Raw:
    """The raw reference (doing chatledger's work) of a scratch database's backend."""
    kinds: dict[str, type[Raw]] = {
        "sqlite": RawSQLite,
        "postgresql": RawPostgres,
        "mariadb": RawMariaDB,
    }
    return kinds[scratch.backend](scratch)


# -- the bare reference ------------------------------------------------------------------------


def create_bare_tables(scratch: Scratch) -> None:
    """``messages`` and ``conversations`` with chatledger's columns and column types (the
    same DDL types, table options included), keyed as the store's natural keys, one plain
    index for the sidebar, and nothing else: no other index, no constraint, no trigger."""
    import sqlalchemy as sa

    from chatledger._schema import ConversationRow, MessageRow

    metadata = sa.MetaData()

    def copy(source: sa.Table, key: tuple[str, ...]) -> sa.Table:
        columns = [
            sa.Column(column.name, column.type, nullable=column.nullable)
            for column in source.columns
        ]
        return sa.Table(
            source.name,
            metadata,
            *columns,
            sa.PrimaryKeyConstraint(*key),
            **source.dialect_kwargs,
        )

    copy(cast("sa.Table", MessageRow.__table__), ("conversation_id", "seq"))
    conversations = copy(cast("sa.Table", ConversationRow.__table__), ("id",))
    sa.Index(
        "ix_conversations_owner_activity",
        conversations.c.owner_id,
        conversations.c.last_activity_at,
        conversations.c.id,
    )
    engine = sa.create_engine(scratch.url, poolclass=sa.pool.NullPool)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


class _Seqs:
    """The next ``seq`` of each conversation, shared by the clones of a bare reference (its
    threads): the bare append takes its seq from here, not from the database."""

    def __init__(self) -> None:
        self._next: dict[uuid.UUID, int] = {}
        self._lock = threading.Lock()

    def take(self, conversation_id: uuid.UUID, count: int = 1) -> int:
        """The first of ``count`` consecutive new seqs."""
        with self._lock:
            first = self._next.get(conversation_id, 1)
            self._next[conversation_id] = first + count
            return first

    def start(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        with self._lock:
            for conversation in conversations:
                self._next[conversation] = messages_each + 1


class Bare(Raw):
    """The bare reference: the operations alone, on the tables of
    :func:`create_bare_tables` (made by the constructor if missing). Mixed into each
    backend's raw class for its dialect (connections, values, load path)."""

    def __init__(self, scratch: Scratch, seqs: _Seqs | None = None) -> None:
        super().__init__(scratch)
        self.seqs = seqs if seqs is not None else _Seqs()
        self.last_sql = self._sql(
            f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE conversation_id = %s "
            "ORDER BY seq DESC LIMIT %s"
        )
        self.sidebar_sql = self._sql(
            f"SELECT {', '.join(CONVERSATION_COLUMNS)} FROM conversations WHERE owner_id = %s "
            "ORDER BY last_activity_at DESC, id DESC LIMIT %s"
        )

    def append(self, conversation_id: uuid.UUID, msg: Msg) -> int:
        """One autocommit ``INSERT`` of the message row."""
        seq = self.seqs.take(conversation_id)
        now = self.ts(datetime.now(UTC))
        parent = seq - 1 if seq > 1 else None
        row = self.message_row(self.uid(conversation_id), seq, msg, now, parent, seq - 1)
        cursor = self.reader.cursor()
        try:
            cursor.execute(self.insert_sql, row)
        finally:
            cursor.close()
        return seq

    def sidebar(self, owner_id: uuid.UUID, limit: int = 20) -> list[Any]:
        """The keyset query alone: no status filter, no extra row."""
        cursor = self.reader.cursor()
        try:
            cursor.execute(self.sidebar_sql, (self.uid(owner_id), limit))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def bulk(self, conversation_id: uuid.UUID, batch: Sequence[Msg]) -> None:
        """The rows alone in one transaction: ``executemany`` (``COPY`` on PostgreSQL)."""
        first = self.seqs.take(conversation_id, len(batch))
        now = self.ts(datetime.now(UTC))
        cid = self.uid(conversation_id)
        rows = [
            self.message_row(cid, seq, msg, now, seq - 1 if seq > 1 else None, seq - 1)
            for seq, msg in enumerate(batch, start=first)
        ]
        cursor = self.conn.cursor()
        try:
            self.begin(cursor)
            self.bulk_rows(cursor, rows)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        finally:
            cursor.close()

    def bulk_rows(self, cursor: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        cursor.executemany(self.insert_sql, rows)

    def load_messages(self, conversations: Sequence[uuid.UUID], messages_each: int) -> None:
        super().load_messages(conversations, messages_each)
        self.seqs.start(conversations, messages_each)

    def verify(self, conversation_id: uuid.UUID) -> tuple[list[int], int | None]:
        """The stored seqs (no counter: the bare store keeps none)."""
        seqs, _count = super().verify(conversation_id)
        return seqs, None

    def clone(self) -> Raw:
        return type(self)(self.scratch, self.seqs)


class BareSQLite(Bare, RawSQLite):
    """The bare reference on SQLite (the dialect of :class:`RawSQLite`)."""


class BarePostgres(Bare, RawPostgres):
    """The bare reference on PostgreSQL: bulk through ``COPY``."""

    def bulk_rows(self, cursor: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        self.copy_rows(cursor, rows)


class BareMariaDB(Bare, RawMariaDB):
    """The bare reference on MariaDB."""


def bare_for(scratch: Scratch) -> Bare:
    """The bare reference of a scratch database (its tables are created here)."""
    create_bare_tables(scratch)
    kinds: dict[str, type[Bare]] = {
        "sqlite": BareSQLite,
        "postgresql": BarePostgres,
        "mariadb": BareMariaDB,
    }
    return kinds[scratch.backend](scratch)
