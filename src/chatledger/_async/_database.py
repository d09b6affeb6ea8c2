"""Runs operations for the asynchronous surface. Operations are synchronous functions of a
SQLAlchemy ``Connection`` (shared with the synchronous surface); there are two ways to run them:

- :class:`NativeDatabase`: an ``AsyncEngine`` on an asyncio driver (psycopg, aiomysql). The whole
  operation runs in one ``AsyncConnection.run_sync`` call, so its statements pay for one
  greenlet switch instead of one each.
- :class:`ThreadedDatabase`: the synchronous :class:`~chatledger._sync._database.Database` on
  worker threads, one hop per operation. Used for SQLite, whose asyncio driver pays a thread hop
  per statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .._backends import WRITE, Backend
from .._sync._database import Database, Transaction
from .._translate import translate

__all__ = ["AsyncDatabase", "AsyncTransaction", "NativeDatabase", "ThreadedDatabase"]

T = TypeVar("T")
P = ParamSpec("P")
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

    async def run(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` in a write transaction of its own."""
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

    def translate(self, exc: SQLAlchemyError) -> Exception:
        """The chatledger error for a SQLAlchemy/driver error."""
        return translate(exc, self.backend, secret=self._secret)

    async def run(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            async with self._writer.begin() as conn:
                return await conn.run_sync(op, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    async def read(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            async with self._reader.connect() as conn:
                return await conn.run_sync(op, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    async def run_raw(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            async with self._writer.connect() as conn:
                return await conn.run_sync(op, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

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


class ThreadedDatabase:
    """Operations of a synchronous :class:`Database`, each run on a worker thread."""

    def __init__(self, db: Database, *, workers: int) -> None:
        self.db = db
        self.backend = db.backend
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="chatledger")

    async def hop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

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
        return await self.hop(self.db.run, op, *args, **kwargs)

    async def read(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.hop(self.db.read, op, *args, **kwargs)

    async def run_raw(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.hop(self.db.run_raw, op, *args, **kwargs)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncTransaction]:
        async with self.entered(self.db.transaction()) as tx:
            yield _ThreadedTransaction(tx, self)

    async def dispose(self) -> None:
        await self.hop(self.db.dispose)
        self._executor.shutdown(wait=False)
