"""A real uvicorn server over a database, in a process of its own, for tests and benchmarks
that need the HTTP stack as clients see it (Server-Sent Events, another app server writing).

Run as ``python -m tests.server._live URL PORT SETTINGS_JSON [--poll-only]``; ``--poll-only``
turns PostgreSQL's LISTEN off in that process (to measure the bounded poll against it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """``python -m tests.server._live`` on a free port; :meth:`stop` ends it."""

    def __init__(self, url: str, log: Path, *, poll_only: bool = False, **settings: Any) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "tests.server._live", url, str(self.port)]
        command.append(json.dumps({"purge_interval": 0, "sweep_interval": 0, **settings}))
        if poll_only:
            command.append("--poll-only")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
        with log.open("w") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )

    def wait_ready(self, timeout: float = 180) -> LiveServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def main(argv: list[str]) -> None:
    import uvicorn

    from chatledger._backends import PostgreSQL
    from chatledger.server import ServerSettings, create_app

    url, port, settings = argv[0], int(argv[1]), json.loads(argv[2])
    if "--poll-only" in argv:
        PostgreSQL.listener = lambda self, engine: None  # type: ignore[method-assign]
    app = create_app(url, settings=ServerSettings(**settings))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main(sys.argv[1:])
