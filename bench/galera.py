"""Appends to one conversation on a three-node Galera cluster: writers on one node vs spread.

    .venv/bin/python -m bench.galera [--writers 6] [--appends 100] [--rounds 3]

Starts the cluster of tests/clusters/_servers.py (loopback, temporary directories, removed at
the end), then for each round appends ``writers x appends`` messages to a fresh conversation,
once with every writer on node 1 and once with writers on nodes 1, 2, 3 in turn, and prints
appends per second and the retries (certification conflicts) counted. A measurement, not a
test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
import uuid

from chatledger import Ledger, RetryPolicy
from tests.clusters._servers import Galera

RETRY = RetryPolicy(attempts=60, base_delay=0.005, max_delay=0.25)


class _Retries(logging.Handler):
    """Counts chatledger's "retrying after a transient failure" log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("retrying"):
            self.count += 1


def _run(ledgers: list[Ledger], writers: int, appends: int, retries: _Retries) -> tuple[float, int]:
    """Appends per second and retries, with writer ``i`` on ``ledgers[i % len]``."""
    user = ledgers[0].users.create()
    chat = ledgers[0].conversations.create(user.id)
    barrier = threading.Barrier(writers + 1)

    def write(index: int) -> None:
        ledger = ledgers[index % len(ledgers)]
        barrier.wait()
        for i in range(appends):
            ledger.messages.append(chat.id, "user", f"w{index}-{i}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    before = retries.count
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    count = ledgers[-1].conversations.get(chat.id).message_count
    assert count == writers * appends, (count, writers * appends)
    return count / elapsed, retries.count - before


def main() -> None:
    """Run the measurement and print its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--appends", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    retries = _Retries()
    logger = logging.getLogger("chatledger")
    logger.addHandler(retries)
    logger.setLevel(logging.INFO)
    with Galera(3) as cluster:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        cluster.nodes[0].execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        ledgers = [Ledger(url, retry=RETRY) for url in cluster.urls(name)]
        for ledger in ledgers:
            ledger.open()
        try:
            results: dict[str, list[tuple[float, int]]] = {"one node": [], "three nodes": []}
            for _ in range(args.rounds):
                results["one node"].append(_run(ledgers[:1], args.writers, args.appends, retries))
                results["three nodes"].append(_run(ledgers, args.writers, args.appends, retries))
        finally:
            for ledger in ledgers:
                ledger.close()
    print(
        f"{args.writers} writers x {args.appends} appends to one conversation, {args.rounds} rounds"
    )
    print("| writers on | appends/s (median) | retries per 100 appends |")
    print("|---|---|---|")
    total = args.writers * args.appends
    for label, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        retried = 100 * statistics.mean(n for _, n in runs) / total
        print(f"| {label} | {rate:.0f} | {retried:.1f} |")


if __name__ == "__main__":
    main()
