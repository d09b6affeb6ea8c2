"""Schema migrations: Alembic, shipped inside the package.

The functions take a database URL (``None`` reads the configuration), an ``Engine`` or an open
``Connection``. Every upgrade and downgrade holds a lock (an advisory lock on PostgreSQL,
``GET_LOCK`` on MariaDB, the write lock on SQLite), so processes starting at once do not race.
Opening a store initialises an empty database by itself; a database at an older revision raises
:class:`~chatledger.errors.SchemaOutOfDateError` unless ``auto_upgrade`` is on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Engine, func, inspect, select, table
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from ._backends import WRITE, backend_for, backend_of
from ._run.engine import adopt_engine, sync_engine
from ._run.translate import translate
from ._schema import Base
from .config import Config
from .errors import ConfigurationError, SchemaOutOfDateError

if TYPE_CHECKING:  # Alembic is imported when a migration function first runs.
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

__all__ = [
    "SEEDED_TABLES",
    "VERSION_TABLE",
    "Revision",
    "TableState",
    "check",
    "create_database",
    "current",
    "downgrade",
    "head",
    "history",
    "inventory",
    "upgrade",
]

logger = logging.getLogger(__name__)

#: chatledger's own version table, so an application's Alembic history can share the database.
VERSION_TABLE: Final = "chatledger_alembic_version"
Target = Connection | Engine | URL | str | None


@dataclass(frozen=True, slots=True)
class Revision:
    """One step of the migration history."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


#: Tables whose rows the migrations write themselves (the audit chain's head), so that they
#: hold rows in a database nobody has written to.
SEEDED_TABLES: Final = frozenset({"audit_chain"})


@dataclass(frozen=True, slots=True)
class TableState:
    """One of chatledger's tables as it is in a database: its rows and its columns."""

    rows: int
    columns: frozenset[str]


def inventory(target: Target = None) -> dict[str, TableState]:
    """chatledger's tables present in the database, with their row counts and columns (what a
    downgrade would remove is the difference between two inventories)."""
    with _connection(target) as conn:
        inspector = inspect(conn)
        found: dict[str, TableState] = {}
        for name in sorted(set(inspector.get_table_names()) & set(Base.metadata.tables)):
            rows = conn.execute(select(func.count()).select_from(table(name))).scalar_one()
            columns = frozenset(column["name"] for column in inspector.get_columns(name))
            found[name] = TableState(int(rows), columns)
        if conn.in_transaction():
            conn.rollback()
        return found


def create_database(target: URL | str | None = None) -> bool:
    """Create the PostgreSQL or MariaDB database the URL names, connecting to the server's
    maintenance database (``postgres``; none on MariaDB) with the same credentials. Returns
    False when it exists already. SQLite files are created by opening them."""
    config = Config.load(target)
    backend = backend_for(config.url)
    name = config.url.database
    if backend.name == "sqlite" or not name:
        return False
    server = config.url._replace(database=backend.maintenance_database)
    engine, _ = sync_engine(Config.load(server))
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            created = backend.create_database(conn, name)
    except SQLAlchemyError as exc:
        password = engine.url.password
        raise translate(
            exc, backend, secret=password if isinstance(password, str) else None
        ) from exc
    finally:
        engine.dispose()
    if created:
        logger.info("created the database %s", name)
    return created


def include_object(
    obj: Any,
    name: str | None,
    type_: str,
    reflected: bool,
    compare_to: Any,
    self_foreign_keys: bool = True,
) -> bool:
    """Autogenerate considers chatledger's tables only, not an application's beside them; on
    a backend without self-referencing foreign keys, not the one triggers stand for."""
    if type_ == "table":
        return name in Base.metadata.tables
    if type_ == "foreign_key_constraint" and name == "fk_messages_parent":
        return self_foreign_keys
    # Full-text indexes are built per backend by the migration (see chatledger._fulltext).
    return not (type_ == "index" and name is not None and name.startswith("search_"))


def _alembic_config(conn: Connection | None = None) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", "chatledger:migrations")
    if conn is not None:
        config.attributes["connection"] = conn
    return config


@cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def head() -> str:
    """The newest revision this version of chatledger knows."""
    revision = _scripts().get_current_head()
    if revision is None:  # pragma: no cover - the package always ships a history
        raise ConfigurationError("chatledger's migration history is empty")
    return revision


def history() -> list[Revision]:
    """Every revision, newest first."""
    top = head()
    return [
        Revision(
            revision=script.revision,
            down_revision=script.down_revision if isinstance(script.down_revision, str) else None,
            message=(script.doc or "").strip(),
            is_head=script.revision == top,
        )
        for script in _scripts().walk_revisions()
    ]


@contextmanager
def _connection(target: Target) -> Iterator[Connection]:
    """A connection to ``target``; SQLAlchemy and driver errors leave as chatledger errors."""
    if isinstance(target, Connection):
        yield target
        return
    engine: Engine
    owned = not isinstance(target, Engine)
    if isinstance(target, Engine):
        engine = target
        adopt_engine(engine, Config.load(engine.url))
    else:
        engine, _ = sync_engine(Config.load(target))
    try:
        with engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        password = engine.url.password
        secret = password if isinstance(password, str) else None
        raise translate(exc, backend_for(engine.url), secret=secret) from exc
    finally:
        if owned:
            engine.dispose()


def _current(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def current(target: Target = None) -> str | None:
    """The database's revision, or ``None`` when chatledger's schema is not installed."""
    with _connection(target) as conn:
        revision = _current(conn)
        if conn.in_transaction():
            conn.rollback()
        return revision


@contextmanager
def _migrating(conn: Connection) -> Iterator[None]:
    """One locked transaction for a migration. On SQLite, foreign keys are off meanwhile:
    batch mode rebuilds tables, and dropping a parent table with them on would cascade."""
    if conn.in_transaction():
        conn.rollback()
    backend = backend_of(conn)
    conn.execution_options(**{WRITE: True})
    sqlite = backend.name == "sqlite"
    if sqlite:
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        with conn.begin(), backend.migration_lock(conn):
            yield
    finally:
        backend.release_migration_lock(conn)
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def _run(conn: Connection, action: str, revision: str) -> None:
    from alembic import command

    before = _current(conn)
    if action == "upgrade":
        command.upgrade(_alembic_config(conn), revision)
    else:
        command.downgrade(_alembic_config(conn), revision)
    logger.info("schema %s: %s -> %s", action, before, _current(conn))


def upgrade(target: Target = None, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (default: the newest)."""
    with _connection(target) as conn, _migrating(conn):
        _run(conn, "upgrade", revision)


def downgrade(target: Target = None, revision: str = "-1") -> None:
    """Downgrade the schema to ``revision`` (``"base"`` removes chatledger's tables)."""
    with _connection(target) as conn, _migrating(conn):
        _run(conn, "downgrade", revision)


def check(target: Target = None) -> list[Any]:
    """Differences between the database and chatledger's models that a migration would
    have to make; empty when they agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with _connection(target) as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "include_object": partial(
                    include_object, self_foreign_keys=backend_of(conn).self_foreign_keys
                ),
            },
        )
        diffs: list[Any] = compare_metadata(context, Base.metadata)
        if conn.in_transaction():
            conn.rollback()
        return diffs


def ensure_schema(
    conn: Connection, *, auto_upgrade: bool, before_writing: Callable[[], None] | None = None
) -> None:
    """Make sure the schema is at :func:`head`: initialise an empty database, upgrade an old
    one if ``auto_upgrade``, else raise :class:`SchemaOutOfDateError`. ``before_writing`` is
    called before anything that may write (it raises on a read-only LiteFS replica)."""
    target = head()
    if _current(conn) == target:
        conn.rollback()
        return
    if before_writing is not None:
        conn.rollback()
        before_writing()
    with _migrating(conn):
        revision = _current(conn)  # again, now that we hold the lock
        if revision == target:
            return
        if revision is None:
            ours = set(inspect(conn).get_table_names()) & set(Base.metadata.tables)
            if ours:
                raise ConfigurationError(
                    "the database has tables named like chatledger's "
                    f"({', '.join(sorted(ours))}) but no chatledger revision: "
                    "use an empty database, or drop or rename those tables"
                )
            logger.info("initialising an empty database to revision %s", target)
        elif revision not in {r.revision for r in history()}:
            raise SchemaOutOfDateError(
                f"the database is at revision {revision}, which this version of chatledger "
                "does not know: it was migrated by a newer chatledger; upgrade chatledger",
                current=revision,
                head=target,
            )
        elif not auto_upgrade:
            raise SchemaOutOfDateError(
                f"the database schema is at revision {revision}, chatledger needs {target}: "
                "run `chatledger db upgrade` (or open the store with auto_upgrade=True)",
                current=revision,
                head=target,
            )
        _run(conn, "upgrade", "head")
