"""The behavioural suite's core, re-collected against a server a cluster test started.

A cluster test module calls :func:`adopt` with its globals: the core test functions (and
the fixtures their modules define) become the module's own, so pytest collects them there,
where the module's ``backend`` and ``database_url`` fixtures (pointing at the cluster)
override the shared servers' from tests/conftest.py.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import migrate
from tests import test_concurrency, test_messages, test_tokens, test_transactions
from tests.conftest import _reset

#: Appends (with idempotency keys, batches, charges), token debits and credits (with their
#: thread races) and caller-owned transactions: what a cluster must not change.
CORE: tuple[ModuleType, ...] = (test_messages, test_tokens, test_transactions)
#: The concurrency tests on one server (the cluster modules add their own spread over nodes).
CONCURRENCY = (
    test_concurrency.test_threads_appending_to_one_conversation_lose_nothing,
    test_concurrency.test_racing_appends_with_one_idempotency_key_store_one_message,
)


def adopt(namespace: dict[str, Any], *modules: ModuleType) -> None:
    """Copy the tests and module fixtures of ``modules`` (default :data:`CORE`) into
    ``namespace``, without overwriting a name the cluster module defines itself."""
    for module in modules or CORE:
        for name, value in vars(module).items():
            fixture = type(value).__name__ == "FixtureFunctionDefinition"
            if (name.startswith("test_") and not _pins_backend(value)) or fixture:
                namespace.setdefault(name, value)
    for test in CONCURRENCY:
        namespace.setdefault(test.__name__, test)


def _pins_backend(test: Any) -> bool:
    """Whether ``test`` chooses its own backends (``parametrize("backend", ...)``): such a
    test is about one backend (SQLite's locking, say), not about the cluster's."""
    return any(
        mark.name == "parametrize" and "backend" in str(mark.args[0])
        for mark in getattr(test, "pytestmark", [])
    )


def create_database(admin: URL, name: str) -> URL:
    """A new empty MariaDB or PostgreSQL database ``name`` on the server of ``admin``."""
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    quoted = (
        f"`{name}` CHARACTER SET utf8mb4" if admin.get_backend_name() == "mysql" else f'"{name}"'
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()
    return admin.set(database=name)


def migrated(url: URL) -> URL:
    """``url`` after migrating its database to head."""
    migrate.upgrade(url)
    return url


def settled(urls: list[URL], timeout: float = 30.0) -> list[URL]:
    """``urls`` (one database on each node) once every node holds every chatledger table:
    Galera applies a DDL statement on the other nodes in total order, not before the
    statement returns on the node that ran it, so a migration seen on one node may still be
    arriving on the next."""
    import time

    from chatledger._schema import Base

    wanted = set(Base.metadata.tables)
    deadline = time.monotonic() + timeout
    for url in urls:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            while not wanted <= set(sa.inspect(engine).get_table_names()):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url.host}:{url.port} lacks chatledger's tables")
                time.sleep(0.1)
        finally:
            engine.dispose()
    return urls


def reset(url: URL) -> URL:
    """``url`` with every chatledger table emptied (as tests/conftest.py does per test)."""
    _reset(url)
    return url
