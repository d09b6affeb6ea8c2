"""Runs operations on a synchronous engine: one transaction per call, errors translated."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .._backends import Backend, is_memory_sqlite, write_lock
from ..errors import TransientError
from .translate import translate

__all__ = ["Database", "Transaction"]

T = TypeVar("T")
P = ParamSpec("P")
Op = Callable[Concatenate[Connection, P], T]


class Transaction:
    """A transaction the caller holds open; operations run inside it."""

    __slots__ = ("_conn", "_db")

    def __init__(self, conn: Connection, db: Database) -> None:
        self._conn = conn
        self._db = db

    def call(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` inside this transaction."""
        try:
            return op(self._conn, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self._db.translate(exc) from exc

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: an exception inside rolls back only what it did."""
        try:
            with self._conn.begin_nested():
                yield
        except SQLAlchemyError as exc:
            raise self._db.translate(exc) from exc


class Database:
    """An engine, the backend it talks to, and how to run one operation on it."""

    def __init__(
        self,
        engine: Engine,
        backend: Backend,
        *,
        busy_timeout: float = 10.0,
        reader: Engine | None = None,
    ) -> None:
        self.engine = engine
        self.backend = backend
        #: Operations that begin their own transactions (run_raw): begin_write is a hook there.
        self._writer = backend.writer(engine)
        self._read_pool = reader
        self._reader = reader or (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if backend.autocommit_reads
            else engine
        )
        self._secret = engine.url.password if isinstance(engine.url.password, str) else None
        self._busy_timeout = busy_timeout
        self._write_lock: threading.Lock | None = None
        if backend.serialize_writes and not is_memory_sqlite(engine.url):
            self._write_lock = write_lock(engine.url)

    @property
    def sync_engine(self) -> Engine:
        """The engine (the stream wake-ups' listener is made from its connection arguments)."""
        return self.engine

    @property
    def engines(self) -> tuple[Engine, ...]:
        """Every engine this database uses: the main one, and the read pool's if it has one."""
        return (self.engine,) if self._read_pool is None else (self.engine, self._read_pool)

    def translate(self, exc: SQLAlchemyError) -> Exception:
        """The chatledger error for a SQLAlchemy/driver error."""
        return translate(exc, self.backend, secret=self._secret)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Queue in-process SQLite writers on a lock instead of in SQLite's busy handler
        (:meth:`run` does the same inline)."""
        lock = self._write_lock
        if lock is None:
            yield
            return
        if not lock.acquire(timeout=self._busy_timeout):
            raise TransientError("database is locked: timed out waiting for another writer")
        try:
            yield
        finally:
            lock.release()

    def run(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` in a write transaction of its own."""
        # The hot path of every append: the lock and the transaction without the generator
        # context managers of _writing() and Engine.begin() (same behaviour, fewer frames).
        lock = self._write_lock
        if lock is not None and not lock.acquire(timeout=self._busy_timeout):
            raise TransientError("database is locked: timed out waiting for another writer")
        try:
            with self.engine.connect() as conn, conn.begin():
                self.backend.begin_write(conn)
                return op(conn, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc
        finally:
            if lock is not None:
                lock.release()

    def run_single(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op``, whose only write is one statement (it may read before and after), in
        autocommit mode where the backend makes that statement its own transaction
        (PostgreSQL: one round trip instead of BEGIN, the statement and COMMIT); elsewhere as
        :meth:`run`."""
        if not self.backend.autocommit_writes:
            return self.run(op, *args, **kwargs)
        return self.read(op, *args, **kwargs)  # on the autocommit connections

    def read(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read-only ``op`` (in autocommit mode where that saves round trips)."""
        try:
            with self._reader.connect() as conn:
                return op(conn, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    def run_raw(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``op`` on a connection with no transaction begun; ``op`` manages its own."""
        try:
            with self._writing(), self._writer.connect() as conn:
                return op(conn, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Hold one write transaction open; it commits when the block ends, or rolls back."""
        try:
            with self._writing(), self.engine.begin() as conn:
                self.backend.begin_write(conn)
                yield Transaction(conn, self)
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self._read_pool is not None:
            self._read_pool.dispose()
