"""Fault injection for the exactly-once suite (tests/test_exactly_once.py).

- :class:`Proxy`: a loopback TCP proxy (threads) between chatledger and a PostgreSQL or MariaDB
  server. :meth:`Proxy.arm` makes it cut the next connection whose client sends a message
  containing a pattern: before the message reaches the server (``"request"``), after it reached
  the server but before any of the reply reaches the client (``"reply"``: for ``COMMIT`` the
  server has committed, the client never learns it), or in the middle of the reply
  (``"result"``: half of the reply's first chunk is delivered). :meth:`Proxy.cut_any` cuts a
  random open connection at once; :attr:`Proxy.refusing` makes it refuse new connections (the
  server seems down).
- :func:`kill_sessions`: server-side kills of the test database's sessions
  (``pg_terminate_backend``, MariaDB ``KILL CONNECTION``).
- :class:`FaultySQLite`: SQLite has no connection to cut. Its faults are raised by a
  ``sqlite3.Connection`` subclass (``sqlite3.connect(factory=...)``) as the I/O errors SQLite
  itself reports (``SQLITE_IOERR``): before a statement runs, after ``COMMIT`` has committed,
  or in the middle of reading a result.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger._backends import sqlite_library

Point = Literal["request", "reply", "result"]
POINTS: tuple[Point, ...] = ("request", "reply", "result")

_LIBRARY: Any = sqlite_library()


@dataclass
class Cut:
    """Cut the next connection that sends ``pattern`` (a regex on the raw bytes) at ``point``."""

    point: Point
    pattern: bytes
    fired: int = 0
    #: Once fired, every other connection is closed and new ones are refused (the server
    #: seems gone until ``refusing`` is set back).
    then_down: bool = False


class _Pipe:
    """One proxied connection: a thread per direction."""

    def __init__(self, proxy: Proxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.pending: Point | None = None  # a cut waiting for the server's reply
        self.closed = False
        self.lock = threading.Lock()

    def start(self) -> None:
        for target in (self._upstream, self._downstream):
            threading.Thread(target=target, daemon=True).start()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.proxy._forget(self)

    def _upstream(self) -> None:
        try:
            while chunk := self.client.recv(65536):
                cut = self.proxy._take(chunk)
                if cut is not None and cut.then_down:
                    self.proxy.down(keep=self)
                if cut is not None and cut.point == "request":
                    self.close()
                    return
                if cut is not None:
                    self.pending = cut.point
                self.server.sendall(chunk)
        except OSError:
            pass
        self.close()

    def _downstream(self) -> None:
        try:
            while chunk := self.server.recv(65536):
                pending = self.pending
                if pending == "reply":
                    self.close()
                    return
                if pending == "result":
                    self.client.sendall(chunk[: max(1, len(chunk) // 2)])
                    self.close()
                    return
                self.client.sendall(chunk)
        except OSError:
            pass
        self.close()


class Proxy:
    """A TCP proxy on 127.0.0.1 (a free port) to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.pipes: set[_Pipe] = set()
        self.cuts: list[Cut] = []
        self.refusing = False
        self.lock = threading.Lock()
        self.cut_count = 0
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: URL) -> URL:
        """``url`` through this proxy."""
        return url.set(host="127.0.0.1", port=self.port)

    def arm(self, point: Point, pattern: bytes, *, then_down: bool = False) -> Cut:
        """Cut the next connection that sends ``pattern`` at ``point``; once."""
        cut = Cut(point, pattern, then_down=then_down)
        with self.lock:
            self.cuts.append(cut)
        return cut

    def disarm(self) -> None:
        with self.lock:
            self.cuts.clear()

    def reset(self) -> None:
        """Forget every fault still pending (armed cuts, cuts that :meth:`cut_any` left on an
        idle connection, refusal): the next test starts from a proxy that only forwards."""
        with self.lock:
            self.cuts.clear()
            pipes = list(self.pipes)
        for pipe in pipes:
            pipe.pending = None
        self.refusing = False

    def cut_any(self, rng: random.Random) -> None:
        """Cut one open connection now (a random one), at a random point of its next
        exchange: now, after its next message reaches the server, or mid-reply."""
        with self.lock:
            pipes = sorted(self.pipes, key=id)
        if not pipes:
            return
        pipe = rng.choice(pipes)
        point = rng.choice(POINTS)
        with self.lock:
            self.cut_count += 1
        if point == "request":
            pipe.close()
        else:
            pipe.pending = point

    def down(self, keep: _Pipe | None = None) -> None:
        """Refuse new connections and close the open ones (but ``keep``)."""
        self.refusing = True
        with self.lock:
            pipes = [pipe for pipe in self.pipes if pipe is not keep]
        for pipe in pipes:
            pipe.close()

    def _take(self, chunk: bytes) -> Cut | None:
        with self.lock:
            for cut in self.cuts:
                if re.search(cut.pattern, chunk):
                    self.cuts.remove(cut)
                    cut.fired += 1
                    self.cut_count += 1
                    return cut
        return None

    def _forget(self, pipe: _Pipe) -> None:
        with self.lock:
            self.pipes.discard(pipe)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe = _Pipe(self, client, server)
            with self.lock:
                self.pipes.add(pipe)
            pipe.start()

    def close(self) -> None:
        self._stopped = True
        self.listener.close()
        with self.lock:
            pipes = list(self.pipes)
        for pipe in pipes:
            pipe.close()


def kill_sessions(admin: sa.Engine, database: str, rng: random.Random) -> int:
    """Kill one random session of ``database`` from the server side; how many were killed."""
    with admin.connect() as conn:
        if admin.dialect.name == "postgresql":
            ids = (
                conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = :db "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                )
                .scalars()
                .all()
            )
            if not ids:
                return 0
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": rng.choice(ids)})
            return 1
        ids = (
            conn.execute(
                sa.text(
                    "SELECT id FROM information_schema.processlist WHERE db = :db "
                    "AND id <> CONNECTION_ID()"
                ),
                {"db": database},
            )
            .scalars()
            .all()
        )
        if not ids:
            return 0
        try:
            conn.execute(sa.text(f"KILL CONNECTION {int(rng.choice(ids))}"))
        except sa.exc.OperationalError:  # it ended meanwhile
            return 0
        return 1


def _io_error() -> Exception:
    # The library chatledger opens SQLite with (bundled pysqlite3 or the system sqlite3).
    error: Exception = _LIBRARY.OperationalError("disk I/O error")
    error.sqlite_errorcode = 10  # type: ignore[attr-defined]  # SQLITE_IOERR
    error.sqlite_errorname = "SQLITE_IOERR"  # type: ignore[attr-defined]
    return error


class SQLiteFaults:
    """What the next :class:`FaultySQLite` operation should fail at (shared by its
    connections): ``arm(point, pattern)`` as for the proxy, ``pattern`` matched against the
    SQL (``COMMIT`` for the commit)."""

    def __init__(self) -> None:
        self.cuts: list[Cut] = []
        self.lock = threading.Lock()
        self.cut_count = 0
        self.random: tuple[random.Random, float] | None = None

    def arm(self, point: Point, pattern: bytes) -> Cut:
        cut = Cut(point, pattern)
        with self.lock:
            self.cuts.append(cut)
        return cut

    def disarm(self) -> None:
        with self.lock:
            self.cuts.clear()

    def take(self, sql: str) -> Point | None:
        with self.lock:
            for cut in self.cuts:
                if re.search(cut.pattern, sql.encode()):
                    self.cuts.remove(cut)
                    cut.fired += 1
                    self.cut_count += 1
                    return cut.point
            if self.random is not None:
                rng, rate = self.random
                if rng.random() < rate:
                    self.cut_count += 1
                    return rng.choice(POINTS)
        return None


def faulty_sqlite(faults: SQLiteFaults) -> type[Any]:
    """A ``sqlite3.Connection`` class that fails as ``faults`` says."""

    class FaultyCursor(_LIBRARY.Cursor):  # type: ignore[misc]
        failing = False

        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            point = faults.take(sql)
            if point == "request":
                raise _io_error()
            result = super().execute(sql, parameters)
            if point == "reply" or (point == "result" and self.description is None):
                raise _io_error()  # it ran; the caller is told it failed
            self.failing = point == "result"
            return result

        def executemany(self, sql: str, seq: Any, /) -> Any:
            if faults.take(sql) == "request":
                raise _io_error()
            return super().executemany(sql, seq)

        def _fetched(self, rows: Any) -> Any:
            if self.failing:
                self.failing = False
                raise _io_error()
            return rows

        def fetchone(self) -> Any:
            return self._fetched(super().fetchone())

        def fetchall(self) -> Any:
            return self._fetched(super().fetchall())

        def fetchmany(self, size: int | None = 1) -> Any:
            return self._fetched(super().fetchmany(size))

    class FaultySQLite(_LIBRARY.Connection):  # type: ignore[misc]
        def cursor(self, factory: Any = FaultyCursor) -> Any:
            return super().cursor(factory)

        def commit(self) -> None:
            point = faults.take("COMMIT") if self.in_transaction else None
            if point == "request":
                raise _io_error()
            super().commit()
            if point is not None:
                raise _io_error()  # committed; the caller is told it failed

    return FaultySQLite
