"""Server-Sent Events latency (docs/streaming.md, "Wake-ups"): from a flush's commit in one
process to its ``delta`` event at a client of a ``chatledger serve``-like server (uvicorn,
another process), over loopback.

    .venv/bin/python -m bench.sse_latency [--flushes N] [--poll 0.1]

Modes: PostgreSQL with ``LISTEN``/``NOTIFY``; PostgreSQL with ``LISTEN`` turned off in the
server (followers poll every ``--poll`` seconds, the server's default); SQLite (polls). Each
flush is written by this process through the library, spaced 20-80 ms apart at random; the
clock starts when ``delta()`` returns (committed) and stops when the client has parsed the
event. Run from the repository root (the server is ``tests/server/_live.py``). A
measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from chatledger import Ledger
from tests.server._live import LiveServer

from .databases import Scratches

MODES = (("postgresql", "notify"), ("postgresql", "poll"), ("sqlite", "poll"))


def _follow(base: str, secret: str, message_id: str, arrived: queue.Queue[float]) -> None:
    url = f"{base}/v1/messages/{message_id}/stream/events"
    headers = {"Authorization": f"Bearer {secret}", "Accept": "text/event-stream"}
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "delta":
                json.loads(line.removeprefix("data: "))
                arrived.put(time.monotonic())
            elif line.startswith("data: ") and event == "done":
                return


def measure(url: str, mode: str, flushes: int, poll: float, log: Path) -> list[float]:
    with Ledger(url, auto_upgrade=True) as ledger:
        user = ledger.users.create(external_id="bench")
        secret = ledger.api_keys.create(user.id, name="bench").secret
        chat = ledger.conversations.create(user.id)
        server = LiveServer(url, log, poll_only=mode == "poll", stream_poll_interval=poll)
        try:
            server.wait_ready()
            begun = ledger.streams.begin(chat.id)
            arrived: queue.Queue[float] = queue.Queue()
            reader = threading.Thread(
                target=_follow, args=(server.base, secret, str(begun.id), arrived), daemon=True
            )
            reader.start()
            time.sleep(2.0)  # connected and waiting (NOTIFY: the LISTEN connection is up)
            delays = []
            rng = random.Random(15)
            for index in range(flushes):
                time.sleep(rng.uniform(0.02, 0.08))
                ledger.streams.delta(begun.id, index, "x" * 50)
                written = time.monotonic()
                delays.append(arrived.get(timeout=30) - written)
            ledger.streams.finish(begun.id)
            reader.join(30)
            return delays
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flushes", type=int, default=50)
    parser.add_argument("--poll", type=float, default=0.1)
    args = parser.parse_args()
    scratches = Scratches(("postgresql", "sqlite"))
    directory = Path(tempfile.mkdtemp(prefix="chatledger-sse-"))
    try:
        print("| backend | wake-up | p50 (ms) | p95 (ms) | max (ms) | flushes |")
        print("|---|---|---|---|---|---|")
        for backend, mode in MODES:
            if not scratches.available(backend):
                print(f"| {backend} | {mode} | n/a: {scratches.unreachable[backend]} | | | |")
                continue
            scratch = scratches.create(backend, f"sse_{mode}")
            url = scratch.url.render_as_string(hide_password=False)
            delays = sorted(
                measure(url, mode, args.flushes, args.poll, directory / f"{backend}-{mode}.log")
            )
            wake = "LISTEN/NOTIFY" if mode == "notify" else f"poll {args.poll} s"
            p95 = delays[int(0.95 * (len(delays) - 1))]
            print(
                f"| {backend} | {wake} | {statistics.median(delays) * 1000:.1f} |"
                f" {p95 * 1000:.1f} | {delays[-1] * 1000:.1f} | {len(delays)} |"
            )
            scratches.drop(scratch)
    finally:
        scratches.close()


if __name__ == "__main__":
    main()
