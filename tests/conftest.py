"""Test fixtures: one behavioural suite, run on every backend and on both surfaces.

- ``backend`` is parametrised over sqlite, postgresql and mariadb. Server URLs come from
  ``CHATLEDGER_TEST_POSTGRES_URL`` / ``CHATLEDGER_TEST_MARIADB_URL`` (defaults: the local
  servers). Each test session creates its own databases on them. An unreachable server skips
  its tests with the reason, except in CI (``CI=true``), where it fails them.
- ``store`` is a ledger on a fresh, empty, migrated database, parametrised over the sync
  surface (``Ledger``) and the async one (``AsyncLedger``, driven through a blocking adapter).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, make_url

from chatledger import AsyncLedger, Ledger, migrate
from chatledger._backends import sqlite_library
from chatledger._schema import Base, audit_chain


def _same_sqlite_library(cls: type) -> Any:
    return sqlite_library()


# The tests' own engines (sa.create_engine("sqlite:///...")) open the files with the SQLite
# library chatledger uses: two copies of SQLite in one process must not share a file (each
# ignores the other's POSIX locks; with the bundled pysqlite3, readers through Python's sqlite3
# saw stale rows).
SQLiteDialect_pysqlite.import_dbapi = classmethod(_same_sqlite_library)  # type: ignore[method-assign,assignment]

BACKENDS = ["sqlite", "postgresql", "mariadb"]
SURFACES = ["sync", "async"]
SERVER_URLS = {
    "postgresql": os.environ.get(
        "CHATLEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "CHATLEDGER_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _worker() -> str:
    """Distinguishes concurrent test sessions (and xdist workers) sharing one server."""
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


class ServerDatabases:
    """Creates and drops the session's databases on one server."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.admin_url = make_url(SERVER_URLS[backend])
        self.engine = sa.create_engine(
            self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        self.created: list[str] = []
        self.error: str | None = None
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # the reason, for the skip or failure message
            self.error = f"{backend} unreachable at {self.admin_url!r}: {type(exc).__name__}"

    def require(self) -> None:
        if self.error is None:
            return
        if IN_CI:
            pytest.fail(f"{self.error} (in CI an unreachable backend is a failure)")
        pytest.skip(self.error)

    def create(self, name: str) -> URL:
        """A new empty database called ``name`` (dropped first if it exists)."""
        self.require()
        quoted = f'"{name}"' if self.backend == "postgresql" else f"`{name}`"
        with self.engine.connect() as conn:
            if self.backend == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
                conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
                conn.execute(sa.text(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4"))
        self.created.append(name)
        return self.admin_url.set(database=name)

    def drop_all(self) -> None:
        if self.error is not None:
            return
        with self.engine.connect() as conn:
            for name in self.created:
                if self.backend == "postgresql":
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                else:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        self.engine.dispose()


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, ServerDatabases]]:
    found = {name: ServerDatabases(name) for name in SERVER_URLS}
    yield found
    for server in found.values():
        server.drop_all()


@pytest.fixture(scope="session")
def make_database(
    servers: dict[str, ServerDatabases], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], URL]:
    """``make_database(backend, label)``: the URL of a new, empty database."""

    def make(backend: str, label: str) -> URL:
        name = f"chatledger_{label}_{_worker()}"
        if backend == "sqlite":
            directory = tmp_path_factory.mktemp(label)
            return make_url(f"sqlite:///{directory / 'chatledger.db'}")
        return servers[backend].create(name)

    return make


@pytest.fixture(scope="session")
def migrated_databases() -> dict[str, URL]:
    """Per backend, one database migrated to head for the session (SQLite: a template file)."""
    return {}


def _reset(url: URL) -> None:
    """Empty every chatledger table, children first, and restore the rows the migrations seed
    (the audit chain's head). A deadlock is retried: on a Galera cluster the emptying can
    lose certification to a write the previous test left replicating on another node."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        for attempt in range(1, 6):
            try:
                with engine.begin() as conn:
                    for table in reversed(Base.metadata.sorted_tables):
                        conn.execute(table.delete())
                    conn.execute(
                        audit_chain.insert(), {"id": 1, "last_seq": 0, "last_hash": "0" * 64}
                    )
                return
            except sa.exc.OperationalError as exc:
                deadlock = getattr(exc.orig, "args", (None,))[0] == 1213
                if not deadlock or attempt == 5:
                    raise
                time.sleep(0.1 * attempt)
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def database_url(
    backend: str,
    make_database: Callable[[str, str], URL],
    migrated_databases: dict[str, URL],
    tmp_path: Path,
) -> URL:
    """A migrated, empty database of ``backend`` for one test."""
    if backend not in migrated_databases:
        url = make_database(backend, "suite")
        migrate.upgrade(url)
        migrated_databases[backend] = url
    url = migrated_databases[backend]
    if backend == "sqlite":
        copy = tmp_path / "chatledger.db"
        shutil.copyfile(str(url.database), copy)
        return make_url(f"sqlite:///{copy}")
    _reset(url)
    return url


class Portal:
    """Runs coroutines to completion on one event loop, in one persistent context, so that
    a transaction opened by one call is seen by the next (as in an ``async with`` block)."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.context = contextvars.copy_context()

    def call(self, awaitable: Any) -> Any:
        return self.runner.run(awaitable, context=self.context)

    def close(self) -> None:
        self.runner.close()


class Blocking:
    """A blocking view of an async store, resource or scope, with the sync surface's shape."""

    def __init__(self, target: Any, portal: Portal) -> None:
        self._target = target
        self._portal = portal

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name == "transaction":
            return lambda: _BlockingContext(attr(), self._portal)
        if inspect.iscoroutinefunction(attr):
            return lambda *args, **kwargs: self._wrap(self._portal.call(attr(*args, **kwargs)))
        if inspect.isasyncgenfunction(attr):
            return lambda *args, **kwargs: self._iterate(attr(*args, **kwargs))
        if name == "as_user":
            return lambda user_id: Blocking(attr(user_id), self._portal)
        if hasattr(attr, "_store"):  # a resource of the store
            return Blocking(attr, self._portal)
        return attr

    def _wrap(self, result: Any) -> Any:
        """A result with async methods of its own (a stream writer) is blocking too."""
        return Blocking(result, self._portal) if hasattr(result, "_store") else result

    def _iterate(self, iterator: Any) -> Iterator[Any]:
        """An async iterator, consumed on the portal's loop."""
        try:
            while True:
                try:
                    yield self._portal.call(iterator.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._portal.call(iterator.aclose())

    def __enter__(self) -> Blocking:
        self._portal.call(self._target.open())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._portal.call(self._target.close())


class _BlockingContext:
    def __init__(self, manager: Any, portal: Portal) -> None:
        self._manager = manager
        self._portal = portal

    def __enter__(self) -> Blocking:
        return Blocking(self._portal.call(self._manager.__aenter__()), self._portal)

    def __exit__(self, *exc_info: Any) -> bool:
        return bool(self._portal.call(self._manager.__aexit__(*exc_info)))


@pytest.fixture(params=SURFACES)
def surface(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def open_store(surface: str) -> Iterator[Callable[..., Any]]:
    """``open_store(url, **options)``: an opened store on the parametrised surface; all are
    closed after the test."""
    opened: list[Any] = []
    portals: list[Portal] = []

    def open_(url: URL | str, **options: Any) -> Any:
        if surface == "sync":
            store: Any = Ledger(url, **options)
        else:
            portal = Portal()
            portals.append(portal)
            store = Blocking(AsyncLedger(url, **options), portal)
        store.__enter__()
        opened.append(store)
        return store

    yield open_
    for store in reversed(opened):
        store.__exit__(None, None, None)
    for portal in portals:
        portal.close()


@pytest.fixture
def store(database_url: URL, open_store: Callable[..., Any]) -> Any:
    """A ledger on a fresh migrated database, on each backend and surface."""
    return open_store(database_url)


@pytest.fixture
def ledger(database_url: URL) -> Iterator[Ledger]:
    """A sync ledger on a fresh migrated database of each backend."""
    with Ledger(database_url) as opened:
        yield opened


@pytest.fixture
def user(store: Any) -> Any:
    return store.users.create(external_id=f"user-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def chat(store: Any, user: Any) -> Any:
    return store.conversations.create(user.id, title="a chat")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs on SQLite (its id names sqlite: a ``backend`` parameter, or a
    file or test about SQLite) with ``sqlite``: ``make test`` runs those a second time on the
    system SQLite library (``CHATLEDGER_SQLITE_LIBRARY=system``)."""
    for item in items:
        if "sqlite" in item.nodeid.lower():
            item.add_marker(pytest.mark.sqlite)
