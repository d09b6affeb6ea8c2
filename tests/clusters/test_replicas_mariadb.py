"""Read replicas on a real MariaDB primary (binary log, GTIDs) and a second ``mariadbd``
replicating it by GTID (``MASTER_USE_GTID=slave_pos``), started once for the module.

A replica is made to fall behind on purpose with ``MASTER_DELAY`` (it applies each event
seconds after the primary wrote it, and still reports a small lag), or stops applying
(``STOP SLAVE SQL_THREAD``: ``Seconds_Behind_Master`` is NULL, it counts as not
replicating). Read-your-writes waits with ``MASTER_GTID_WAIT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from chatledger import AsyncLedger, Config, Ledger
from chatledger._diagnose import diagnose
from tests.clusters import _suite
from tests.clusters._servers import MariaDB, mariadb_replica

pytestmark = pytest.mark.xdist_group("test_replicas_mariadb")

WAIT = 0.2
DELAY = 2


class Cluster:
    def __init__(self, primary: MariaDB, replica: MariaDB, name: str) -> None:
        self.primary, self.replica = primary, replica
        self.url = primary.url(name)
        self.replica_url = replica.url(name)

    def ledger(self, **settings: Any) -> Ledger:
        settings.setdefault("replica_wait", WAIT)
        return Ledger(config=Config.load(self.url, replicas=[self.replica_url], **settings))

    def caught_up(self, timeout: float = 30.0) -> None:
        engine = sa.create_engine(self.primary.url(), poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            target = conn.execute(sa.text("SELECT @@gtid_binlog_pos")).scalar_one()
        engine.dispose()
        engine = sa.create_engine(self.replica.url(), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                waited = conn.execute(
                    sa.text("SELECT MASTER_GTID_WAIT(:pos, :timeout)"),
                    {"pos": target, "timeout": timeout},
                ).scalar_one()
        finally:
            engine.dispose()
        assert waited == 0, "the replica did not catch up"

    @contextlib.contextmanager
    def delayed(self) -> Iterator[None]:
        """The replica applies every event ``DELAY`` seconds late."""
        self._delay(DELAY)
        try:
            yield
        finally:
            self._delay(0)

    def _delay(self, seconds: int) -> None:
        self.replica.execute("STOP SLAVE")
        self.replica.execute(f"CHANGE MASTER TO MASTER_DELAY={seconds}")
        self.replica.execute("START SLAVE")

    @contextlib.contextmanager
    def not_applying(self) -> Iterator[None]:
        self.replica.execute("STOP SLAVE SQL_THREAD")
        try:
            yield
        finally:
            self.replica.execute("START SLAVE SQL_THREAD")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    common = {"binlog_format": "ROW", "log_bin": "mariadb-bin", "gtid_strict_mode": "ON"}
    with (
        MariaDB({**common, "server_id": "1"}) as primary,
        MariaDB({**common, "server_id": "2", "log_slave_updates": "ON"}) as replica,
    ):
        mariadb_replica(primary, replica)
        name = f"chatledger_replicas_{uuid.uuid4().hex[:6]}"
        _suite.migrated(_suite.create_database(primary.url(), name))
        found = Cluster(primary, replica, name)
        found.caught_up()
        yield found


def _conversation(ledger: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    user = ledger.users.create(external_id=f"u-{uuid.uuid4().hex[:8]}")
    return user.id, ledger.conversations.create(user.id, title="replicas").id


def _contents(store: Any, conversation_id: uuid.UUID) -> list[str]:
    return [m.content for m in store.messages.list(conversation_id, limit=100).items]


def test_reads_go_to_the_replica_and_wait_for_their_own_writes(cluster: Cluster) -> None:
    with cluster.ledger() as writer, cluster.ledger(replica_max_lag=60) as reader:
        user, conversation = _conversation(writer)
        cluster.caught_up()
        with cluster.delayed():
            writer.messages.append(conversation, "user", "delayed")
            # Tokenless, no write of its own: the replica (behind by DELAY s) serves it.
            assert _contents(reader, conversation) == []
            # The writer's own read waits MASTER_GTID_WAIT(WAIT), then reads on the primary.
            started = time.monotonic()
            assert _contents(writer, conversation) == ["delayed"]
            assert time.monotonic() - started >= WAIT * 0.9
            assert _contents(writer.as_user(user), conversation) == ["delayed"]
            token = writer.consistency_token()
            assert token is not None
            assert token.startswith("gtid:")
            with reader.consistent_with(token):
                assert _contents(reader, conversation) == ["delayed"]
            cluster.caught_up()
            with reader.consistent_with(token):
                started = time.monotonic()
                assert _contents(reader, conversation) == ["delayed"]
                assert time.monotonic() - started < WAIT  # the replica has it: no wait


def test_async_ledgers_carry_a_token_between_them(cluster: Cluster) -> None:
    async def main() -> None:
        config = Config.load(
            cluster.url, replicas=[cluster.replica_url], replica_wait=WAIT, replica_max_lag=60
        )
        async with AsyncLedger(config=config) as writer, AsyncLedger(config=config) as reader:
            user = await writer.users.create(external_id=f"a-{uuid.uuid4().hex[:8]}")
            conversation = await writer.conversations.create(user.id)
            await asyncio.to_thread(cluster.caught_up)
            await asyncio.to_thread(cluster._delay, DELAY)
            try:
                await writer.messages.append(conversation.id, "user", "async")
                token = await writer.consistency_token()
                assert (await reader.messages.list(conversation.id)).items == []
                with reader.consistent_with(token):
                    seen = await reader.messages.list(conversation.id)
                    assert [m.content for m in seen.items] == ["async"]
            finally:
                await asyncio.to_thread(cluster._delay, 0)

    asyncio.run(main())


def test_a_replica_that_stopped_applying_is_skipped(cluster: Cluster) -> None:
    with cluster.ledger() as writer, cluster.ledger(replica_max_lag=60) as reader:
        _, conversation = _conversation(writer)
        cluster.caught_up()
        with cluster.not_applying():
            writer.messages.append(conversation, "user", "not applied")
            time.sleep(1.1)  # the reader looks at the lag again: NULL, not replicating
            assert _contents(reader, conversation) == ["not applied"]
        cluster.caught_up()


def test_a_replica_killed_mid_load_is_skipped_without_errors(cluster: Cluster) -> None:
    with cluster.ledger() as ledger:
        user, _ = _conversation(ledger)
        cluster.caught_up()
        stop = threading.Event()
        errors: list[str] = []
        done = [0, 0]

        def work(index: int) -> None:
            scope = ledger.as_user(user)
            own = scope.conversations.create(title=f"load {index}").id
            count = 0
            while not stop.is_set():
                try:
                    scope.messages.append(own, "user", f"{index}-{count}")
                    count += 1
                    seen = scope.messages.list(own, limit=1, order="desc").items
                    if not seen or seen[0].content != f"{index}-{count - 1}":
                        errors.append(f"thread {index} did not read its write {count}")
                except Exception as exc:  # every failure is counted, none expected
                    errors.append(f"thread {index}: {type(exc).__name__}: {exc}")
            done[index] = count

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.7)
        assert cluster.replica.process is not None
        cluster.replica.process.kill()
        cluster.replica.process.wait()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(60)
        try:
            assert errors == []
            assert min(done) > 0
        finally:
            cluster.replica.start()
            cluster.caught_up()


def test_doctor_shows_the_replica_with_its_lag(cluster: Cluster) -> None:
    found = diagnose(Config.load(cluster.url, replicas=[cluster.replica_url]))
    assert found.ok, found.problems
    [replica] = found.replicas
    assert replica["reachable"] is True
    assert replica["lag"] == 0.0
    assert str(replica["position"]).startswith("gtid:")
