"""The first open waits for a database server that starts late (organic-fishstick's
DATABASE_TIMEOUT, DATABASE_INIT_RETRY_COUNT, DATABASE_INIT_RETRY_DELAY_MS).

The late server is a TCP proxy to the real one that begins listening on its port a moment
after the store starts opening."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL

from chatledger import AsyncLedger, Config, Ledger, TransientError
from chatledger._run.retry import OpenWait

from .conftest import Portal


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class LateProxy:
    """Forwards ``port`` to ``upstream`` once :meth:`start` is called (connections are
    refused until then, as by a server that is still starting)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = _free_port()
        self.listener: socket.socket | None = None
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        listener.settimeout(0.2)
        self.listener = listener
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.listener is not None
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            threading.Thread(target=_pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=_pipe, args=(server, client), daemon=True).start()

    def close(self) -> None:
        self.stopped.set()
        for sock in [*self.sockets, *([self.listener] if self.listener else [])]:
            sock.close()


@pytest.fixture
def late_proxy(database_url: URL) -> Iterator[LateProxy]:
    proxy = LateProxy((database_url.host or "127.0.0.1", int(database_url.port or 0)))
    yield proxy
    proxy.close()


SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)


def _config(database_url: URL, proxy: LateProxy, env: dict[str, str]) -> Config:
    return Config.load(database_url.set(port=proxy.port), environ=env)


@SERVERS
@pytest.mark.parametrize("surface", ["sync", "async"])
def test_the_first_open_waits_for_a_server_that_starts_late(database_url, late_proxy, surface):
    env = {
        "DATABASE_TIMEOUT": "60",
        "DATABASE_INIT_RETRY_COUNT": "3",
        "DATABASE_INIT_RETRY_DELAY_MS": "50",
    }
    config = _config(database_url, late_proxy, env)
    assert (config.open_timeout, config.open_retries, config.open_retry_delay) == (60, 3, 0.05)
    timer = threading.Timer(1.0, late_proxy.start)
    timer.start()
    try:
        if surface == "sync":
            with Ledger(config=config) as ledger:
                assert ledger.users.create(external_id="late").external_id == "late"
        else:
            portal = Portal()
            try:
                store = AsyncLedger(config=config)
                portal.call(store.open())
                user = portal.call(store.users.create(external_id="late"))
                assert user.external_id == "late"
                portal.call(store.close())
            finally:
                portal.close()
    finally:
        timer.cancel()
    assert late_proxy.sockets, "the store reached the server through the proxy"


@SERVERS
def test_without_a_timeout_an_unreachable_server_fails_at_once(database_url, late_proxy):
    config = _config(database_url, late_proxy, {})
    with pytest.raises(TransientError), Ledger(config=config):
        pass


@pytest.mark.parametrize(
    ("wait", "failures", "elapsed", "expected"),
    [
        (OpenWait(), 1, 0.0, None),  # the default: the retry policy's attempts only
        (OpenWait(timeout=10, first_delay=0.1), 1, 0.0, 0.1),
        (OpenWait(timeout=10, first_delay=0.1), 3, 1.0, 0.4),
        (OpenWait(timeout=10, first_delay=1), 10, 2.0, 5.0),  # capped at 5 s
        (OpenWait(timeout=10, first_delay=1), 4, 9.5, 0.5),  # never past the timeout
        (OpenWait(timeout=10), 2, 10.0, None),
        (OpenWait(timeout=1, retries=3, first_delay=0.1), 3, 5.0, 0.4),  # retries owed
        (OpenWait(timeout=1, retries=3, first_delay=0.1), 4, 5.0, None),
    ],
)
def test_open_wait_delays(wait, failures, elapsed, expected):
    assert wait.delay(failures, elapsed) == pytest.approx(expected)


def test_settings_from_the_file_and_their_sources(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("database:\n  open_timeout: 30\n  open_retries: 2\n  open_retry_delay: 0.5\n")
    config = Config.load(config_file=cfg, environ={"DATABASE_INIT_RETRY_DELAY_MS": "250"})
    assert (config.open_timeout, config.open_retries, config.open_retry_delay) == (30, 2, 0.25)
    assert config.sources["open_timeout"] == f"file {cfg}"
    assert config.sources["open_retry_delay"] == "env DATABASE_INIT_RETRY_DELAY_MS"
