"""What ``chatledger doctor`` reports: the configuration in effect and the state of the database,
gathered without changing anything (an SQLite file that does not exist is not created)."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from . import migrate
from ._backends import has_wal_reset_bug, is_memory_sqlite
from ._run.engine import sync_engine
from ._run.translate import translate
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
    journal_mode: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the database is usable by this chatledger as it stands."""
        return not self.problems


def _server_version(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        return sqlite3.sqlite_version
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
            found.problems.append("the schema is not installed: run `chatledger init`")
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


def diagnose(config: Config) -> Diagnosis:
    """Check the configured database: reachable, its version, its schema revision and pending
    differences, and for SQLite the library version (WAL-reset bug) and the journal mode."""
    found = Diagnosis(
        url=config.redacted_url(),
        backend=config.backend,
        settings={
            name: (
                config.redacted_url() if name == "url" else getattr(config, name),
                source,
            )
            for name, source in config.sources.items()
        },
    )
    if config.backend == "sqlite":
        found.sqlite_version = sqlite3.sqlite_version
        if has_wal_reset_bug(sqlite3.sqlite_version_info):
            found.warnings.append(
                f"SQLite {sqlite3.sqlite_version} has the WAL-reset corruption bug (fixed in "
                "3.51.3, 3.50.7 and 3.44.6): use a Python built with a fixed SQLite in production"
            )
        database = config.url.database
        on_disk = database and not database.startswith("file:") and not is_memory_sqlite(config.url)
        if on_disk and not Path(str(database)).expanduser().is_file():
            found.problems.append(
                f"the database file {database} does not exist: run `chatledger init`"
            )
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
    return found
