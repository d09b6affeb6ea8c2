"""Read replicas on PostgreSQL: the router's cost, read-your-writes waits, read throughput.

    .venv/bin/python -m bench.replicas [--reads 2000] [--seconds 5] [--threads 4]

Starts a primary and a streaming standby of tests/clusters/_servers.py (loopback, temporary
directories, removed at the end) and measures:

1. last-20 of a 200-message conversation through the router with a caught-up replica, against
   the same read on a ledger opened on the replica directly (target: <= 1.1x); also with a
   consistency token (one more statement: the replayed position, same connection);
2. under a write load (writer threads appending), a ledger's read right after its own write:
   how long the read took, and how often it waited for the replica / fell back to the primary;
3. reads per second with N reader threads: primary alone vs through the router (primary +
   1 replica: reads on the replica).

A measurement, not a test: on one machine both servers share the same CPUs, so the
throughput row cannot show what a replica on its own machine adds.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from chatledger import Config, Ledger
from tests.clusters import _suite
from tests.clusters._servers import PostgreSQL, PostgreSQLStandby


def _caught_up(primary: PostgreSQL, standby: PostgreSQL) -> None:
    engine = sa.create_engine(primary.url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        target = conn.execute(sa.text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()
    engine.dispose()
    engine = sa.create_engine(standby.url(), poolclass=sa.pool.NullPool)
    try:
        while True:
            with engine.connect() as conn:
                done = conn.execute(
                    sa.text(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")
                ).scalar_one()
            if done:
                return
            time.sleep(0.05)
    finally:
        engine.dispose()


def _per_read(read: Callable[[], Any], count: int) -> float:
    """Microseconds per call of ``read``, over ``count`` calls."""
    start = time.perf_counter()
    for _ in range(count):
        read()
    return (time.perf_counter() - start) / count * 1e6


def _router_cost(router: Ledger, direct: Ledger, chat: uuid.UUID, token: str, reads: int) -> None:
    def last_n(ledger: Ledger) -> Callable[[], Any]:
        return lambda: ledger.messages.list(chat, limit=20, order="desc")

    for ledger in (router, direct):
        _per_read(last_n(ledger), 200)  # warm the pools and caches
    rows: dict[str, list[float]] = {"direct": [], "router": [], "router+token": []}
    for _ in range(3):
        rows["direct"].append(_per_read(last_n(direct), reads))
        rows["router"].append(_per_read(last_n(router), reads))
        with router.consistent_with(token):
            rows["router+token"].append(_per_read(last_n(router), reads))
    base = statistics.median(rows["direct"])
    print("\n1. last-20 read, caught-up replica (median of 3 rounds)")
    print("| path | µs/read | vs direct |\n|---|---|---|")
    for name, values in rows.items():
        value = statistics.median(values)
        print(f"| {name} | {value:.0f} | {value / base:.2f}x |")


def _ryw_under_load(router: Ledger, writer_ledger: Ledger, seconds: float) -> None:
    user = router.users.create()
    chats = [router.conversations.create(user.id).id for _ in range(3)]
    stop = threading.Event()

    def write(index: int) -> None:
        while not stop.is_set():
            writer_ledger.messages.append(chats[1 + index % 2], "user", "load")

    replicas = router._core.replicas
    assert replicas is not None
    waits: list[tuple[float, bool]] = []
    original = replicas._wait

    def timed(db: Any, need: str) -> bool:
        started = time.perf_counter()
        found: bool = original(db, need)
        waits.append((time.perf_counter() - started, found))
        return found

    replicas._wait = timed  # type: ignore[method-assign]
    writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in writers:
        thread.start()
    latencies = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            router.messages.append(chats[0], "user", "mine")
            started = time.perf_counter()
            router.messages.list(chats[0], limit=1, order="desc")
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        stop.set()
        for thread in writers:
            thread.join()
        replicas._wait = original  # type: ignore[method-assign]
    latencies.sort()
    fell_back = sum(1 for _, found in waits if not found)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    print("\n2. read right after the ledger's own write, 2 writer threads loading the primary")
    print(
        f"reads: {len(latencies)}; served by the replica without waiting: "
        f"{len(latencies) - len(waits)}; waited: {len(waits)} (then replica "
        f"{len(waits) - fell_back}, primary {fell_back})"
    )
    if waits:
        times = sorted(w * 1000 for w, _ in waits)
        print(f"wait ms: median {statistics.median(times):.2f}, max {times[-1]:.2f}")
    print(
        f"read ms: p50 {pct(0.5):.2f}, p90 {pct(0.9):.2f}, p99 {pct(0.99):.2f}, "
        f"max {latencies[-1]:.2f}"
    )


def _throughput(ledger: Ledger, chat: uuid.UUID, threads: int, seconds: float) -> float:
    counts = [0] * threads
    stop = threading.Event()

    def read(index: int) -> None:
        while not stop.is_set():
            ledger.messages.list(chat, limit=20, order="desc")
            counts[index] += 1

    workers = [threading.Thread(target=read, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in workers:
        thread.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    primary = PostgreSQL({"wal_level": "replica"})
    with primary:
        name = f"bench_replicas_{uuid.uuid4().hex[:6]}"
        _suite.migrated(_suite.create_database(primary.url(), name))
        with PostgreSQLStandby(primary) as standby:
            config = Config.load(primary.url(name), replicas=[standby.url(name)])
            with (
                Ledger(config=config) as router,
                Ledger(standby.url(name)) as direct,
                Ledger(primary.url(name)) as alone,
            ):
                user = alone.users.create()
                chat = alone.conversations.create(user.id).id
                alone.messages.append_many(
                    chat, [{"role": "user", "content": f"message {i} " * 20} for i in range(200)]
                )
                token = alone.consistency_token()
                assert token is not None
                _caught_up(primary, standby)
                _router_cost(router, direct, chat, token, args.reads)
                _ryw_under_load(router, alone, args.seconds)
                _caught_up(primary, standby)
                with Ledger(config=config) as reader:
                    alone_rate = _throughput(alone, chat, args.threads, args.seconds)
                    routed_rate = _throughput(reader, chat, args.threads, args.seconds)
                print(f"\n3. last-20 reads/s, {args.threads} threads, {args.seconds:g}s each")
                print("| setup | reads/s |\n|---|---|")
                print(f"| primary alone | {alone_rate:.0f} |")
                print(f"| primary + 1 replica (reads on the replica) | {routed_rate:.0f} |")


if __name__ == "__main__":
    main()
