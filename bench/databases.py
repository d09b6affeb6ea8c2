"""Scratch databases: a fresh one per system and workload, dropped at the end of the run.

SQLite databases are files in a temporary directory. PostgreSQL and MariaDB databases are
called ``chatledger_bench_<pid>_<n>`` on the servers named by ``CHATLEDGER_BENCH_POSTGRES_URL``
and ``CHATLEDGER_BENCH_MARIADB_URL`` (default: the local test servers).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

__all__ = ["BACKENDS", "Scratch", "Scratches"]

BACKENDS: Final = ("sqlite", "postgresql", "mariadb")

SERVER_URLS: Final = {
    "postgresql": os.environ.get(
        "CHATLEDGER_BENCH_POSTGRES_URL",
        os.environ.get(
            "CHATLEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    ),
    "mariadb": os.environ.get(
        "CHATLEDGER_BENCH_MARIADB_URL",
        os.environ.get("CHATLEDGER_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    ),
}

#: The session settings chatledger gives MariaDB connections; the raw reference uses them too.
MARIADB_SQL_MODE: Final = (
    "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
    "NO_ENGINE_SUBSTITUTION"
)


@dataclass(frozen=True, slots=True)
class Scratch:
    """One scratch database."""

    backend: str
    name: str
    #: The URL chatledger (and SQLAlchemy-based peers) open.
    url: URL
    #: The SQLite file (``None`` on servers).
    path: Path | None = None

    @property
    def url_string(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def psycopg_conninfo(self) -> str:
        """The libpq connection string of a PostgreSQL database."""
        url = self.url
        parts = {
            "host": url.host or "127.0.0.1",
            "port": str(url.port or 5432),
            "user": url.username or "postgres",
            "dbname": url.database or "",
        }
        if url.password:
            parts["password"] = str(url.password)
        return " ".join(f"{key}={value}" for key, value in parts.items())

    def pymysql_kwargs(self) -> dict[str, Any]:
        """Connection arguments for PyMySQL/aiomysql, with chatledger's session settings."""
        url = self.url
        return {
            "host": url.host or "127.0.0.1",
            "port": url.port or 3306,
            "user": url.username or "root",
            "password": str(url.password or ""),
            "database": url.database,
            "charset": "utf8mb4",
            "init_command": f"SET SESSION sql_mode='{MARIADB_SQL_MODE}', time_zone='+00:00'",
        }


class Scratches:
    """Creates scratch databases on each reachable backend and drops them all at the end."""

    def __init__(self, backends: tuple[str, ...]) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="chatledger_bench_"))
        self.unreachable: dict[str, str] = {}
        self._admin: dict[str, sa.Engine] = {}
        self._created: list[Scratch] = []
        self._counter = 0
        for backend in backends:
            if backend == "sqlite":
                continue
            url = make_url(SERVER_URLS[backend])
            engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            except Exception as exc:  # the reason is reported as "n/a"
                self.unreachable[backend] = (
                    f"{backend} unreachable at {url.render_as_string()}: {type(exc).__name__}"
                )
                engine.dispose()
                continue
            self._admin[backend] = engine

    def available(self, backend: str) -> bool:
        return backend == "sqlite" or backend in self._admin

    def create(self, backend: str, label: str) -> Scratch:
        """A new, empty database."""
        self._counter += 1
        name = f"chatledger_bench_{os.getpid()}_{self._counter}_{label}"[:60]
        if backend == "sqlite":
            path = self.directory / f"{name}.db"
            scratch = Scratch(backend, name, make_url(f"sqlite:///{path}"), path)
        else:
            engine = self._admin[backend]
            with engine.connect() as conn:
                if backend == "postgresql":
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                else:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
                    conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            scratch = Scratch(backend, name, engine.url.set(database=name))
        self._created.append(scratch)
        return scratch

    def drop(self, scratch: Scratch) -> None:
        """Drop one database (its connections must be closed; PostgreSQL forces them)."""
        if scratch.path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{scratch.path}{suffix}").unlink(missing_ok=True)
        else:
            with self._admin[scratch.backend].connect() as conn:
                if scratch.backend == "postgresql":
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{scratch.name}" WITH (FORCE)'))
                else:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{scratch.name}`"))
        if scratch in self._created:
            self._created.remove(scratch)

    def close(self) -> None:
        for scratch in list(self._created):
            try:
                self.drop(scratch)
            except Exception as exc:  # keep dropping the others
                print(f"warning: could not drop {scratch.name}: {exc}")
        for engine in self._admin.values():
            engine.dispose()
        shutil.rmtree(self.directory, ignore_errors=True)

    def server_version(self, backend: str) -> str | None:
        if backend == "sqlite":
            return sqlite3.sqlite_version
        engine = self._admin.get(backend)
        if engine is None:
            return None
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT version()")).scalar())

    def server_settings(self, backend: str) -> dict[str, str]:
        """The durability settings in force on a server."""
        engine = self._admin.get(backend)
        if engine is None:
            return {}
        names = (
            ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes")
            if backend == "postgresql"
            else ("innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin", "innodb_doublewrite")
        )
        found: dict[str, str] = {}
        with engine.connect() as conn:
            for name in names:
                if backend == "postgresql":
                    found[name] = str(conn.execute(sa.text(f"SHOW {name}")).scalar())
                else:
                    row = conn.execute(sa.text(f"SHOW VARIABLES LIKE '{name}'")).first()
                    found[name] = "" if row is None else str(row[1])
        return found
