"""Everything that differs between SQLite, PostgreSQL and MariaDB, in one place.

Business code asks a :class:`Backend` for a capability (``update_returning``) or a behaviour
(``classify``, ``migration_lock``); it never tests a dialect name itself.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import os
import random
import re
import sqlite3
import sys
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    bindparam,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from ._fulltext import FullText, MariaDBFullText, PostgresFullText, SQLiteFullText
from ._prepared import Prepared
from ._replication import MariaDBReplication, PostgresReplication, Replication
from ._vectors import MariaDBVectors, PostgresVectors, SQLiteVectors, Vectors
from .errors import (
    ConfigurationError,
    MissingDependencyError,
    SQLiteWALResetBugWarning,
    TransientError,
)

__all__ = [
    "BACKEND_NAMES",
    "WRITE",
    "Backend",
    "BackendName",
    "Violation",
    "backend_for",
    "backend_named",
    "backend_of",
]

logger = logging.getLogger(__name__)

#: The database families chatledger supports: what ``Config.backend`` says.
BackendName = Literal["sqlite", "postgresql", "mariadb"]

#: Execution option that marks a connection whose transaction will write.
WRITE: Final = "chatledger_write"

_MIGRATION_LOCK_NAME: Final = "chatledger.migrate"
_MIGRATION_LOCK_KEY: Final = 0x6368_6C65_6467_6572  # "chledger": a stable advisory-lock key
_MIGRATION_LOCK_TIMEOUT: Final = 300


@dataclass(frozen=True, slots=True)
class Violation:
    """An integrity error, decoded: its kind and the constraint (or column) it names."""

    kind: Literal["unique", "foreign_key", "check", "not_null", "other"]
    name: str | None


class Backend:
    """Behaviour of one database family."""

    name: ClassVar[BackendName]
    extra: ClassVar[str]
    #: The driver a configured URL without one gets ("" for SQLite: SQLAlchemy's default).
    default_driver: ClassVar[str]
    #: A server URL built from parts: its dialect, and the port and user when none is given.
    dialect: ClassVar[str]
    default_port: ClassVar[int | None] = None
    default_user: ClassVar[str | None] = None
    #: driver name -> import name, for the sync and async surfaces; the first is the default.
    sync_drivers: ClassVar[dict[str, str]]
    async_drivers: ClassVar[dict[str, str]]
    #: ``UPDATE ... RETURNING`` is available.
    update_returning: ClassVar[bool] = True
    #: Data-modifying statements can run in a ``WITH`` clause (an append in one statement).
    writable_cte: ClassVar[bool] = False
    #: Writers in one process should queue on a lock instead of busy-waiting in the database.
    serialize_writes: ClassVar[bool] = False
    #: A write transaction holds the database's one write lock from its BEGIN (SQLite's
    #: ``BEGIN IMMEDIATE``): no other writer commits while it runs, so what it read after
    #: BEGIN stays true (an append's idempotency key need not be looked up again after the bump).
    writes_exclusive: ClassVar[bool] = False
    #: The asynchronous surface runs the synchronous driver on worker threads.
    threaded_async: ClassVar[bool] = False
    #: Single reads run in autocommit mode, saving the BEGIN and ROLLBACK round trips.
    autocommit_reads: ClassVar[bool] = False
    #: An operation whose only write is one statement runs in autocommit mode: the statement
    #: is its own transaction, one round trip instead of three (BEGIN, statement, COMMIT).
    autocommit_writes: ClassVar[bool] = False
    #: Reads get a pool of their own whose connections are autocommit from the start
    #: (switching a pooled connection's mode costs round trips or Python time per read).
    read_pool: ClassVar[bool] = False
    #: A table's foreign key to itself can be declared (MariaDB's cascading deletes stop at
    #: 15 levels and check a self-reference row by row, so a conversation's delete would fail).
    self_foreign_keys: ClassVar[bool] = True

    def parent_guard_ddl(self) -> list[str]:
        """Statements that make the database hold ``messages.parent_seq`` to an existing
        message of the same conversation where :attr:`self_foreign_keys` is false (and the
        statements that undo them, by :meth:`drop_parent_guard_ddl`)."""
        return []

    def drop_parent_guard_ddl(self) -> list[str]:
        """The statements that remove :meth:`parent_guard_ddl`."""
        return []

    #: A message inserted with ``seq`` 0 is numbered by the database, in its insert: a trigger
    #: bumps the conversation (under its row lock) and sets ``seq``, ``parent_seq`` and
    #: ``depth`` (an append in one statement where there are no writable CTEs: MariaDB).
    numbers_appends: ClassVar[bool] = False

    def append_trigger_ddl(self, appendable: tuple[str, ...]) -> list[str]:
        """The statements that create the trigger behind :attr:`numbers_appends` (conversations
        in the ``appendable`` statuses take appends)."""
        return []

    def drop_append_trigger_ddl(self) -> list[str]:
        """The statements that remove :meth:`append_trigger_ddl`."""
        return []

    def refused_append(self, exc: DBAPIError) -> bool:
        """Whether ``exc`` is the :attr:`numbers_appends` trigger refusing an append (no such
        conversation, or one that takes no appends)."""
        return False

    #: The full-text engine: its index objects and how a search uses them.
    fulltext: ClassVar[FullText]
    #: The vector engine: what the database offers for vector search (exact scan without).
    vectors: ClassVar[Vectors]
    #: How the backend reports replication positions (replicas, read-your-writes).
    replication: ClassVar[Replication] = Replication()

    def url_for(self, url: URL, *, asynchronous: bool) -> URL:
        """``url`` with a driver chatledger supports on this surface; the driver must be
        installed, else :class:`MissingDependencyError` names the extra."""
        drivers = self.async_drivers if asynchronous else self.sync_drivers
        driver = url.get_driver_name()
        if "+" not in url.drivername or driver not in drivers:
            driver = next(iter(drivers))
        module = drivers[driver]
        if module and importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, self.extra)
        return url.set(drivername=f"{url.get_backend_name()}+{driver}")

    def engine_options(
        self, url: URL, settings: dict[str, Any], *, pooler: bool = False
    ) -> dict[str, Any]:
        """Keyword arguments for ``create_engine`` beyond the pool settings (``pooler``: a
        transaction-mode pooler is declared, see :attr:`Config.pooler`)."""
        return {}

    def install(
        self, engine: Engine, *, synchronous: str, busy_timeout: float, pooler: bool = False
    ) -> None:
        """Attach connection hooks to a freshly created or adopted engine."""

    def writer(self, engine: Engine) -> Engine:
        """An engine for operations that begin their own write transactions (``conn.begin()``,
        as migrations do): ``engine`` with the :data:`WRITE` execution option and a hook that
        calls :meth:`begin_write` when they begin."""
        return engine.execution_options(**{WRITE: True})

    def begin_write(self, conn: Connection) -> None:
        """Start, on the database, the write transaction ``conn.begin()`` just opened, where
        the driver does not (SQLite: ``BEGIN IMMEDIATE``)."""

    def error_code(self, exc: DBAPIError) -> str | None:
        """The server's error code of a driver exception."""
        return None

    def is_transient(self, exc: DBAPIError) -> bool:
        """Whether re-running the transaction may cure ``exc``."""
        return bool(exc.connection_invalidated)

    def connection_lost(self, exc: DBAPIError) -> bool:
        """Whether ``exc`` means the connection (SQLite: the storage) failed, so that a COMMIT
        or an autocommit statement sent on it may have taken effect although its reply never
        came: the outcome of a write is then unknown. A deadlock, a serialization failure, a
        lock timeout or a busy database are known to have rolled back (``False``)."""
        return bool(exc.connection_invalidated)

    def known_rollback(self, exc: DBAPIError) -> bool:
        """Whether ``exc`` proves the transaction was rolled back, even when it was raised by
        ``COMMIT`` (a deadlock, a serialization failure, a Galera certification failure): then
        re-running the transaction cannot apply its writes twice. A lost connection is
        transient but not a known rollback (the commit may have happened)."""
        return False

    def violation(self, exc: DBAPIError) -> Violation:
        """Decode an integrity error."""
        return Violation("other", None)

    @contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        """Hold a lock that serialises schema migrations across processes. Entered inside the
        migration's transaction; a lock that outlives the transaction is released by
        :meth:`release_migration_lock`, after the commit."""
        yield

    def release_migration_lock(self, conn: Connection) -> None:
        """Release a session-level migration lock once the migration's transaction has ended
        (so that a process that waited for it never sees a half-committed migration)."""

    def missing_database(self, exc: DBAPIError) -> str | None:
        """The database name when ``exc`` says the configured database does not exist."""
        return None

    #: The database to connect to when creating another one (None: no database).
    maintenance_database: ClassVar[str | None] = None

    def create_database(self, conn: Connection, name: str) -> bool:
        """Create the database ``name`` on an autocommit connection to the server; False when
        it exists already."""
        raise ConfigurationError(f"{self.name} databases are created by opening them")

    def day(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        """The UTC calendar day of a :class:`~chatledger._types.UTCDateTime` column, as
        ``'YYYY-MM-DD'`` text (for grouping by day)."""
        raise NotImplementedError

    def wakeup(self) -> Executable | None:
        """A statement that, executed in a transaction with ``b_channel`` and ``b_payload``,
        wakes the listeners of that channel on other connections when the transaction commits
        (PostgreSQL's ``NOTIFY``); ``None`` where the database cannot, so readers poll."""
        return None

    def listener(self, engine: Engine) -> Callable[[], Any] | None:
        """A function that opens a DBAPI connection on which :meth:`wakeup` notifications
        can be listened for (outside ``engine``'s pool: it is held for as long as anyone
        listens), or ``None`` where they cannot."""
        return None


class SQLite(Backend):
    name = "sqlite"
    extra = "sqlite"
    default_driver = ""
    dialect = "sqlite"
    fulltext = SQLiteFullText()
    vectors = SQLiteVectors()
    sync_drivers: ClassVar[dict[str, str]] = {"pysqlite": ""}
    # The async surface runs the sync driver on worker threads: one hop per operation instead
    # of aiosqlite's one hop per statement.
    async_drivers: ClassVar[dict[str, str]] = {"pysqlite": ""}
    threaded_async = True
    serialize_writes = True
    writes_exclusive = True
    #: The connect hook installed on each engine (once), for its writers to repair connections
    #: pooled before the engine was adopted.
    _connectors: ClassVar[weakref.WeakKeyDictionary[Engine, Callable[[Any, Any], None]]] = (
        weakref.WeakKeyDictionary()
    )

    _TRANSIENT: ClassVar[frozenset[int]] = frozenset(
        {5, 6, 261, 262, 517, 773}  # SQLITE_BUSY, _LOCKED, and their extended codes
    )
    _VIOLATION = re.compile(
        r"(UNIQUE|PRIMARY KEY|FOREIGN KEY|CHECK|NOT NULL) constraint failed(?:: ?(.*))?"
    )

    def engine_options(
        self, url: URL, settings: dict[str, Any], *, pooler: bool = False
    ) -> dict[str, Any]:
        options: dict[str, Any] = {
            "connect_args": {"check_same_thread": False},
            "module": sqlite_library(),
        }
        if is_memory_sqlite(url):
            from sqlalchemy.pool import StaticPool

            options["poolclass"] = StaticPool
        return options

    def install(
        self, engine: Engine, *, synchronous: str, busy_timeout: float, pooler: bool = False
    ) -> None:
        library: Any = engine.dialect.dbapi  # the module the engine was created with
        warn_if_wal_reset_bug(library.sqlite_version_info)
        memory = is_memory_sqlite(engine.url)
        pragmas = [
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={int(busy_timeout * 1000)}",
            f"PRAGMA synchronous={synchronous}",
        ]
        if not memory:
            pragmas.insert(0, "PRAGMA journal_mode=WAL")

        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the driver: chatledger emits BEGIN itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                for pragma in pragmas:
                    cursor.execute(pragma)
            finally:
                cursor.close()

        if engine not in self._connectors:
            self._connectors[engine] = on_connect
            event.listen(engine, "connect", on_connect)

    def writer(self, engine: Engine) -> Engine:
        # For connections whose users begin transactions themselves (migrations): a hook on
        # this engine only. A "begin" listener on the engine itself would make every
        # connection of it dispatch its engine_connect, begin, commit and rollback events
        # (measured: ~10% of an append); chatledger's own transactions call begin_write.
        writer = super().writer(engine)
        event.listen(writer, "begin", self.begin_write)
        return writer

    def begin_write(self, conn: Connection) -> None:
        # Writers take the write lock up front. Reads begin nothing: each statement is its
        # own snapshot, as reads are on the server backends (autocommit there).
        dbapi_connection = conn.connection.dbapi_connection
        if getattr(dbapi_connection, "isolation_level", None) is not None:
            connect = self._connectors.get(conn.engine)
            if connect is not None:
                connect(dbapi_connection, None)  # pooled before chatledger adopted the engine
        _BEGIN_IMMEDIATE.execute(conn, {})

    def day(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC.
        return func.substr(column, 1, 10)

    def error_code(self, exc: DBAPIError) -> str | None:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        return None if code is None else str(code)

    def is_transient(self, exc: DBAPIError) -> bool:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if code in self._TRANSIENT:
            return True
        message = str(exc.orig)
        return (
            "database is locked" in message
            or self.connection_lost(exc)
            or super().is_transient(exc)
        )

    def connection_lost(self, exc: DBAPIError) -> bool:
        # SQLITE_IOERR and its extended codes: "if an I/O error occurs during COMMIT, the
        # transaction may or may not have been rolled back" (the SQLite result-code docs).
        # A process crash needs no classification (nobody is left to retry); SQLITE_FULL and
        # SQLITE_BUSY roll back.
        code = getattr(exc.orig, "sqlite_errorcode", None)
        return (isinstance(code, int) and code & 0xFF == _SQLITE_IOERR) or bool(
            exc.connection_invalidated
        )

    def violation(self, exc: DBAPIError) -> Violation:
        match = self._VIOLATION.search(str(exc.orig))
        if match is None:
            return Violation("other", None)
        kinds: dict[str, Literal["unique", "foreign_key", "check", "not_null"]] = {
            "UNIQUE": "unique",
            "PRIMARY KEY": "unique",
            "FOREIGN KEY": "foreign_key",
            "CHECK": "check",
            "NOT NULL": "not_null",
        }
        # "users.email" or "messages.conversation_id, messages.idempotency_key": the last
        # column names the field.
        columns = (match.group(2) or "").strip()
        name = columns.rsplit(",", 1)[-1].strip().rsplit(".", 1)[-1] if columns else None
        return Violation(kinds[match.group(1)], name or None)


_SQLITE_IOERR: Final = 10
#: On the driver's cursor: SQLAlchemy's execution path cost as much as the BEGIN itself.
_BEGIN_IMMEDIATE: Final = Prepared(text("BEGIN IMMEDIATE"))


class PostgreSQL(Backend):
    name = "postgresql"
    extra = "postgres"
    default_driver = "psycopg"
    dialect = "postgresql"
    default_port = 5432
    default_user = "postgres"
    fulltext = PostgresFullText()
    vectors = PostgresVectors()
    replication = PostgresReplication()
    autocommit_reads = True
    autocommit_writes = True
    writable_cte = True
    # Switching a pooled connection to autocommit and back costs SQLAlchemy ~20 µs of Python
    # per read (measured); a pool of autocommit connections costs nothing per read.
    read_pool = True
    sync_drivers: ClassVar[dict[str, str]] = {
        "psycopg": "psycopg",
        "psycopg2": "psycopg2",
        "pg8000": "pg8000",
    }
    async_drivers: ClassVar[dict[str, str]] = {
        "psycopg": "psycopg",
        "psycopg_async": "psycopg",
        "asyncpg": "asyncpg",
    }
    _TRANSIENT: ClassVar[frozenset[str]] = frozenset(
        {
            "40001",  # serialization_failure
            "40P01",  # deadlock_detected
            "25006",  # read_only_sql_transaction: the primary became a replica in a failover
            "55P03",  # lock_not_available
            "57P01",  # admin_shutdown
            "57P02",  # crash_shutdown
            "57P03",  # cannot_connect_now
        }
    )
    _KINDS: ClassVar[dict[str, Literal["unique", "foreign_key", "check", "not_null"]]] = {
        "23505": "unique",
        "23503": "foreign_key",
        "23514": "check",
        "23502": "not_null",
    }

    def engine_options(
        self, url: URL, settings: dict[str, Any], *, pooler: bool = False
    ) -> dict[str, Any]:
        if url.get_driver_name() in ("psycopg", "psycopg_async"):
            # Sessions in UTC, as on MariaDB: timestamptz values then arrive with the UTC
            # tzinfo chatledger returns, with no conversion per value (measured: ~3% of a read).
            # Behind a pooler, _Pooled sets it instead (a pooler refuses ``options``).
            arguments: dict[str, Any] = {"application_name": "chatledger"}
            arguments.update(_POOLED_ARGUMENTS if pooler else _SESSION_ARGUMENTS)
            return {"connect_args": arguments}
        return {}

    def install(
        self, engine: Engine, *, synchronous: str, busy_timeout: float, pooler: bool = False
    ) -> None:
        if engine.dialect.driver not in ("psycopg", "psycopg_async"):
            return
        hooks = _POOLED.get(engine)
        if hooks is None:
            hooks = _POOLED[engine] = _Pooled(pooler)
            event.listen(engine, "do_connect", hooks.connect)
            event.listen(engine, "connect", hooks.session)
        hooks.pooled |= pooler

    def day(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")

    def wakeup(self) -> Executable | None:
        return _NOTIFY

    def listener(self, engine: Engine) -> Callable[[], Any] | None:
        # psycopg only (the default driver); behind a transaction-mode pooler a LISTEN
        # would stay on whichever server connection ran it: readers poll there.
        hooks = _POOLED.get(engine)
        if engine.dialect.driver not in ("psycopg", "psycopg_async") or (
            hooks is not None and hooks.pooled
        ):
            return None
        _, params = engine.dialect.create_connect_args(engine.url)
        params = {k: v for k, v in params.items() if k != "context"}
        params["application_name"] = "chatledger-listen"

        def connect() -> Any:
            import psycopg

            return psycopg.connect(**params, autocommit=True)

        return connect

    def error_code(self, exc: DBAPIError) -> str | None:
        return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)

    def is_transient(self, exc: DBAPIError) -> bool:
        code = self.error_code(exc)
        if code is None:
            # psycopg reports a failed or broken connection without a SQLSTATE.
            return isinstance(exc, OperationalError | InterfaceError) or super().is_transient(exc)
        return code in self._TRANSIENT or code.startswith("08") or super().is_transient(exc)

    #: The session ended under the statement: terminated by an administrator
    #: (``pg_terminate_backend``) or a server shutdown or crash.
    _SESSION_ENDED: ClassVar[frozenset[str]] = frozenset({"57P01", "57P02"})
    #: Connection exceptions that happen before any statement is sent.
    _NOT_CONNECTED: ClassVar[frozenset[str]] = frozenset({"08001", "08004"})

    def connection_lost(self, exc: DBAPIError) -> bool:
        code = self.error_code(exc)
        if code is None:
            return isinstance(exc, OperationalError | InterfaceError) or super().connection_lost(
                exc
            )
        if code in self._SESSION_ENDED:
            return True
        return (
            code.startswith("08") and code not in self._NOT_CONNECTED
        ) or super().connection_lost(exc)

    def known_rollback(self, exc: DBAPIError) -> bool:
        return self.error_code(exc) in ("40001", "40P01")

    def violation(self, exc: DBAPIError) -> Violation:
        kind = self._KINDS.get(self.error_code(exc) or "")
        diag = getattr(exc.orig, "diag", None)
        name = getattr(diag, "constraint_name", None) or getattr(diag, "column_name", None)
        return Violation(kind or "other", name)

    @contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        yield

    maintenance_database = "postgres"
    _MISSING = re.compile(r'database "(.+)" does not exist')

    def missing_database(self, exc: DBAPIError) -> str | None:
        # psycopg reports a failed connection without a SQLSTATE: read the message too.
        match = self._MISSING.search(str(exc.orig))
        if self.error_code(exc) == "3D000" or match:
            return match.group(1) if match else "?"
        return None

    def create_database(self, conn: Connection, name: str) -> bool:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        )
        if exists.first() is not None:
            return False
        conn.execute(text(f"CREATE DATABASE {conn.dialect.identifier_preparer.quote(name)}"))
        return True


#: A committed wake-up: ``pg_notify`` sends on COMMIT (and not at all on a rollback).
_NOTIFY: Final = select(func.pg_notify(bindparam("b_channel"), bindparam("b_payload")))

#: psycopg's connection arguments for a direct session, and behind a transaction-mode pooler.
_SESSION_ARGUMENTS: Final[dict[str, Any]] = {"options": "-c TimeZone=UTC"}
_POOLED_ARGUMENTS: Final[dict[str, Any]] = {"prepare_threshold": None}
#: What PgBouncer answers a startup packet with ``options`` (before version 1.20).
_POOLER_REFUSAL: Final = "unsupported startup parameter"


class _Pooled:
    """psycopg behind a transaction-mode pooler (PgBouncer), declared or detected.

    The pooler gives each transaction whichever server connection is free, so nothing may
    live in the session: psycopg must not prepare statements on the server (it does after
    ``prepare_threshold`` executions; the statement would exist on one server connection and
    be missing, or already exist, on the next: ``prepare_threshold=None``), and the UTC time
    zone cannot come from the startup ``options`` (PgBouncer refuses them). It is set with
    ``SET TIME ZONE`` instead: ``TimeZone`` is one of the parameters PgBouncer tracks per client
    and restores on every server connection it hands that client.

    Undeclared, the pooler is detected by its refusal of ``options``: the connection is made
    again without them, and the engine behaves as declared from then on.
    """

    def __init__(self, declared: bool) -> None:
        self.pooled = declared

    def connect(self, dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if self.pooled:
            _as_pooled(cparams)
            return None  # SQLAlchemy connects with the arguments as changed
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if _POOLER_REFUSAL not in str(exc) or "options" not in cparams:
                raise
            logger.info("a connection pooler refused the startup options: connecting as pooled")
            self.pooled = True
            _as_pooled(cparams)
            return dialect.connect(*cargs, **cparams)

    def session(self, dbapi_connection: Any, _record: Any) -> None:
        if not self.pooled:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET TIME ZONE 'UTC'")
        finally:
            cursor.close()
        dbapi_connection.commit()


#: The pooler hooks installed on each PostgreSQL engine (once).
_POOLED: Final[weakref.WeakKeyDictionary[Engine, _Pooled]] = weakref.WeakKeyDictionary()


def _as_pooled(cparams: dict[str, Any]) -> None:
    for name, value in _SESSION_ARGUMENTS.items():
        if cparams.get(name) == value:
            del cparams[name]
    cparams.update(_POOLED_ARGUMENTS)


class MariaDB(Backend):
    name = "mariadb"
    extra = "mariadb"
    default_driver = "pymysql"
    dialect = "mysql"
    default_port = 3306
    default_user = "root"
    fulltext = MariaDBFullText()
    vectors = MariaDBVectors()
    replication = MariaDBReplication()
    sync_drivers: ClassVar[dict[str, str]] = {
        "pymysql": "pymysql",
        "mysqldb": "MySQLdb",
        "mariadbconnector": "mariadb",
        "mysqlconnector": "mysql.connector",
    }
    async_drivers: ClassVar[dict[str, str]] = {"aiomysql": "aiomysql", "asyncmy": "asyncmy"}
    update_returning = False
    read_pool = True
    self_foreign_keys = False
    #: The triggers that stand for ``fk_messages_parent``: the error they raise reads like
    #: InnoDB's own foreign-key error (1452, naming the constraint), so it decodes the same.
    _PARENT_GUARD: ClassVar[str] = (
        "CREATE TRIGGER trg_messages_parent_{event} BEFORE {event} ON messages FOR EACH ROW "
        "BEGIN IF NEW.parent_seq IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages p "
        "WHERE p.conversation_id = NEW.conversation_id AND p.seq = NEW.parent_seq) THEN "
        "SIGNAL SQLSTATE '23000' SET MYSQL_ERRNO = 1452, MESSAGE_TEXT = "
        "'Cannot add or update a child row: a foreign key constraint fails "
        "(CONSTRAINT `fk_messages_parent`)'; END IF; END"
    )

    def parent_guard_ddl(self) -> list[str]:
        return [self._PARENT_GUARD.format(event=event) for event in ("INSERT", "UPDATE")]

    numbers_appends = True
    #: The append's bump inside its insert (``seq`` 0 asks for it; every other insert gives
    #: its own numbers and is left alone): the conversation row is locked and read, the new
    #: message hangs under its active leaf, and the counters move as ``_ops.messages._bump``
    #: moves them, with the message's ``created_at`` as the time. It runs before the parent
    #: guard, which then checks the parent it chose.
    _APPEND_TRIGGER: ClassVar[str] = (
        "CREATE TRIGGER trg_messages_append BEFORE INSERT ON messages FOR EACH ROW "
        "PRECEDES trg_messages_parent_INSERT "
        "BEGIN "
        "DECLARE v_count INT; DECLARE v_leaf INT; DECLARE v_length INT; "
        "DECLARE v_status VARCHAR(32) DEFAULT NULL; "
        "IF NEW.seq = 0 THEN "
        "SELECT message_count, active_leaf_seq, path_length, status "
        "INTO v_count, v_leaf, v_length, v_status "
        "FROM conversations WHERE id = NEW.conversation_id FOR UPDATE; "
        "IF v_status IS NULL OR v_status NOT IN ({appendable}) THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{refusal}'; "
        "END IF; "
        "SET NEW.seq = v_count + 1, NEW.parent_seq = v_leaf, NEW.depth = v_length; "
        "UPDATE conversations SET active_leaf_seq = v_count + 1, path_length = v_length + 1, "
        "message_count = v_count + 1, "
        "last_message_at = CASE WHEN last_message_at IS NULL "
        "OR last_message_at < NEW.created_at THEN NEW.created_at ELSE last_message_at END, "
        "last_activity_at = CASE WHEN last_activity_at < NEW.created_at "
        "THEN NEW.created_at ELSE last_activity_at END, "
        "updated_at = NEW.created_at "
        "WHERE id = NEW.conversation_id; "
        "END IF; "
        "END"
    )
    _APPEND_REFUSAL: ClassVar[str] = "chatledger: the conversation takes no append"

    def append_trigger_ddl(self, appendable: tuple[str, ...]) -> list[str]:
        statuses = ", ".join(f"'{status}'" for status in appendable)
        return [self._APPEND_TRIGGER.format(appendable=statuses, refusal=self._APPEND_REFUSAL)]

    def drop_append_trigger_ddl(self) -> list[str]:
        return ["DROP TRIGGER IF EXISTS trg_messages_append"]

    def refused_append(self, exc: DBAPIError) -> bool:
        return self._APPEND_REFUSAL in str(exc.orig)

    def drop_parent_guard_ddl(self) -> list[str]:
        return [f"DROP TRIGGER IF EXISTS trg_messages_parent_{e}" for e in ("INSERT", "UPDATE")]

    _TRANSIENT: ClassVar[frozenset[int]] = frozenset(
        {
            1047,  # Galera: "WSREP has not yet prepared node for application use" (not synced)
            1205,  # lock wait timeout (rolls back only the statement: we re-run the transaction)
            1213,  # deadlock; on Galera also a certification failure or a brute-force abort
            1290,  # server is running with --read-only (failover)
            1412,  # table definition has changed (DDL ran meanwhile): retry the transaction
            1684,  # table skipped: concurrent DDL modifies it (Galera TOI, metadata locks)
            1792,  # read-only transaction
            1927,  # connection was killed
            2002,  # can't connect through socket
            2003,  # can't connect to server
            2006,  # server has gone away
            2013,  # lost connection during query
            2055,  # lost connection at handshake
            4031,  # disconnected by the server because of inactivity
        }
    )
    _KINDS: ClassVar[dict[int, Literal["unique", "foreign_key", "check", "not_null"]]] = {
        1062: "unique",
        1451: "foreign_key",
        1452: "foreign_key",
        4025: "check",
        3819: "check",
        1048: "not_null",
    }
    _NAME = re.compile(r"for key '(?:[^'.]*\.)?([^']+)'|CONSTRAINT `([^`]+)`|Column '([^']+)'")

    def engine_options(
        self, url: URL, settings: dict[str, Any], *, pooler: bool = False
    ) -> dict[str, Any]:
        sql_mode = (
            "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
            "NO_ENGINE_SUBSTITUTION"
        )
        return {
            # Read committed, as on PostgreSQL: each statement sees what committed before it,
            # which appends rely on after taking the conversation's row lock.
            "isolation_level": "READ COMMITTED",
            "connect_args": {
                "charset": "utf8mb4",
                "init_command": f"SET SESSION sql_mode='{sql_mode}', time_zone='+00:00'",
            },
        }

    def day(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        # DATETIME(6) holding UTC (the session time zone is UTC too).
        return func.date_format(column, "%Y-%m-%d")

    def install(
        self, engine: Engine, *, synchronous: str, busy_timeout: float, pooler: bool = False
    ) -> None:
        for hook in (_skip_idle_rollback, _galera_session):
            if not event.contains(engine, "connect", hook):
                event.listen(engine, "connect", hook)

    def error_code(self, exc: DBAPIError) -> str | None:
        args = getattr(exc.orig, "args", ())
        return str(args[0]) if args and isinstance(args[0], int) else None

    def is_transient(self, exc: DBAPIError) -> bool:
        code = self.error_code(exc)
        if code is not None and int(code) in self._TRANSIENT:
            return True
        return super().is_transient(exc)

    #: The connection died under a statement: killed (``KILL CONNECTION``), gone away, lost
    #: during a query, or closed for inactivity. (2002/2003 fail to connect: nothing was sent.)
    _LOST: ClassVar[frozenset[int]] = frozenset({1927, 2006, 2013, 4031})

    def connection_lost(self, exc: DBAPIError) -> bool:
        code = self.error_code(exc)
        if code is not None and int(code) in self._LOST:
            return True
        return super().connection_lost(exc)

    def known_rollback(self, exc: DBAPIError) -> bool:
        # 1213 rolls the whole transaction back. On Galera it is also how a certification
        # failure surfaces, at COMMIT: the write set lost to a conflicting one ordered first
        # and was discarded on every node. 1047: the node refused the statement.
        return self.error_code(exc) in ("1213", "1047")

    def violation(self, exc: DBAPIError) -> Violation:
        code = self.error_code(exc)
        kind = self._KINDS.get(int(code)) if code else None
        match = self._NAME.search(str(exc.orig))
        name = next((g for g in match.groups() if g), None) if match else None
        return Violation(kind or "other", name)

    @contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        if _wsrep_on(conn):
            # GET_LOCK is the node's own: two nodes would both grant it.
            with _GaleraLease(self, conn.engine).held() as lease:
                conn.info[_LEASE] = lease
                yield
            return
        got = conn.execute(
            text("SELECT GET_LOCK(:name, :timeout)"),
            {"name": _MIGRATION_LOCK_NAME, "timeout": _MIGRATION_LOCK_TIMEOUT},
        ).scalar()
        if got != 1:
            raise TransientError("timed out waiting for another process's schema migration")
        yield  # GET_LOCK is the session's: released after the commit, not here

    _MISSING = re.compile(r"Unknown database '(.+)'")

    def missing_database(self, exc: DBAPIError) -> str | None:
        if self.error_code(exc) != "1049":
            return None
        match = self._MISSING.search(str(exc.orig))
        return match.group(1) if match else "?"

    def create_database(self, conn: Connection, name: str) -> bool:
        exists = conn.execute(
            text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"),
            {"name": name},
        )
        if exists.first() is not None:
            return False
        quoted = conn.dialect.identifier_preparer.quote(name)
        conn.execute(text(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        return True

    def release_migration_lock(self, conn: Connection) -> None:
        # Released before the commit, the lock would let a waiting process read the version
        # table between the two and find the revision before the last one (DDL commits
        # implicitly on MariaDB, so every earlier revision is already visible).
        lease: _GaleraLease | None = conn.info.pop(_LEASE, None)
        try:
            if lease is not None:
                conn.rollback()
                lease.release()
                return
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _MIGRATION_LOCK_NAME})
            conn.rollback()
        except SQLAlchemyError as exc:  # the lock ends with the session (or its lease) anyway
            logger.warning("could not release the migration lock: %s", exc)


# --- MariaDB Galera Cluster -------------------------------------------------------------------
#
# A Galera node is a MariaDB server with wsrep on: same protocol, same SQL, so it is the MariaDB
# backend, and what differs is handled where it arises (docs/scale-out.md lists the rules):
# - a certification failure (two nodes wrote the same row) is error 1213 at COMMIT: transient
#   and a known rollback (`MariaDB.known_rollback`), so the transaction is re-run whole;
# - reads on one node may not yet see a commit made on another: sessions get
#   ``wsrep_sync_wait = 1`` (causal reads) unless the server already asks for more;
# - GET_LOCK is per node: the migration lock is a lease row whose claim is certified
#   cluster-wide (`_GaleraLease`);
# - DDL runs under Total Order Isolation (replicated as a statement, in the same order on
#   every node); every table has a primary key (tests/test_schema_plan.py checks it).

#: ``conn.info`` key of the Galera migration lease held by a migrating connection.
_LEASE: Final = "chatledger_galera_lease"
_WSREP_QUERY: Final = (
    "SHOW SESSION VARIABLES WHERE Variable_name IN ('wsrep_on', 'wsrep_sync_wait')"
)
_LEASE_TABLE: Final = "chatledger_migration_lock"
_LEASE_CREATE: Final = text(
    f"CREATE TABLE IF NOT EXISTS {_LEASE_TABLE} ("
    "id TINYINT NOT NULL PRIMARY KEY, holder CHAR(32) NULL, expires_at DATETIME(6) NULL"
    ") ENGINE=InnoDB"
)
_LEASE_ROW: Final = text(f"INSERT IGNORE INTO {_LEASE_TABLE} (id) VALUES (1)")
_LEASE_CLAIM: Final = text(
    f"UPDATE {_LEASE_TABLE} SET holder = :holder, "
    "expires_at = UTC_TIMESTAMP(6) + INTERVAL :seconds SECOND "
    "WHERE id = 1 AND (holder IS NULL OR expires_at < UTC_TIMESTAMP(6))"
)
_LEASE_RELEASE: Final = text(
    f"UPDATE {_LEASE_TABLE} SET holder = NULL, expires_at = NULL WHERE id = 1 AND holder = :holder"
)


def _wsrep_variables(cursor: Any) -> dict[str, str]:
    cursor.execute(_WSREP_QUERY)
    return {str(name).lower(): str(value) for name, value in cursor.fetchall()}


def _wsrep_on(conn: Connection) -> bool:
    """Whether ``conn`` is a session on a Galera node (wsrep replication on)."""
    rows = conn.exec_driver_sql(_WSREP_QUERY).all()
    return any(name.lower() == "wsrep_on" and value == "ON" for name, value in rows)


def _galera_session(dbapi_connection: Any, _record: Any) -> None:
    """On a Galera node, make the session's reads causal (``wsrep_sync_wait = 1``): a read
    waits until the node has applied every write set committed in the cluster before it, so
    what was written through one node is read through any other. Nothing on a single server
    (one query when the connection is made)."""
    cursor = dbapi_connection.cursor()
    try:
        found = _wsrep_variables(cursor)
        if found.get("wsrep_on") == "ON" and not int(found.get("wsrep_sync_wait", "0")) & 1:
            wait = int(found.get("wsrep_sync_wait", "0")) | 1
            cursor.execute(f"SET SESSION wsrep_sync_wait = {wait}")
    finally:
        cursor.close()


class _GaleraLease:
    """The cluster-wide migration lock on Galera: a one-row table whose row a holder claims
    in a committed ``UPDATE``. Two nodes claiming at once both see the row free, but only one
    write set passes certification: the other fails at COMMIT (1213) and retries, and then
    sees the row taken. The claim expires after the lock timeout, so a holder that died does
    not block migrations forever. Claims run on a connection of their own, in autocommit."""

    def __init__(self, backend: Backend, engine: Engine) -> None:
        self.backend = backend
        self.holder = uuid.uuid4().hex
        self.conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def held(self) -> Iterator[_GaleraLease]:
        try:
            self._claim()
        except BaseException:
            self.conn.close()
            raise
        yield self

    def _run(self, statement: Any, params: dict[str, Any]) -> int | None:
        """Run one autocommit statement; ``None`` when it lost a certification race."""
        try:
            return int(self.conn.execute(statement, params).rowcount)
        except DBAPIError as exc:
            if not self.backend.is_transient(exc):
                raise
            logger.debug("migration lease: %s, again", exc.orig)
            return None

    def _claim(self) -> None:
        deadline = time.monotonic() + _MIGRATION_LOCK_TIMEOUT
        while self._run(_LEASE_CREATE, {}) is None or self._run(_LEASE_ROW, {}) is None:
            time.sleep(random.uniform(0.01, 0.1))
        params = {"holder": self.holder, "seconds": _MIGRATION_LOCK_TIMEOUT}
        while self._run(_LEASE_CLAIM, params) != 1:
            if time.monotonic() > deadline:
                raise TransientError("timed out waiting for another process's schema migration")
            time.sleep(random.uniform(0.05, 0.2))
        logger.debug("migration lease %s claimed", self.holder)

    def release(self) -> None:
        """Give the lease up (after the migration's commit) and close its connection."""
        try:
            while self._run(_LEASE_RELEASE, {"holder": self.holder}) is None:
                time.sleep(random.uniform(0.01, 0.1))
        finally:
            self.conn.close()


#: MySQL protocol status flag: a transaction is open (SERVER_STATUS_IN_TRANS).
_IN_TRANSACTION: Final = 0x0001


def _returned_rows(raw: Any) -> bool:
    """Whether the driver's last statement returned a result set (whose end carries no
    transaction status the driver reads)."""
    result = getattr(raw, "_result", None)
    return result is not None and result.server_status is None


def _skip_idle_rollback(dbapi_connection: Any, _record: Any) -> None:
    """Make ``rollback()`` free when the server reports no open transaction.

    The connection pool rolls back every connection it takes back, even one whose transaction
    was just committed: with PyMySQL that is a round trip per operation. The MySQL protocol
    reports in every OK packet whether a transaction is open, so the rollback is skipped when
    there is nothing to roll back. The drivers do not read that flag from the end of a result
    set, though: after a transaction of SELECTs only (``SELECT ... FOR UPDATE`` that then
    raised, say) the flag is stale, so when the last statement returned rows the rollback is
    always made (else its locks would stay held in the pool).
    """
    # The driver's own connection: PyMySQL's, or aiomysql's behind SQLAlchemy's adapter (whose
    # rollback awaits the driver's).
    raw = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    rollback = getattr(raw, "rollback", None)
    if rollback is None or not hasattr(raw, "server_status"):
        return
    if getattr(rollback, "_chatledger", False):
        return
    if inspect.iscoroutinefunction(rollback):

        async def rollback_if_open_async() -> Any:
            if raw.server_status & _IN_TRANSACTION or _returned_rows(raw):
                return await rollback()
            return None

        replacement: Any = rollback_if_open_async
    else:

        def rollback_if_open() -> Any:
            if raw.server_status & _IN_TRANSACTION or _returned_rows(raw):
                return rollback()
            return None

        replacement = rollback_if_open
    replacement._chatledger = True
    raw.rollback = replacement


_MARIADB = MariaDB()
#: The backend of each SQLAlchemy dialect name (``url.get_backend_name()``, ``dialect.name``).
_BACKENDS: Final[dict[str, Backend]] = {
    "sqlite": SQLite(),
    "postgresql": PostgreSQL(),
    "mysql": _MARIADB,
    "mariadb": _MARIADB,
}
#: The names a configuration may give a backend (``DATABASE_TYPE``, ``database.type``), and
#: the family each one means.
BACKEND_NAMES: Final[dict[str, BackendName]] = {
    **{name: backend.name for name, backend in _BACKENDS.items()},
    "postgres": "postgresql",
}


def backend_for(url: URL, source: str | None = None) -> Backend:
    """The backend of a database URL; :class:`ConfigurationError` if chatledger does not
    support it (``source``: where the URL came from, for the message)."""
    name = url.get_backend_name()
    backend = _BACKENDS.get(name)
    if backend is None:
        where = f"{source}: " if source else ""
        raise ConfigurationError(
            f"{where}unsupported database backend {name!r}; "
            "chatledger supports sqlite, postgresql and mariadb (mysql)"
        )
    return backend


def backend_named(name: str) -> Backend:
    """The backend of a family name (``"sqlite"``, ``"postgresql"``, ``"mariadb"``)."""
    return _BACKENDS[name]


def backend_of(conn: Connection) -> Backend:
    """The backend of an open connection."""
    return _BACKENDS[conn.dialect.name]


def is_memory_sqlite(url: URL) -> bool:
    """Whether ``url`` names a private in-memory SQLite database."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(url: URL) -> threading.Lock:
    """The in-process lock that queues writers of one SQLite file."""
    key = str(url.database)
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


#: CHATLEDGER_SQLITE_LIBRARY: "bundled" (pysqlite3, the ``sqlite`` extra), "system" (Python's
#: sqlite3), or unset: the bundled one when it is installed.
SQLITE_LIBRARY_VAR: Final = "CHATLEDGER_SQLITE_LIBRARY"


def sqlite_library() -> Any:
    """The DB-API module chatledger opens SQLite files with: ``pysqlite3`` (a current SQLite,
    bundled in its wheel: ``pip install 'chatledger[sqlite]'``) when installed, else Python's
    ``sqlite3``. :data:`SQLITE_LIBRARY_VAR` forces one."""
    choice = os.environ.get(SQLITE_LIBRARY_VAR, "").strip().lower()
    if choice not in ("", "bundled", "system"):
        raise ConfigurationError(
            f"env {SQLITE_LIBRARY_VAR}: expected bundled or system, got {choice!r}"
        )
    if choice != "system":
        try:
            from pysqlite3 import dbapi2
        except ImportError:
            if choice == "bundled":
                raise MissingDependencyError("pysqlite3", "sqlite") from None
        else:
            return dbapi2
    return sqlite3


def has_wal_reset_bug(version: tuple[int, int, int]) -> bool:
    """Whether an SQLite library version has the WAL-reset corruption bug: every version
    before 3.51.3 except the fixed backports 3.44.6+ (3.44.x) and 3.50.7+ (3.50.x)."""
    if version >= (3, 51, 3):
        return False
    if version[:2] == (3, 44):
        return version < (3, 44, 6)
    if version[:2] == (3, 50):
        return version < (3, 50, 7)
    return True


_warned_versions: set[tuple[int, int, int]] = set()


def warn_if_wal_reset_bug(version: tuple[int, int, int]) -> None:
    """Warn (once per process) when the linked SQLite has the WAL-reset bug."""
    if not has_wal_reset_bug(version) or version in _warned_versions:
        return
    _warned_versions.add(version)
    text_version = ".".join(map(str, version))
    message = (
        f"the linked SQLite library {text_version} has the WAL-reset corruption bug "
        "(fixed in 3.51.3, 3.50.7 and 3.44.6): a checkpoint racing a writer can corrupt "
        "the database. Upgrade SQLite (e.g. a newer Python build) for production use."
    )
    warnings.warn(message, SQLiteWALResetBugWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside chatledger, so it
    names the caller's line whichever path (sync, async, adopted engine) led here."""
    skipped = (os.path.dirname(os.path.abspath(__file__)), contextlib.__file__)
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skipped):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
