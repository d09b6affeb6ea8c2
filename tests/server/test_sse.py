"""Server-Sent Events over real HTTP: two uvicorn servers (processes) on one database, the
reply written through one and followed through the other, the follower disconnected and
resumed with ``Last-Event-ID``, the final message at the finish. On PostgreSQL the reader's
poll interval is far longer than the test: it is woken by ``NOTIFY`` from the other process.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import URL

from ._live import LiveServer
from .conftest import Account, seed

#: How long an event may take to arrive before the test fails (a loaded CI machine).
PATIENCE = 10.0


class Follower:
    """A client reading one events response on a thread; its events arrive in a queue
    with the time they arrived."""

    def __init__(self, base: str, who: Account, message: str, **headers: str) -> None:
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.status: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._read,
            args=(f"{base}/v1/messages/{message}/stream/events", {**who.headers, **headers}),
            daemon=True,
        )
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        headers = {**headers, "Accept": "text/event-stream"}
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                self.status = response.status_code
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return  # leaving the block closes the connection
                    if not line:
                        if "event" in fields:
                            self.events.put((time.monotonic(), fields))
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except (httpx.HTTPError, OSError, RuntimeError):
            if not self._stop.is_set():
                raise
            return  # closed by close(): the client went away
        self.events.put((time.monotonic(), {"event": "closed"}))

    def next(self) -> tuple[float, dict[str, Any]]:
        return self.events.get(timeout=PATIENCE)

    def close(self) -> None:
        """Drop the connection, as a closed tab or a lost network does (at the next line
        the server sends: give it a short ``stream_heartbeat``)."""
        self._stop.set()
        self._thread.join(timeout=PATIENCE)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.stop()


def _start(live: list[LiveServer], url: URL, log: Path, **settings: Any) -> LiveServer:
    server = LiveServer(url.render_as_string(hide_password=False), log, **settings)
    live.append(server)
    return server


def _post(client: httpx.Client, base: str, who: Account, path: str, body: Any) -> Any:
    response = client.post(f"{base}{path}", json=body, headers=who.headers)
    assert response.is_success, response.text
    return response.json()


#: The reader's poll interval: on PostgreSQL far longer than the test's patience, so that
#: every event there arrives through NOTIFY (from the writer's process) alone.
POLL = {"sqlite": 0.05, "postgresql": 60.0}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_reply_written_through_one_server_is_followed_and_resumed_through_another(
    backend: str, database_url: URL, live: list[LiveServer], tmp_path: Path
) -> None:
    _, alice, _ = seed(database_url)
    poll = POLL[backend]
    reader = _start(
        live, database_url, tmp_path / "reader.log", stream_poll_interval=poll, stream_heartbeat=1
    )
    writer = _start(live, database_url, tmp_path / "writer.log")
    reader.wait_ready()
    writer.wait_ready()
    with httpx.Client(timeout=PATIENCE) as client:
        chat = _post(client, writer.base, alice, "/v1/conversations", {"title": "sse"})["id"]
        m = _post(client, writer.base, alice, f"/v1/conversations/{chat}/streams", {})["id"]

        def delta(index: int, text: str) -> None:
            body = {"index": index, "text": text}
            _post(client, writer.base, alice, f"/v1/messages/{m}/stream/deltas", body)

        follower = Follower(reader.base, alice, m)
        seen: list[str] = []
        last_id = None
        delays = []
        for index, text in enumerate(["Once ", "upon ", "a "]):
            delta(index, text)
            written = time.monotonic()
            arrived, event = follower.next()  # each flush arrives live, one event each
            delays.append(arrived - written)
            assert event["event"] == "delta", event
            seen.append(json.loads(event["data"])["text"])
            last_id = event["id"]
        # Woken, not polled, on PostgreSQL: well within the 60 s poll interval.
        assert max(delays[1:]) < min(poll * 20, PATIENCE), delays
        assert follower.status == 200
        follower.close()  # the client goes away (a closed tab, a flaky network)
        delta(3, "time, ")
        delta(4, "there ")

        resumed = Follower(reader.base, alice, m, **{"Last-Event-ID": str(last_id)})
        _, event = resumed.next()
        assert (event["event"], event["id"]) == ("delta", "24")
        seen.append(json.loads(event["data"])["text"])  # what was missed, in one event
        delta(5, "was ")
        seen.append(json.loads(resumed.next()[1]["data"])["text"])
        finish = {"text": "a ledger.", "output_tokens": 9}
        done = _post(client, writer.base, alice, f"/v1/messages/{m}/stream/finish", finish)
        events = [resumed.next()[1] for _ in range(3)]
        assert [e["event"] for e in events] == ["delta", "done", "closed"], events
        seen.append(json.loads(events[0]["data"])["text"])
        final = json.loads(events[1]["data"])
        assert events[1]["id"] == "done"
        assert final == done
        assert (final["status"], final["output_tokens"]) == ("completed", 9)
        # Nothing missed, nothing repeated, across the disconnect.
        assert "".join(seen) == final["content"] == "Once upon a time, there was a ledger."

        # An EventSource that reconnects after the end is told to stop (204).
        after = client.get(
            f"{reader.base}/v1/messages/{m}/stream/events",
            headers={**alice.headers, "Last-Event-ID": "done"},
        )
        assert after.status_code == 204


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_follower_that_goes_away_leaves_nothing_behind(database_url: URL) -> None:
    """uvicorn in this process (a thread), so that the server's wake-up hub can be looked
    at: once the client drops the connection, its follow ends and unsubscribes."""
    import uvicorn

    from chatledger.server import ServerSettings, create_app

    from ._live import free_port

    _, alice, _ = seed(database_url)
    settings = ServerSettings(
        purge_interval=0, sweep_interval=0, stream_poll_interval=0.05, stream_heartbeat=0.2
    )
    app = create_app(database_url, settings=settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(timeout=PATIENCE) as client:
            chat = _post(client, base, alice, "/v1/conversations", {})["id"]
            m = _post(client, base, alice, f"/v1/conversations/{chat}/streams", {})["id"]
        hub = app.state.ledger._core.wakeups()
        followers = [Follower(base, alice, m) for _ in range(3)]
        deadline = time.monotonic() + PATIENCE
        while len(hub._waiters.get(m, ())) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(hub._waiters[m]) == 3
        for follower in followers:
            follower._stop.set()
        for follower in followers:
            follower.close()
        deadline = time.monotonic() + PATIENCE
        while m in hub._waiters and time.monotonic() < deadline:
            time.sleep(0.02)
        assert m not in hub._waiters, "a follow outlived its client"
    finally:
        server.should_exit = True
        thread.join(PATIENCE)
