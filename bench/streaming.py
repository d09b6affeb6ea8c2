"""Streaming replies (docs/streaming.md): database time per streamed reply against one plain
append, and how long a following reader waits for a flush.

    .venv/bin/python -m bench.streaming [--backends sqlite,postgresql,mariadb] [--replies N]

Per backend, on a scratch database: N replies of 2,000 characters in 40 deltas, flushed every
10 deltas (begin, 4 flushes, finish: the whole database time of a reply, the deltas' buffering
excluded), against N plain appends of the same 2,000 characters; then N flushes each timed
from just before its commit to the moment a reader thread following the reply
(``poll_interval`` 0.05 s) yields it. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable

from chatledger import Ledger

from .databases import BACKENDS, Scratches

REPLY = "x" * 2000
DELTAS = [REPLY[i : i + 50] for i in range(0, 2000, 50)]  # 40 deltas
FLUSH_EVERY = 10
POLL_INTERVAL = 0.05


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed(n: int, once: Callable[[], None]) -> list[float]:
    spent = []
    for _ in range(n):
        start = time.perf_counter()
        once()
        spent.append(time.perf_counter() - start)
    return spent


def measure(ledger: Ledger, replies: int) -> dict[str, float]:
    user = ledger.users.create(external_id="bench")
    chat = ledger.conversations.create(user.id)

    def append() -> None:
        ledger.messages.append(chat.id, "assistant", REPLY)

    def stream() -> None:
        message = ledger.streams.begin(chat.id)
        for index in range(len(DELTAS) // FLUSH_EVERY):
            batch = DELTAS[index * FLUSH_EVERY : (index + 1) * FLUSH_EVERY]
            ledger.streams.delta(message.id, index, "".join(batch))
        ledger.streams.finish(message.id, output_tokens=500)

    _timed(5, append)
    _timed(5, stream)
    appends = _timed(replies, append)
    streams = _timed(replies, stream)
    delays = _resume_delays(ledger, chat.id, replies)
    return {
        "append_ms": _median_ms(appends),
        "stream_ms": _median_ms(streams),
        "ratio": statistics.median(streams) / statistics.median(appends),
        "resume_p50_ms": _median_ms(delays),
        "resume_p95_ms": sorted(delays)[int(0.95 * (len(delays) - 1))] * 1000,
        "resume_max_ms": max(delays) * 1000,
    }


def _resume_delays(ledger: Ledger, conversation_id: uuid.UUID, flushes: int) -> list[float]:
    """Seconds from just before each flush to a follower yielding it."""
    message = ledger.streams.begin(conversation_id)
    seen: list[float] = []
    ready = threading.Event()

    def follow() -> None:
        ready.set()
        for event in ledger.streams.follow(message.id, poll_interval=POLL_INTERVAL):
            seen.append(time.perf_counter())
            if event.done:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    ready.wait()
    sent: list[float] = []
    for index in range(flushes):
        time.sleep(POLL_INTERVAL * 1.37)  # flushes land at every phase of the poll
        sent.append(time.perf_counter())
        ledger.streams.delta(message.id, index, "y" * 50)
        while len(seen) <= index:  # the reader has it before the next flush
            time.sleep(0.001)
    ledger.streams.finish(message.id)
    reader.join()
    return [got - put for put, got in zip(sent, seen, strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--replies", type=int, default=100)
    args = parser.parse_args()
    backends = tuple(args.backends.split(","))
    scratches = Scratches(backends)
    try:
        print(
            "| backend | plain append (ms) | streamed reply (ms) | ratio |"
            " resume p50 / p95 / max (ms) |"
        )
        print("|---|---|---|---|---|")
        for backend in backends:
            if not scratches.available(backend):
                print(f"| {backend} | n/a: {scratches.unreachable[backend]} | | | |")
                continue
            scratch = scratches.create(backend, "streaming")
            with Ledger(scratch.url, auto_upgrade=True) as ledger:
                r = measure(ledger, args.replies)
            print(
                f"| {backend} | {r['append_ms']:.2f} | {r['stream_ms']:.2f} |"
                f" {r['ratio']:.1f}x | {r['resume_p50_ms']:.1f} / {r['resume_p95_ms']:.1f}"
                f" / {r['resume_max_ms']:.1f} |"
            )
            scratches.drop(scratch)
    finally:
        scratches.close()


if __name__ == "__main__":
    main()
