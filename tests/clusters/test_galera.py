"""chatledger on a three-node MariaDB Galera Cluster (synchronous multi-primary) on loopback.

The cluster is started once for the module (tests/clusters/_servers.py) with
``wsrep_mode=REQUIRED_PRIMARY_KEY,STRICT_REPLICATION``, so a table without a primary key or
outside InnoDB is refused. The behavioural suite's core runs against it, each test through
one node (rotating), and the tests below write through all three nodes at once.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import (
    Config,
    InsufficientBalanceError,
    Ledger,
    RetryPolicy,
    TransientError,
    migrate,
)
from chatledger._backends import MariaDB
from chatledger._run.engine import sync_engine
from chatledger._run.translate import translate
from tests._threads import run_threads as _run_threads
from tests.clusters import _suite
from tests.clusters._servers import Galera
from tests.test_concurrency import _assert_gap_free, _read_all
from tests.test_tokens import all_entries, assert_chained

NODES = 3
PER_NODE = 2  # writer threads per node

#: One worker runs the module (`--dist loadgroup`): one cluster per test run, not per worker.
pytestmark = pytest.mark.xdist_group("test_galera")

_suite.adopt(globals())


@pytest.fixture(scope="module")
def galera() -> Iterator[Galera]:
    with Galera(NODES, {"wsrep_mode": "REQUIRED_PRIMARY_KEY,STRICT_REPLICATION"}) as cluster:
        yield cluster


_counter = itertools.count()


def _new_database(cluster: Galera, label: str) -> list[URL]:
    """A new empty database (created through node 1, replicated): its URL on every node."""
    name = f"chatledger_{label}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    _suite.create_database(cluster.nodes[0].url(), name)
    return cluster.urls(name)


@pytest.fixture(scope="module")
def galera_urls(galera: Galera) -> list[URL]:
    """One migrated database for the module's tests: its URL on each node."""
    urls = _new_database(galera, "suite")
    _suite.migrated(urls[0])
    return _suite.settled(urls)


@pytest.fixture
def backend() -> str:
    return "mariadb"


@pytest.fixture
def database_url(galera_urls: list[URL]) -> URL:
    """The suite's database, emptied, through the next node in turn."""
    return _suite.reset(galera_urls[next(_counter) % NODES])


#: Writers on several nodes to one row conflict at certification, each conflict a retried
#: rollback: the retry budget grows with nodes x writers (docs/scale-out.md).
CLUSTER_RETRY = RetryPolicy(attempts=40, base_delay=0.005, max_delay=0.25)


@pytest.fixture
def ledgers(galera_urls: list[URL]) -> Iterator[list[Ledger]]:
    """One ledger per node on the emptied suite database."""
    _suite.reset(galera_urls[0])
    opened = [Ledger(url, retry=CLUSTER_RETRY) for url in galera_urls]
    for ledger in opened:
        ledger.open()
    yield opened
    for ledger in opened:
        ledger.close()


def _spread(count: int, ledgers: list[Ledger]) -> list[Ledger]:
    """The ledger each of ``count`` threads uses: node 1, 2, 3, 1, 2, 3, ..."""
    return [ledgers[i % len(ledgers)] for i in range(count)]


def test_sessions_read_causally_and_the_cluster_is_whole(galera_urls):
    for url in galera_urls:
        engine, _ = sync_engine(Config.load(url))
        try:
            with engine.connect() as conn:
                wait = conn.execute(sa.text("SELECT @@wsrep_sync_wait")).scalar()
                size = conn.execute(sa.text("SHOW STATUS LIKE 'wsrep_cluster_size'")).one()[1]
        finally:
            engine.dispose()
        assert wait is not None
        assert wait & 1
        assert size == str(NODES)


def test_writes_through_one_node_are_read_through_the_others(ledgers):
    first, *others = ledgers
    user = first.users.create()
    chat = first.conversations.create(user.id)
    for i in range(30):
        sent = first.messages.append(chat.id, "user", f"m{i}")
        for other in others:  # causal reads: no waiting, no retry
            assert other.messages.last(chat.id, 1) == [sent]
            assert other.conversations.get(chat.id).message_count == i + 1


def test_writers_on_three_nodes_to_one_conversation_lose_nothing(ledgers):
    per_thread = 60
    user = ledgers[0].users.create()
    chat = ledgers[0].conversations.create(user.id)
    writers = _spread(NODES * PER_NODE, ledgers)

    def append(index: int) -> list[Any]:
        ledger = writers[index]
        return [ledger.messages.append(chat.id, "user", f"t{index}-{i}") for i in range(per_thread)]

    results = _run_threads(len(writers), append)
    returned = [m for batch in results for m in batch]
    for reader in ledgers:  # every node holds the same gap-free history
        stored = _assert_gap_free(reader, chat.id, returned)
        assert len(stored) == len(writers) * per_thread
    for index, batch in enumerate(results):
        assert [m.seq for m in batch] == sorted(m.seq for m in batch)
        assert [stored[m.seq - 1].content for m in batch] == [
            f"t{index}-{i}" for i in range(per_thread)
        ]


def test_racing_idempotent_appends_on_three_nodes_store_one_message(ledgers):
    user = ledgers[0].users.create()
    writers = _spread(NODES * PER_NODE, ledgers)
    for round_ in range(5):
        chat = ledgers[0].conversations.create(user.id)
        key = f"req-{round_}-{uuid.uuid4().hex}"

        def append(i: int, chat_id: uuid.UUID = chat.id, key: str = key) -> Any:
            return writers[i].messages.append(chat_id, "user", f"try {i}", idempotency_key=key)

        results = _run_threads(len(writers), append)
        assert len({m.id for m in results}) == 1
        for reader in ledgers:
            assert _read_all(reader, chat.id) == [results[0]]
            assert reader.conversations.get(chat.id).message_count == 1


def test_debits_on_three_nodes_never_overdraw_and_balances_are_exact(ledgers):
    user = ledgers[0].users.create()
    initial = 150
    ledgers[0].tokens.credit(initial, user_id=user.id, reason="initial")
    writers = _spread(NODES * PER_NODE, ledgers)
    attempts = 40

    def debit(index: int) -> int:
        spent = 0
        for _ in range(attempts):
            try:
                writers[index].tokens.debit(1, user_id=user.id, reason="spread")
            except InsufficientBalanceError:
                continue
            spent += 1
        return spent

    spent = sum(_run_threads(len(writers), debit))
    assert spent == initial  # 240 attempts for 150 tokens: exactly the balance is spent
    for reader in ledgers:
        assert reader.tokens.balance(user.id) == 0
        entries = all_entries(reader.tokens, user.id)
        assert len(entries) == 1 + initial
        assert_chained(entries)
        assert reader.tokens.verify(user.id)


def test_a_certification_failure_at_commit_is_a_retriable_known_rollback(galera_urls):
    # Two nodes update one row at once: each commits locally, only the first write set
    # ordered passes certification; the second fails at COMMIT with "deadlock" (1213).
    with Ledger(galera_urls[0]) as ledger:
        user_id = str(ledger.users.create().id)
    engines = [sync_engine(Config.load(url))[0] for url in galera_urls[:2]]
    try:
        first, second = (engine.connect() for engine in engines)
        with first, second:
            for index, conn in enumerate((first, second)):
                conn.execute(
                    sa.text("UPDATE users SET display_name = :name WHERE id = :id"),
                    {"name": f"node{index + 1}", "id": user_id},
                )
            first.commit()
            with pytest.raises(sa.exc.DBAPIError) as raised:
                second.commit()
        backend = MariaDB()
        assert backend.error_code(raised.value) == "1213"
        assert backend.is_transient(raised.value)
        assert backend.known_rollback(raised.value)
        assert isinstance(translate(raised.value, backend), TransientError)
        with engines[1].connect() as conn:
            name = conn.execute(
                sa.text("SELECT display_name FROM users WHERE id = :id"), {"id": user_id}
            ).scalar()
        assert name == "node1"  # the failed transaction left nothing anywhere
    finally:
        for engine in engines:
            engine.dispose()


def test_first_opens_on_every_node_at_once_migrate_once(galera):
    # GET_LOCK is per node: both nodes would grant it and both would run the migration's
    # DDL (one then fails on "table exists"). The lease row serialises them cluster-wide.
    for _ in range(3):
        urls = _new_database(galera, "first_open")

        def open_(index: int, urls: list[URL] = urls) -> str | None:
            with Ledger(urls[index]) as ledger:  # _run_threads releases all at once
                ledger.users.create(external_id=f"opener-{index}")
            return migrate.current(urls[index])

        revisions = _run_threads(len(urls), open_)
        assert revisions == [migrate.head()] * len(urls)
        assert migrate.check(urls[-1]) == []
        with Ledger(urls[-1]) as ledger:
            assert {u.external_id for u in ledger.users.list(limit=10).items} == {
                f"opener-{i}" for i in range(len(urls))
            }


def test_every_table_has_a_primary_key(galera_urls):
    engine = sa.create_engine(galera_urls[0], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            missing = conn.execute(
                sa.text(
                    "SELECT t.table_name FROM information_schema.tables t "
                    "WHERE t.table_schema = DATABASE() AND t.table_type = 'BASE TABLE' "
                    "AND NOT EXISTS (SELECT 1 FROM information_schema.table_constraints c "
                    "WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name "
                    "AND c.constraint_type = 'PRIMARY KEY')"
                )
            ).scalars()
            assert list(missing) == []
    finally:
        engine.dispose()
