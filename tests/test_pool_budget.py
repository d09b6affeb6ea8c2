"""``pool_size`` and ``max_overflow`` are the process's totals: the autocommit read pool of
PostgreSQL and MariaDB shares them with the write pool instead of doubling them."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from chatledger import Config, Ledger
from chatledger._backends import backend_for
from chatledger._run.engine import PoolBudget, pool_budget

SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)

_CONNECTIONS = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE datname = :name "
    "AND application_name = 'chatledger'",
    "mariadb": "SELECT count(*) FROM information_schema.processlist WHERE db = :name "
    "AND id <> connection_id()",
}


@SERVERS
def test_a_process_never_holds_more_connections_than_the_pool_settings(backend, database_url):
    config = Config.load(database_url, environ={}, pool_size=2, max_overflow=1, pool_timeout=30)
    monitor = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    peak = 0
    done = threading.Event()
    errors: list[BaseException] = []

    def watch() -> None:
        nonlocal peak
        with monitor.connect() as conn:
            query = sa.text(_CONNECTIONS[backend])
            while not done.is_set():
                count = conn.execute(query, {"name": database_url.database}).scalar_one()
                peak = max(peak, int(count))
                if backend == "postgresql":
                    conn.rollback()  # a fresh snapshot of pg_stat_activity

    with Ledger(config=config) as ledger:
        user = ledger.users.create(external_id="pool")
        chat = ledger.conversations.create(user.id)

        def work() -> None:
            try:
                for index in range(15):
                    ledger.messages.append(chat.id, "user", f"message {index}")
                    ledger.messages.last(chat.id, 5)
                    ledger.conversations.get(chat.id)
            except BaseException as exc:
                errors.append(exc)

        watcher = threading.Thread(target=watch)
        watcher.start()
        workers = [threading.Thread(target=work) for _ in range(8)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        done.set()
        watcher.join()
        assert not errors
        assert ledger.conversations.get(chat.id).message_count == 8 * 15
    monitor.dispose()
    assert 1 <= peak <= 3


@pytest.mark.parametrize(
    ("backend", "size", "overflow", "expected"),
    [
        ("postgresql", 2, 1, PoolBudget((1, 1), (1, 0))),
        ("postgresql", 1, 5, PoolBudget((1, 5), None)),  # no steady read connection: no pool
        ("mariadb", 10, 20, PoolBudget((5, 10), (5, 10))),
        ("mariadb", None, None, PoolBudget((5, 10), (5, 10))),  # the defaults: 30 in all
        ("sqlite", None, None, PoolBudget((5, 10), None)),  # SQLAlchemy's defaults
        ("sqlite", 3, 0, PoolBudget((3, 0), None)),
    ],
)
def test_pool_budget(backend, size, overflow, expected):
    url = {"postgresql": "postgresql://h/d", "mariadb": "mysql://h/d", "sqlite": "sqlite:///x"}
    config = Config.load(url[backend], environ={}, pool_size=size, max_overflow=overflow)
    budget = pool_budget(config, backend_for(config.url))
    assert budget == expected
    total = (10 if size is None else size) + (20 if overflow is None else overflow)
    if backend != "sqlite":
        assert budget.connections == total
