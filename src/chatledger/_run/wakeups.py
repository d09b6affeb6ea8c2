"""Wake-ups for readers that follow a streaming reply (docs/streaming.md, "Wake-ups").

A :class:`Wakeups` hub belongs to one store (one per process in a server). Readers subscribe
to a message id and wait on their :class:`Waiter`; the hub fires it when that reply may have
changed:

- on PostgreSQL (psycopg, no transaction-mode pooler), the writes of a stream send
  ``NOTIFY chatledger_streams, '<message id>'`` in their transaction; the hub holds **one**
  ``LISTEN`` connection per store, on a daemon thread, whatever the number of readers, and
  fires the waiters of the notified id when the write commits, from any process or host;
- everywhere, a write made through this store fires its readers in this process at once
  (:meth:`Wakeups.signal`);
- a reader also re-reads after a bounded interval without a wake-up: ``poll_interval``
  where nothing can notify it (another process writing to SQLite or MariaDB), and
  :data:`LISTEN_SAFETY_INTERVAL` while the hub listens (a notification lost while the
  ``LISTEN`` connection was being re-made is caught up then; the hub also fires every
  waiter whenever it (re)starts listening).

Both surfaces use the same hub: a sync reader waits on a ``threading.Event``, an async one on
an ``asyncio.Event`` set from the listening thread with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from typing import Any, Final

from sqlalchemy import Engine

from .._backends import Backend

__all__ = [
    "CHANNEL",
    "LISTEN_SAFETY_INTERVAL",
    "Waiter",
    "Wakeups",
]

logger = logging.getLogger(__name__)

#: The notification channel of stream writes; the payload is the message id.
CHANNEL: Final = "chatledger_streams"
#: While the hub listens, a reader re-reads at least this often without a notification.
LISTEN_SAFETY_INTERVAL: Final = 5.0
#: How long the listening thread waits for notifications before checking it should stop,
#: and how long it waits before connecting again after losing its connection.
_LISTEN_TICK: Final = 0.5
_RECONNECT_DELAY: Final = 1.0


class Waiter:
    """One reader's subscription to one reply's wake-ups."""

    __slots__ = ("_async", "_loop", "_thread", "key")

    def __init__(self, key: str, loop: asyncio.AbstractEventLoop | None) -> None:
        self.key = key
        self._loop = loop
        self._async = asyncio.Event() if loop is not None else None
        self._thread = threading.Event() if loop is None else None

    def fire(self) -> None:
        """Wake the reader (from any thread)."""
        if self._thread is not None:
            self._thread.set()
            return
        assert self._loop is not None
        assert self._async is not None
        with contextlib.suppress(RuntimeError):  # the loop was closed: nobody waits
            self._loop.call_soon_threadsafe(self._async.set)

    def clear(self) -> None:
        """Forget earlier wake-ups (call before reading, so a write committed during the
        read wakes the next wait)."""
        if self._thread is not None:
            self._thread.clear()
        else:
            assert self._async is not None
            self._async.clear()

    def wait_blocking(self, timeout: float) -> bool:
        """Block until woken or ``timeout`` seconds passed; whether it was woken."""
        assert self._thread is not None
        return self._thread.wait(timeout)

    async def wait_async(self, timeout: float) -> bool:
        """Wait until woken or ``timeout`` seconds passed; whether it was woken."""
        assert self._async is not None
        try:
            await asyncio.wait_for(self._async.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Wakeups:
    """The wake-up hub of one store (see the module's docstring)."""

    def __init__(self, engine: Engine, backend: Backend) -> None:
        self._connect = backend.listener(engine)
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = {}
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def can_listen(self) -> bool:
        """Whether the database can notify this hub of other processes' writes."""
        return self._connect is not None

    @property
    def listening(self) -> bool:
        """Whether the ``LISTEN`` connection is up now."""
        return self._listening.is_set()

    def interval(self, poll_interval: float) -> float:
        """How long a reader waits for a wake-up before it re-reads anyway."""
        return max(poll_interval, LISTEN_SAFETY_INTERVAL) if self.listening else poll_interval

    def subscribe(self, message_id: uuid.UUID, *, asynchronous: bool) -> Waiter:
        """A waiter for ``message_id``'s wake-ups (``asynchronous``: waited on in the running
        event loop). Starts listening on first use where the database can notify."""
        loop = asyncio.get_running_loop() if asynchronous else None
        waiter = Waiter(str(message_id), loop)
        with self._lock:
            self._waiters.setdefault(waiter.key, set()).add(waiter)
            if self._connect is not None and self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._listen, name="chatledger-listen", daemon=True
                )
                self._thread.start()
        return waiter

    def unsubscribe(self, waiter: Waiter) -> None:
        """Stop delivering wake-ups to ``waiter``."""
        with self._lock:
            waiters = self._waiters.get(waiter.key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[waiter.key]

    def signal(self, message_id: uuid.UUID | str) -> None:
        """Wake this process's readers of ``message_id`` (a write through this store)."""
        with self._lock:
            waiters = list(self._waiters.get(str(message_id), ()))
        for waiter in waiters:
            waiter.fire()

    def _fire_all(self) -> None:
        with self._lock:
            waiters = [w for group in self._waiters.values() for w in group]
        for waiter in waiters:
            waiter.fire()

    def close(self) -> None:
        """Stop listening (the thread closes its connection and ends within
        ``_LISTEN_TICK`` seconds; nothing waits for it) and wake every reader."""
        self._stop.set()
        self._fire_all()

    def _listen(self) -> None:
        connect = self._connect
        assert connect is not None
        while not self._stop.is_set():
            try:
                conn = connect()
            except Exception as exc:  # the database is away: readers poll meanwhile
                logger.warning("cannot listen for stream wake-ups: %s", _brief(exc))
                self._stop.wait(_RECONNECT_DELAY)
                continue
            try:
                self._serve(conn)
            except Exception as exc:
                logger.warning("lost the stream wake-up connection: %s", _brief(exc))
                self._stop.wait(_RECONNECT_DELAY)
            finally:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    conn.close()

    def _serve(self, conn: Any) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        self._listening.set()
        # Whatever was written while nobody listened: every reader reads again.
        self._fire_all()
        while not self._stop.is_set():
            for notice in conn.notifies(timeout=_LISTEN_TICK):
                self.signal(notice.payload)
                if self._stop.is_set():
                    break


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
