"""Read replicas on a real PostgreSQL streaming standby (``pg_basebackup -R``), started once
for the module: routing, the lag bound, read-your-writes by remembered and explicit tokens
(two ledgers, both surfaces), a standby killed under a read/write load, ``doctor``, and a
libpq multi-host URL with ``target_session_attrs=read-write`` for the primary.

Replay on the standby is paused (``pg_wal_replay_pause()``) to make it fall behind on
purpose: what a read returns then shows whether the replica or the primary served it.
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
from sqlalchemy.engine import URL

from chatledger import AsyncLedger, Config, Ledger, ValidationError
from chatledger._diagnose import diagnose
from tests.clusters import _suite
from tests.clusters._servers import PostgreSQL, PostgreSQLStandby

pytestmark = pytest.mark.xdist_group("test_replicas_postgresql")

#: The bound a read waits for a paused standby in these tests (short: it is waited often).
WAIT = 0.2


class Cluster:
    def __init__(self, primary: PostgreSQL, standby: PostgreSQLStandby, name: str) -> None:
        self.primary, self.standby = primary, standby
        self.url = primary.url(name)
        self.replica_url = standby.url(name)

    def ledger(self, **settings: Any) -> Ledger:
        settings.setdefault("replica_wait", WAIT)
        return Ledger(config=Config.load(self.url, replicas=[self.replica_url], **settings))

    def standby_sql(self, statement: str) -> Any:
        engine = sa.create_engine(self.standby.url(), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(statement)).scalar()
        finally:
            engine.dispose()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Replay paused on the standby: it receives WAL but applies none."""
        self.standby_sql("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            self.standby_sql("SELECT pg_wal_replay_resume()")

    def caught_up(self, timeout: float = 30.0) -> None:
        """Wait until the standby has replayed everything the primary wrote."""
        engine = sa.create_engine(self.primary.url(), poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            # The insert position: with synchronous_commit off a commit record can be past the
            # write position when COMMIT returns.
            target = conn.execute(sa.text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()
        engine.dispose()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.standby_sql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")
            if done:
                return
            time.sleep(0.05)
        raise AssertionError("the standby did not catch up")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    primary = PostgreSQL({"wal_level": "replica", "max_wal_senders": "5"})
    with primary:
        name = f"chatledger_replicas_{uuid.uuid4().hex[:6]}"
        _suite.migrated(_suite.create_database(primary.url(), name))
        with PostgreSQLStandby(primary) as standby:
            found = Cluster(primary, standby, name)
            found.caught_up()
            yield found


def _conversation(ledger: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    user = ledger.users.create(external_id=f"u-{uuid.uuid4().hex[:8]}")
    conversation = ledger.conversations.create(user.id, title="replicas")
    return user.id, conversation.id


def _contents(store: Any, conversation_id: uuid.UUID) -> list[str]:
    return [m.content for m in store.messages.list(conversation_id, limit=100).items]


def test_reads_go_to_a_caught_up_replica_writes_to_the_primary(cluster: Cluster) -> None:
    with cluster.ledger() as writer, cluster.ledger() as reader:
        _, conversation = _conversation(writer)
        cluster.caught_up()
        assert _contents(reader, conversation) == []
        with cluster.paused():
            writer.messages.append(conversation, "user", "while paused")
            # The reader wrote nothing and asked for nothing: the paused replica serves it.
            assert _contents(reader, conversation) == []
            # The writer remembers its write: the primary serves it after the wait.
            assert _contents(writer, conversation) == ["while paused"]
        cluster.caught_up()
        assert _contents(reader, conversation) == ["while paused"]


def test_a_ledger_and_a_user_scope_read_their_own_writes(cluster: Cluster) -> None:
    with cluster.ledger() as ledger:
        user, conversation = _conversation(ledger)
        scope = ledger.as_user(user)
        cluster.caught_up()
        with cluster.paused():
            started = time.monotonic()
            scope.messages.append(conversation, "user", "mine")
            assert _contents(scope, conversation) == ["mine"]
            # A fresh scope of the same user remembers too (the ledger keeps it per user).
            assert _contents(ledger.as_user(user), conversation) == ["mine"]
            assert time.monotonic() - started >= WAIT  # it waited for the replica first
            # Another user's scope waits for the ledger's own writes (the conversation it
            # created for that user), not for other users' writes.
            other = ledger.users.create(external_id=f"o-{uuid.uuid4().hex[:8]}")
            created = ledger.conversations.create(other.id)
            listed = ledger.as_user(other.id).conversations.list().items
            assert [c.id for c in listed] == [created.id]
        cluster.caught_up()
        token = ledger.consistency_token()
        scope_token = scope.consistency_token()
        assert token is not None
        assert token.startswith("pg:")
        assert scope_token is not None


def test_explicit_token_carries_read_your_writes_to_another_ledger(cluster: Cluster) -> None:
    with cluster.ledger() as writer, cluster.ledger() as reader:
        _, conversation = _conversation(writer)
        cluster.caught_up()
        with cluster.paused():
            writer.messages.append(conversation, "user", "hello from app server 1")
            token = writer.consistency_token()
            assert _contents(reader, conversation) == []  # the replica, behind
            with reader.consistent_with(token) as same:
                assert same is reader
                assert _contents(reader, conversation) == ["hello from app server 1"]
        cluster.caught_up()
        with reader.consistent_with(token):
            started = time.monotonic()
            assert _contents(reader, conversation) == ["hello from app server 1"]
            assert time.monotonic() - started < WAIT  # the replica had it: no wait
        with pytest.raises(ValidationError) as raised, reader.consistent_with("not a token"):
            pass
        assert raised.value.field == "consistency_token"


def test_async_surface_reads_its_writes_and_accepts_tokens(cluster: Cluster) -> None:
    async def main() -> None:
        config = Config.load(cluster.url, replicas=[cluster.replica_url], replica_wait=WAIT)
        async with AsyncLedger(config=config) as writer, AsyncLedger(config=config) as reader:
            user = await writer.users.create(external_id=f"a-{uuid.uuid4().hex[:8]}")
            conversation = await writer.conversations.create(user.id)
            await asyncio.to_thread(cluster.caught_up)
            with cluster.paused():
                await writer.messages.append(conversation.id, "user", "async")
                mine = await writer.messages.list(conversation.id)
                assert [m.content for m in mine.items] == ["async"]
                token = await writer.consistency_token()
                assert (await reader.messages.list(conversation.id)).items == []
                with reader.consistent_with(token):
                    seen = await reader.messages.list(conversation.id)
                    assert [m.content for m in seen.items] == ["async"]

    asyncio.run(main())


def test_a_replica_beyond_the_lag_bound_is_skipped(cluster: Cluster) -> None:
    with cluster.ledger() as writer, cluster.ledger(replica_max_lag=0.3) as reader:
        _, conversation = _conversation(writer)
        cluster.caught_up()
        assert _contents(reader, conversation) == []  # it looks at the lag: 0
        with cluster.paused():
            writer.messages.append(conversation, "user", "lagging")
            time.sleep(1.3)  # the replica's lag grows past 0.3 s; the next read looks again
            # No token, no write of its own: only the lag bound sends it to the primary.
            assert _contents(reader, conversation) == ["lagging"]
        with cluster.ledger(replica_max_lag=60) as tolerant, cluster.paused():
            writer.messages.append(conversation, "user", "second")
            time.sleep(0.5)
            assert _contents(tolerant, conversation) == ["lagging"]  # within 60 s: replica


def test_a_replica_killed_mid_load_is_skipped_without_errors(cluster: Cluster) -> None:
    with cluster.ledger() as ledger:
        user, conversation = _conversation(ledger)
        cluster.caught_up()
        stop = threading.Event()
        errors: list[str] = []
        done: list[int] = [0, 0]

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
        cluster.standby.kill()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(60)
        try:
            assert errors == []
            assert min(done) > 0
            # Reads keep working with the replica gone (they go to the primary).
            assert _contents(ledger, conversation) == []
        finally:
            cluster.standby.start()
            cluster.caught_up()


def test_doctor_shows_each_replica_with_its_lag_and_provenance(cluster: Cluster) -> None:
    env = {"CHATLEDGER_REPLICA_URLS": f"{cluster.replica_url.render_as_string(False)}"}
    config = Config.load(cluster.url, environ=env)
    assert config.sources["replicas"] == "env CHATLEDGER_REPLICA_URLS"
    found = diagnose(config)
    assert found.ok, found.problems
    assert found.settings["replicas"][1] == "env CHATLEDGER_REPLICA_URLS"
    [replica] = found.replicas
    assert replica["reachable"] is True
    assert isinstance(replica["lag"], float)
    assert replica["lag"] < 10
    assert str(replica["position"]).startswith("pg:")
    down = Config.load(cluster.url, replicas=["postgresql://postgres@127.0.0.1:1/x"])
    found = diagnose(down)
    assert found.ok
    assert found.replicas[0]["reachable"] is False
    assert any("unreachable" in warning for warning in found.warnings)


def test_multi_host_url_with_read_write_target_finds_the_primary(cluster: Cluster) -> None:
    # The standby listed first: libpq skips it (read-only) and connects to the primary.
    url = URL.create(
        "postgresql+psycopg",
        "postgres",
        database=cluster.url.database,
        query={
            "host": [f"127.0.0.1:{cluster.standby.port}", f"127.0.0.1:{cluster.primary.port}"],
            "target_session_attrs": "read-write",
        },
    )
    with Ledger(url) as ledger:
        _, conversation = _conversation(ledger)
        ledger.messages.append(conversation, "user", "to the primary")
        assert _contents(ledger, conversation) == ["to the primary"]
