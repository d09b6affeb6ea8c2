"""Latency of the HTTP API through a real ``chatledger serve`` (uvicorn, one worker).

    .venv/bin/python -m bench.server_latency [DATABASE_URL]

Without a URL, a fresh SQLite file. Give an EMPTY database of its own (it is initialised and
written to), never one in use. Prints p50/p95 of 300 sequential requests per kind, then the
throughput of 8 concurrent clients appending 50 messages each. A measurement, not a test.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

EXECUTABLE = str(Path(sys.executable).parent / "chatledger")
BODY = {
    "role": "assistant",
    "content": "x" * 500,
    "model": "m",
    "input_tokens": 10,
    "output_tokens": 20,
    "cost": "0.0001",
}


def _timed(request: Callable[[], httpx.Response], n: int) -> list[float]:
    spent = []
    for _ in range(n):
        start = time.perf_counter()
        request().raise_for_status()
        spent.append((time.perf_counter() - start) * 1000)
    return sorted(spent)


def measure(base: str, key: str) -> None:
    with httpx.Client(base_url=f"{base}/v1", headers={"Authorization": f"Bearer {key}"}) as c:
        chat = c.post("/conversations", json={}).json()["id"]
        path = f"/conversations/{chat}/messages"
        _timed(lambda: c.post(path, json=BODY), 20)  # warm-up
        kinds: dict[str, Callable[[], httpx.Response]] = {
            "append": lambda: c.post(path, json=BODY),
            "append + Idempotency-Key": lambda: c.post(
                path, json=BODY, headers={"Idempotency-Key": uuid.uuid4().hex}
            ),
            "read a page of 50": lambda: c.get(path, params={"limit": 50, "order": "desc"}),
            "GET /v1/me (auth only)": lambda: c.get("/me"),
        }
        for name, request in kinds.items():
            ms = _timed(request, 300)
            p95 = ms[int(len(ms) * 0.95)]
            print(f"{name:26s} p50 {statistics.median(ms):6.2f} ms   p95 {p95:6.2f} ms")
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: c.post(path, json=BODY).raise_for_status(), range(400)))
        rate = 400 / (time.perf_counter() - start)
        count = c.get(f"/conversations/{chat}").json()["message_count"]
        print(f"8 clients x 50 appends: {rate:.0f} appends/s (message_count {count})")


def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="chatledger-measure-"))
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{directory / 'measure.db'}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log = directory / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [EXECUTABLE, "serve", "--url", url, "--port", str(port), "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        found = re.search(r"clk_\w{12}_[\w-]{43}", log.read_text())
        if found is None:
            sys.exit("no admin key was printed: give an empty database")
        measure(base, found.group(0))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


if __name__ == "__main__":
    main()
