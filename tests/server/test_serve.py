"""``chatledger serve``, the README's main job: the installed executable, as a subprocess, on a
temporary SQLite file and a free port, answers a real HTTP request with the key it printed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chatledger import Ledger
from chatledger.cli import app

EXECUTABLE = shutil.which("chatledger", path=str(Path(sys.executable).parent)) or "chatledger"
_KEY = re.compile(r"clk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _raw(port: int, request: bytes) -> tuple[bytes, bytes]:
    """Send bytes as they are; the response's head and body, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head, body


class Server:
    """A ``chatledger serve`` process and its output so far."""

    def __init__(self, url: str, log: Path, *options: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [EXECUTABLE, "serve", "--url", url, "--port", str(self.port), *options],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout} s:\n{self.output()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def test_serve_prints_a_first_admin_key_once_and_answers_with_it(
    tmp_path: Path, processes: list[Server]
) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    first = Server(url, tmp_path / "first.log")
    processes.append(first)
    first.wait_ready()
    printed = first.output()
    keys = _KEY.findall(printed)
    assert len(set(keys)) == 1, printed
    secret = keys[0]
    assert f"curl -H 'Authorization: Bearer {secret}' {first.base}/v1/me" in printed
    me = httpx.get(f"{first.base}/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    assert httpx.get(f"{first.base}/v1/me").status_code == 401
    assert httpx.get(f"{first.base}/readyz").json()["status"] == "ready"
    # A request the HTTP server itself refuses is a 400 in the envelope too.
    head, body = _raw(first.port, b"GET /v1/me HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["type"] == "bad_request"
    assert first.stop() == 0

    # Started again, the store has an admin key: none is created or printed.
    again = Server(url, tmp_path / "again.log")
    processes.append(again)
    again.wait_ready()
    assert _KEY.findall(again.output()) == []
    assert httpx.get(
        f"{again.base}/v1/me", headers={"Authorization": f"Bearer {secret}"}
    ).is_success
    with Ledger(url) as ledger:
        admins = ledger.users.with_role("admin")
        assert len(admins) == 1
        assert len(ledger.api_keys.list(user_id=admins.items[0].id)) == 1


def test_serve_without_the_server_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
    result = CliRunner().invoke(app, ["serve", "--url", "sqlite:///:memory:"])
    assert result.exit_code == 1
    assert "uvicorn is not installed" in result.output
    assert "pip install 'chatledger[server]'" in result.output


def test_serve_with_several_workers(tmp_path: Path, processes: list[Server]) -> None:
    url = f"sqlite:///{tmp_path / 'workers.db'}"
    server = Server(url, tmp_path / "workers.log", "--workers", "2")
    processes.append(server)
    server.wait_ready()
    (secret,) = set(_KEY.findall(server.output()))
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=server.base, headers=headers) as client:
        chat = client.post("/v1/conversations", json={}).json()["id"]
        for n in range(20):
            sent = client.post(
                f"/v1/conversations/{chat}/messages", json={"role": "user", "content": str(n)}
            )
            assert sent.status_code == 201
        assert client.get(f"/v1/conversations/{chat}").json()["message_count"] == 20
    assert server.stop() == 0
