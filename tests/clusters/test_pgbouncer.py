"""chatledger through PgBouncer in transaction mode, in front of a PostgreSQL of its own.

PgBouncer (tests/clusters/_servers.py) hands each transaction whichever server connection is
free, with a pool smaller than the clients, so session state that leaked (a prepared
statement, a ``SET``) would show up on another client's transaction. The behavioural suite's
core runs through it with ``pooler=True`` declared, and the tests below check what the pooler
changes: no server-side prepared statements, the session time zone kept, detection without
the declaration.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import AsyncLedger, Config, Ledger
from chatledger._run.engine import sync_engine
from tests.clusters import _suite
from tests.clusters._servers import PgBouncer, PostgreSQL
from tests.conftest import Blocking, Portal

#: One worker runs the module (`--dist loadgroup`): one cluster per test run, not per worker.
pytestmark = pytest.mark.xdist_group("test_pgbouncer")

_suite.adopt(globals())


#: The server's own time zone is not UTC, so a session that lost chatledger's shows.
SERVER_TIME_ZONE = "America/New_York"


@pytest.fixture(scope="module")
def pooler() -> Iterator[PgBouncer]:
    # Server connections outnumbered by clients: transactions of different clients share them.
    server = PostgreSQL({"timezone": f"'{SERVER_TIME_ZONE}'"})
    with server, PgBouncer(server, pool_mode="transaction", pool_size=3) as bouncer:
        yield bouncer


@pytest.fixture(scope="module", autouse=True)
def declared() -> Iterator[None]:
    """The pooler is declared (``CHATLEDGER_POOLER=1``) for the module's ledgers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHATLEDGER_POOLER", "1")
        yield


@pytest.fixture(scope="module")
def pooled_url(pooler: PgBouncer, declared: None) -> URL:
    """A migrated database, reached through the pooler."""
    name = f"chatledger_pooled_{uuid.uuid4().hex[:6]}"
    _suite.create_database(pooler.server.url(), name)
    return _suite.migrated(pooler.url(name))


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def database_url(pooled_url: URL) -> URL:
    return _suite.reset(pooled_url)


def _time_zones(engine: sa.Engine, count: int) -> set[str]:
    """The session time zone seen by ``count`` transactions (each may get another server
    connection from the pooler)."""
    zones = set()
    for _ in range(count):
        with engine.connect() as conn:
            zones.add(conn.execute(sa.text("SHOW TimeZone")).scalar_one())
            conn.rollback()
    return zones


def test_the_pooler_is_read_from_the_configuration(pooled_url):
    config = Config.load(pooled_url)
    assert config.pooler is True
    assert config.sources["pooler"] == "env CHATLEDGER_POOLER"


def test_no_statement_is_prepared_on_the_server_and_time_stays_utc(pooled_url, pooler):
    with Ledger(pooled_url) as ledger:
        user = ledger.users.create()
        chat = ledger.conversations.create(user.id)
        for i in range(20):  # well past psycopg's default prepare_threshold of 5
            sent = ledger.messages.append(chat.id, "user", f"m{i}")
            assert ledger.messages.last(chat.id, 1) == [sent]
            assert sent.created_at.tzinfo is UTC
    engine, _ = sync_engine(Config.load(pooled_url))
    raw = sa.create_engine(pooled_url, poolclass=sa.pool.NullPool)
    try:
        assert _time_zones(engine, 12) == {"UTC"}
        with engine.connect() as conn:
            for _ in range(12):  # each transaction may land on another server connection
                prepared = conn.execute(sa.text("SELECT count(*) FROM pg_prepared_statements"))
                assert prepared.scalar_one() == 0
                conn.rollback()
        # chatledger's UTC is its clients' own: another client keeps the server's zone.
        assert _time_zones(raw, 12) == {SERVER_TIME_ZONE}
    finally:
        engine.dispose()
        raw.dispose()


@pytest.mark.parametrize("surface", ["sync", "async"])
def test_an_undeclared_pooler_is_detected(pooled_url, surface, monkeypatch):
    monkeypatch.delenv("CHATLEDGER_POOLER")
    assert Config.load(pooled_url).pooler is False
    if surface == "sync":
        store: Any = Ledger(pooled_url)
    else:
        portal = Portal()
        store = Blocking(AsyncLedger(pooled_url), portal)
    try:
        with store:
            user = store.users.create()
            chat = store.conversations.create(user.id)
            sent = [store.messages.append(chat.id, "user", f"m{i}") for i in range(12)]
            assert store.messages.last(chat.id, 12) == sent
            assert {m.created_at.tzinfo for m in sent} == {UTC}
    finally:
        if surface == "async":
            portal.close()
