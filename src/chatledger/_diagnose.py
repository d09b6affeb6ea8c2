"""What ``chatledger doctor`` reports: the configuration in effect and the state of the database,
gathered without changing anything (an SQLite file that does not exist is not created)."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from . import migrate
from ._backends import backend_for, has_wal_reset_bug, is_memory_sqlite, sqlite_library
from ._run.engine import pool_budget, sync_engine
from ._run.replicas import litefs_for
from ._run.translate import translate
from ._schema import Base
from .config import Config
from .errors import ChatledgerError

__all__ = ["Diagnosis", "diagnose"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Diagnosis:
    """The findings of :func:`diagnose`. ``problems`` make the verdict bad; ``warnings`` don't."""

    url: str
    backend: str
    settings: dict[str, tuple[object, str]]
    reachable: bool = False
    server_version: str | None = None
    revision: str | None = None
    head: str = field(default_factory=migrate.head)
    #: Migrations between the database's revision and the newest, oldest first.
    migrations: list[str] = field(default_factory=list)
    #: Differences between the database and chatledger's models (at the newest revision).
    pending: list[str] = field(default_factory=list)
    sqlite_version: str | None = None
    #: The DB-API module SQLite is used through, and its file.
    sqlite_library: str | None = None
    sqlite_wal_reset_bug: bool | None = None
    journal_mode: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The most connections one process opens, and how the pools share them.
    connections: int = 0
    pools: str = ""
    #: What will happen on first open (an empty database is set up then), not a problem.
    notes: list[str] = field(default_factory=list)
    #: Each replica: ``url``, ``reachable``, ``lag`` (seconds, None when unreachable or not
    #: replicating), ``position``, ``error``.
    replicas: list[dict[str, object]] = field(default_factory=list)
    #: On a LiteFS mount: ``mount``, ``primary`` (this node is), ``primary_host``, ``position``.
    litefs: dict[str, object] | None = None

    @property
    def ok(self) -> bool:
        """Whether the database is usable by this chatledger as it stands."""
        return not self.problems


def _server_version(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        library: Any = conn.dialect.dbapi  # the module the engine was created with
        return str(library.sqlite_version)
    version = conn.execute(text("SELECT version()")).scalar_one()
    return str(version)


def _inspect(conn: Connection, found: Diagnosis) -> None:
    found.reachable = True
    found.server_version = _server_version(conn)
    if conn.dialect.name == "sqlite":
        found.journal_mode = str(conn.execute(text("PRAGMA journal_mode")).scalar_one())
    found.revision = migrate.current(conn)
    steps = migrate.history()  # newest first
    known = [step.revision for step in steps]
    if found.revision is not None and found.revision not in known:
        found.problems.append(
            f"the schema is at revision {found.revision}, unknown to this chatledger "
            "(migrated by a newer version): upgrade chatledger"
        )
    else:
        newer = steps[: known.index(found.revision)] if found.revision else steps
        found.migrations = [f"{step.revision} {step.message}".strip() for step in reversed(newer)]
        if found.revision is None:
            ours = set(inspect(conn).get_table_names()) & set(Base.metadata.tables)
            if ours:
                found.problems.append(
                    "the database has tables named like chatledger's "
                    f"({', '.join(sorted(ours))}) but no chatledger revision: opening it fails"
                )
            else:
                found.notes.append(
                    f"the database is empty: the first open (the library, `chatledger serve`, "
                    f"any command) installs the schema at {found.head}, or run `chatledger init`"
                )
        elif found.migrations:
            found.problems.append(
                f"the schema is at {found.revision}, this chatledger needs {found.head}: "
                f"run `chatledger db upgrade` ({len(found.migrations)} migrations pending)"
            )
        else:
            found.pending = [str(diff) for diff in migrate.check(conn)]
            if found.pending:
                found.problems.append("the schema differs from chatledger's models")
    if conn.in_transaction():
        conn.rollback()


def _setting(config: Config, name: str) -> object:
    """A setting's value as shown: the URL and its parts (``url.host``...) without password."""
    if name == "url":
        return config.redacted_url()
    if name == "url.password":
        return "***"
    if name == "replicas":
        return ", ".join(config.redacted_replicas()) or "-"
    if name.startswith("url."):
        return getattr(config.url, name.removeprefix("url."))
    return getattr(config, name)


def diagnose(config: Config) -> Diagnosis:
    """Check the configured database: reachable, its version, its schema revision and pending
    differences, and for SQLite the library version (WAL-reset bug) and the journal mode."""
    found = Diagnosis(
        url=config.redacted_url(),
        backend=config.backend,
        settings={
            name: (_setting(config, name), source) for name, source in config.sources.items()
        },
    )
    budget = pool_budget(config, backend_for(config.url))
    found.connections = budget.connections
    found.pools = f"writes {budget.writes[0]} + {budget.writes[1]} overflow" + (
        f", autocommit reads {budget.reads[0]} + {budget.reads[1]} overflow" if budget.reads else ""
    )
    if config.backend == "sqlite":
        library = sqlite_library()
        found.sqlite_version = library.sqlite_version
        found.sqlite_library = f"{library.__name__.split('.')[0]} ({library.__file__})"
        found.sqlite_wal_reset_bug = has_wal_reset_bug(library.sqlite_version_info)
        if found.sqlite_wal_reset_bug:
            found.warnings.append(
                f"SQLite {library.sqlite_version} has the WAL-reset corruption bug (fixed in "
                "3.51.3, 3.50.7 and 3.44.6): install chatledger[sqlite] (a current SQLite) "
                "for production"
            )
        database = config.url.database
        on_disk = database and not database.startswith("file:") and not is_memory_sqlite(config.url)
        if on_disk and not Path(str(database)).expanduser().is_file():
            found.notes.append(
                f"the database file {database} does not exist yet: the first open (the "
                "library, `chatledger serve`, any command) creates it, its directory and the "
                f"schema at {found.head}, or run `chatledger init`"
            )
            steps = reversed(migrate.history())
            found.migrations = [f"{step.revision} {step.message}".strip() for step in steps]
            return found
    try:
        engine, backend = sync_engine(config)
    except ChatledgerError as exc:
        found.problems.append(str(exc))
        return found
    secret = engine.url.password if isinstance(engine.url.password, str) else None
    try:
        with engine.connect() as conn:
            _inspect(conn, found)
    except SQLAlchemyError as exc:
        found.problems.append(f"unreachable: {translate(exc, backend, secret=secret)}")
    except ChatledgerError as exc:
        found.problems.append(f"unreachable: {exc}")
    finally:
        engine.dispose()
    if found.journal_mode is not None and found.journal_mode.lower() != "wal":
        found.warnings.append(f"journal mode is {found.journal_mode}, not WAL")
    _replicas(config, found)
    return found


def _replicas(config: Config, found: Diagnosis) -> None:
    """Each replica's reachability and lag; the LiteFS node's role and position. A replica
    that is down or too far behind is a warning: reads skip it and go elsewhere."""
    if config.backend == "sqlite":
        litefs = litefs_for(config.url.database)
        if litefs is not None:
            primary, host = litefs.primary()
            found.litefs = {
                "mount": str(litefs.mount),
                "primary": primary,
                "primary_host": host,
                "position": litefs.position(),
            }
        return
    replication = backend_for(config.url).replication
    for url, shown in zip(config.replicas, config.redacted_replicas(), strict=True):
        entry: dict[str, object] = {"url": shown, "reachable": False, "lag": None}
        entry.update(position=None, error=None)
        replica = dataclasses.replace(config, url=url, replicas=())
        try:
            engine, backend = sync_engine(replica)
        except ChatledgerError as exc:
            entry["error"] = str(exc)
            found.replicas.append(entry)
            continue
        secret = url.password if isinstance(url.password, str) else None
        try:
            with engine.connect() as conn:
                status = replication.replica_status(conn)
                conn.rollback()
            lag = None if math.isinf(status.lag) else status.lag
            entry.update(reachable=True, lag=lag, position=status.position)
            if lag is None:
                found.warnings.append(f"replica {shown} is not replicating: reads skip it")
            elif lag > config.replica_max_lag:
                found.warnings.append(
                    f"replica {shown} lags {lag:.1f}s, more than replica_max_lag "
                    f"{config.replica_max_lag:g}s: reads skip it"
                )
        except SQLAlchemyError as exc:
            entry["error"] = str(translate(exc, backend, secret=secret))
            found.warnings.append(f"replica {shown} is unreachable: reads skip it")
        finally:
            engine.dispose()
        found.replicas.append(entry)
