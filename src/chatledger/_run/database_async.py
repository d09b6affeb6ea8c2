"""Runs operations for the asynchronous surface. Operations are synchronous functions of a
SQLAlchemy ``Connection`` (shared with the synchronous surface); there are two ways to run them:

- :class:`NativeDatabase`: an ``AsyncEngine`` on an asyncio driver (psycopg, aiomysql). A whole
  operation (check-out, statements, commit, check-in) runs as the synchronous
  :class:`~chatledger._run.database_sync.Database` on the engine's ``sync_engine`` inside one
  greenlet (``greenlet_spawn``, what ``run_sync`` uses): one switch per operation, where
  ``async with engine.connect()`` + ``run_sync`` + close cost three.
- :class:`ThreadedDatabase`: the synchronous ``Database`` on worker threads, one hop per
  operation. Used for SQLite, whose asyncio driver pays a thread hop per statement. The
  workers take jobs from one queue and hand results back with ``call_soon_threadsafe``: a hop
  costs about a third of ``run_in_executor``'s (measured: 32 µs against 75-95 µs on one
  machine, 108 µs against 119 µs on another). Short operations that wait for no lock skip the
  hop: they run on the event loop thread (:mod:`.inline`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from .._backends import WRITE, Backend
from .database_sync import Database, Transaction
from .inline import MOVED, Inline
from .translate import translate

__all__ = ["AsyncDatabase", "AsyncTransaction", "NativeDatabase", "ThreadedDatabase"]

T = TypeVar("T")
P = ParamSpec("P")
logger = logging.getLogger(__name__)
Op = Callable[Concatenate[Connection, P], T]


class AsyncTransaction(Protocol):
    """A transaction the caller holds open; operations run inside it."""

    async def call(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` inside this transaction."""
        ...

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A nested transaction."""
        ...


class AsyncDatabase(Protocol):
    """How the asynchronous surface runs operations (the twin of ``Database``)."""

    backend: Backend

    @property
    def sync_engine(self) -> Engine:
        """The synchronous engine underneath (the stream wake-ups' listener is made from
        its connection arguments)."""
        ...

    async def run(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` in a write transaction of its own."""
        ...

    async def run_single(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op``, whose only write is one statement (see ``Database.run_single``)."""
        ...

    async def read(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read-only ``op``."""
        ...

    async def run_raw(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` on a connection with no transaction begun."""
        ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncTransaction]:
        """Hold one write transaction open."""
        ...

    async def dispose(self) -> None:
        """Close every pooled connection."""
        ...


class _NativeTransaction:
    __slots__ = ("_conn", "_db")

    def __init__(self, conn: AsyncConnection, db: NativeDatabase) -> None:
        self._conn = conn
        self._db = db

    async def call(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await self._conn.run_sync(op, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self._db.translate(exc) from exc

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        try:
            async with self._conn.begin_nested():
                yield
        except SQLAlchemyError as exc:
            raise self._db.translate(exc) from exc


class NativeDatabase:
    """Operations on an ``AsyncEngine``."""

    def __init__(
        self, engine: AsyncEngine, backend: Backend, *, reader: AsyncEngine | None = None
    ) -> None:
        self.engine = engine
        self.backend = backend
        self._writer = engine.execution_options(**{WRITE: True})
        self._read_pool = reader
        self._reader = reader or (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if backend.autocommit_reads
            else engine
        )
        password = engine.url.password
        self._secret = password if isinstance(password, str) else None
        #: The same engines driven synchronously, for one greenlet per operation.
        self._sync = Database(
            engine.sync_engine, backend, reader=None if reader is None else reader.sync_engine
        )

    def translate(self, exc: SQLAlchemyError) -> Exception:
        """The chatledger error for a SQLAlchemy/driver error."""
        return translate(exc, self.backend, secret=self._secret)

    @property
    def sync_engine(self) -> Engine:
        """The synchronous engine underneath."""
        return self.engine.sync_engine

    async def run(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await greenlet_spawn(functools.partial(self._sync.run, op, *args, **kwargs))
        return result

    async def run_single(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await greenlet_spawn(
            functools.partial(self._sync.run_single, op, *args, **kwargs)
        )
        return result

    async def read(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await greenlet_spawn(functools.partial(self._sync.read, op, *args, **kwargs))
        return result

    async def run_raw(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        result: T = await greenlet_spawn(functools.partial(self._sync.run_raw, op, *args, **kwargs))
        return result

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncTransaction]:
        try:
            async with self._writer.begin() as conn:
                yield _NativeTransaction(conn, self)
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._read_pool is not None:
            await self._read_pool.dispose()


class _ThreadedTransaction:
    __slots__ = ("_db", "_tx")

    def __init__(self, tx: Transaction, db: ThreadedDatabase) -> None:
        self._tx = tx
        self._db = db

    async def call(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._db.hop(self._tx.call, op, *args, **kwargs)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self._db.entered(self._tx.savepoint()):
            yield


class _Workers:
    """Worker threads fed by one queue; results go back with ``call_soon_threadsafe``.

    Threads start on demand, up to ``count``, when no worker is idle (as in
    ``ThreadPoolExecutor``). They are daemon threads: a ledger that is never closed does not
    keep the process alive (an interrupted SQLite transaction rolls back on the next open).
    """

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._guard = threading.Lock()
        self._count = max(1, count)
        self._name = name

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``fn`` on a worker; the future resolves on the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._idle.acquire(blocking=False):
            self._spawn()
        self._jobs.put((loop, future, fn))
        return future

    def _spawn(self) -> None:
        with self._guard:
            if len(self._threads) < self._count:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, fn = job
            try:
                outcome: tuple[Callable[..., None], Any] = (_resolve, fn())
            except BaseException as exc:  # handed to the awaiting task, as an executor does
                outcome = (_fail, exc)
            del job, fn
            # A closed loop raises RuntimeError: nobody awaits this result any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(outcome[0], future, outcome[1])
            del outcome, future
            self._idle.release()

    def shutdown(self) -> None:
        """Let every worker finish its current job and stop."""
        with self._guard:
            for _ in self._threads:
                self._jobs.put(None)
            self._threads.clear()


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class ThreadedDatabase:
    """Operations of a synchronous :class:`Database`, each run on a worker thread."""

    def __init__(self, db: Database, *, workers: int, inline: Inline | None = None) -> None:
        self.db = db
        self.backend = db.backend
        self._workers = _Workers(workers, "chatledger")
        self._inline = inline

    @property
    def sync_engine(self) -> Engine:
        """The synchronous engine underneath."""
        return self.db.engine

    async def hop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on a worker thread."""
        return await self._workers.submit(functools.partial(fn, *args, **kwargs))

    @contextlib.asynccontextmanager
    async def entered(self, manager: contextlib.AbstractContextManager[T]) -> AsyncIterator[T]:
        """Enter and exit a synchronous context manager on worker threads."""
        value = await self.hop(manager.__enter__)
        try:
            yield value
        except BaseException as exc:
            if not await self.hop(manager.__exit__, type(exc), exc, exc.__traceback__):
                raise
        else:
            await self.hop(manager.__exit__, None, None, None)

    async def run(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        inline = self._inline
        if inline is not None:
            result = inline.run(op, args, kwargs)
            if result is not MOVED:
                if inline.checkpoint_due():
                    self._checkpoint(inline)
                return result
        return await self.hop(self.db.run, op, *args, **kwargs)

    async def run_single(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run(op, *args, **kwargs)  # SQLite: the write lock, as any write

    async def read(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._inline is not None:
            result = self._inline.read(op, args, kwargs)
            if result is not MOVED:
                return result
        return await self.hop(self.db.read, op, *args, **kwargs)

    def _checkpoint(self, inline: Inline) -> None:
        """Start a passive checkpoint on a worker; nobody awaits it."""
        inline.checkpointing = True

        def done(future: asyncio.Future[None]) -> None:
            inline.checkpointing = False
            if not future.cancelled() and (exc := future.exception()) is not None:
                logger.warning("WAL checkpoint failed: %s", exc)

        self._workers.submit(inline.checkpoint).add_done_callback(done)

    async def run_raw(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.hop(self.db.run_raw, op, *args, **kwargs)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncTransaction]:
        async with self.entered(self.db.transaction()) as tx:
            yield _ThreadedTransaction(tx, self)

    async def dispose(self) -> None:
        await self.hop(self.db.dispose)
        if self._inline is not None:
            await self.hop(self._inline.db.dispose)
        self._workers.shutdown()
