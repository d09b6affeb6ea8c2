"""Failover under a write load, managed by a real failover manager: pg_auto_failover (a
monitor and two PostgreSQL nodes, each with its ``pg_autoctl`` keeper, Debian's
``postgresql-15-auto-failover`` + ``pg-auto-failover-cli``).

The application writes through a libpq multi-host URL with ``target_session_attrs=read-write``
(both nodes listed): once the monitor promotes the standby, new connections find it. A writer
appends with an idempotency key per message and, like an application, re-sends the same
message with the same key after any error that reaches it. The primary (keeper and
PostgreSQL) is killed with SIGKILL mid-load. Counted: acknowledged writes lost, duplicated
messages, errors that reached the writer, and the seconds from the promotion to the first
write acknowledged after it. The figures are printed (run with ``-s``) and recorded in
docs/scale-out.md "Failover".
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import Ledger, OutcomeUnknownError, RetryPolicy, TransientError
from tests.clusters import _suite
from tests.clusters._servers import AutoFailover

pytestmark = pytest.mark.xdist_group("test_failover")

#: Writes resume within this many seconds of the promotion (the issue's target).
RESUME_TARGET = 5.0


@pytest.fixture(scope="module")
def formation() -> Iterator[AutoFailover]:
    with AutoFailover() as found:
        yield found


def _in_recovery(url: URL) -> bool | None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 1})
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one())
    except sa.exc.DBAPIError:
        return None
    finally:
        engine.dispose()


def test_writes_resume_after_the_primary_is_killed(formation: AutoFailover) -> None:
    name = f"chatledger_failover_{uuid.uuid4().hex[:6]}"
    _suite.migrated(_suite.create_database(formation.node_url(0), name))
    hosts = [f"127.0.0.1:{port}" for port in formation.ports]
    url = URL.create(
        "postgresql+psycopg",
        "postgres",
        database=name,
        query={"host": hosts, "target_session_attrs": "read-write", "connect_timeout": "2"},
    )
    retry = RetryPolicy(attempts=8, base_delay=0.05, max_delay=0.5)
    with Ledger(url, retry=retry) as ledger:
        user = ledger.users.create(external_id="failover")
        conversation = ledger.conversations.create(user.id).id
        stop = threading.Event()
        acked: list[tuple[str, float]] = []
        errors: list[str] = []

        def write() -> None:
            n = 0
            while not stop.is_set():
                key = f"m{n}"
                while not stop.is_set():
                    try:
                        ledger.messages.append(conversation, "user", key, idempotency_key=key)
                        acked.append((key, time.monotonic()))
                        break
                    except (TransientError, OutcomeUnknownError) as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        time.sleep(0.05)
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(1.0)
        killed_at = time.monotonic()
        formation.kill("node1")
        promoted_at = None
        deadline = killed_at + 90
        while time.monotonic() < deadline:
            if _in_recovery(formation.node_url(1)) is False:
                promoted_at = time.monotonic()
                break
            time.sleep(0.05)
        assert promoted_at is not None, f"no promotion: {formation.states()}"
        while time.monotonic() < promoted_at + 30 and not any(t > promoted_at for _, t in acked):
            time.sleep(0.05)
        time.sleep(1.0)
        stop.set()
        writer.join(60)

        stored: list[str] = []
        after: str | None = None
        while True:  # every page: a quiet machine acknowledges well over 1,000 writes
            page = ledger.messages.list(conversation, limit=1000, after=after)
            stored += [m.content for m in page.items]
            if not page.has_more:
                break
            after = page.last_cursor
        keys = [key for key, _ in acked]
        lost = sorted(set(keys) - set(stored))
        duplicated = len(stored) - len(set(stored))
        resumed_at = [t for _, t in acked if t > promoted_at]
        resumed = (resumed_at[0] - promoted_at) if resumed_at else float("inf")
        before = [t for _, t in acked if t < killed_at]
        gap = resumed_at[0] - before[-1] if resumed_at and before else 0.0
        print(
            f"\nfailover: {len(keys)} writes acknowledged, lost {len(lost)}, duplicated "
            f"{duplicated}, errors reaching the writer {len(errors)}; promotion "
            f"{promoted_at - killed_at:.1f}s after the kill; writes resumed {resumed:.2f}s "
            f"after the promotion ({gap:.1f}s "
            "without writes)"
        )
        assert lost == []
        assert duplicated == 0
        assert resumed <= RESUME_TARGET
