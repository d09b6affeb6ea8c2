"""Short SQLite operations of the asynchronous surface, run on the event loop thread.

SQLite runs in the calling thread. Handing an operation to a worker thread costs two thread
wake-ups (the worker's, then the event loop's through its self-pipe): 30-110 µs on the machines
here, as much as the operation itself (a last-20 read or an append is 90-110 µs). :class:`Inline`
runs an operation on the event loop thread when it can bound how long it holds the loop, and
otherwise answers :data:`MOVED`, for the caller to run it on a worker instead:

- **It never waits for a lock.** Its one connection has a busy timeout of 0, and it takes the
  in-process write lock without blocking: an operation that would wait fails at once
  (``TransientError``), is rolled back, and is moved.
- **It never runs long.** A progress handler interrupts the running statement once the
  operation has run for ``budget`` seconds (``Config.sqlite_inline_budget``, 2 ms by default);
  the operation is rolled back and moved, and the same operation goes to the workers for its
  next :data:`COOLDOWN` calls.
- **It never waits for the disk to sync.** Writes run inline only with ``synchronous=NORMAL``,
  where a commit in WAL mode writes to the OS cache and syncs only when checkpointing, and its
  connection does not checkpoint (``wal_autocheckpoint=0``): after about as many frames as
  SQLite's own threshold (1,000 pages), :meth:`checkpoint_due` asks the caller to run a passive
  checkpoint on a worker, under the write lock as every in-process checkpoint is.

What is not bounded: a page missing from the OS cache is read from the disk (a page per miss),
as any file read on the loop would be. ``sqlite_inline_budget=0`` runs everything on workers.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import Engine, event

from .._backends import write_lock
from ..errors import TransientError
from .database_sync import Database

__all__ = ["COOLDOWN", "MOVED", "Inline", "Moved"]

T = TypeVar("T")
logger = logging.getLogger(__name__)


class Moved(enum.Enum):
    """The answer of an operation that must run on a worker thread instead."""

    MOVED = "moved"


MOVED: Final = Moved.MOVED
#: Calls of an operation that ran past the budget that go straight to the workers.
COOLDOWN: Final = 100
#: VM instructions between two looks at the clock (one look costs well under a microsecond).
_STEPS: Final = 4_000
#: WAL frames between two checkpoints: SQLite's default ``wal_autocheckpoint``.
_WAL_FRAMES: Final = 1_000


def _key(op: Callable[..., Any]) -> object:
    """What identifies an operation across calls: closures made per call share their code."""
    if isinstance(op, functools.partial):
        op = op.func
    return getattr(op, "__code__", op)


class Inline:
    """Runs operations on the calling thread, or answers :data:`MOVED` (see the module)."""

    def __init__(self, db: Database, *, budget: float, writes: bool, checkpointer: Engine) -> None:
        self.db = db
        self._budget = budget
        self._writes = writes
        self._checkpointer = checkpointer
        self._write_lock = write_lock(db.engine.url)
        self._guard = threading.Lock()
        self._deadline = math.inf
        self._tripped = False
        self._cooling: dict[object, int] = {}
        #: Inline commits since the last checkpoint, and how many make ~1,000 WAL frames (an
        #: append writes ~15 frames with the tree and full-text indexes; the first checkpoint
        #: measures it, so the WAL file never grows much past 1,000 frames).
        self._commits = 0
        self._interval = 50
        self.checkpointing = False
        #: A checkpoint waits for the write lock: inline writes step aside (MOVED) until it
        #: has it, or the loop, taking the lock again at once after every write, starves it
        #: (the WAL then grows while it waits; seen under load).
        self._checkpoint_waiting = False
        event.listen(db.engine, "connect", self._on_connect)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if self._writes:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
        dbapi_connection.set_progress_handler(self._over_budget, _STEPS)

    def _over_budget(self) -> int:
        if time.perf_counter() < self._deadline:
            return 0
        self._deadline = math.inf  # interrupt once: the rollback that follows must run
        self._tripped = True
        return 1

    def read(self, op: Callable[..., T], args: Any, kwargs: Any) -> T | Literal[Moved.MOVED]:
        """``op`` as :meth:`Database.read` runs it, or :data:`MOVED`."""
        return self._call(self.db.read, op, args, kwargs)

    def run(self, op: Callable[..., T], args: Any, kwargs: Any) -> T | Literal[Moved.MOVED]:
        """``op`` as :meth:`Database.run` runs it (a write transaction), or :data:`MOVED`."""
        if not self._writes or self._checkpoint_waiting or self._overdue():
            return MOVED
        result: T | Literal[Moved.MOVED] = self._call(self.db.run, op, args, kwargs)
        if result is not MOVED:
            self._commits += 1
        return result

    def _call(
        self, how: Callable[..., Any], op: Callable[..., T], args: Any, kwargs: Any
    ) -> T | Literal[Moved.MOVED]:
        cooling = self._cooling
        if cooling:
            # Loops of other threads may count down the same entry: pop with a default.
            key = _key(op)
            left = cooling.pop(key, 0)
            if left:
                if left > 1:
                    cooling[key] = left - 1
                return MOVED
        if not self._guard.acquire(blocking=False):
            return MOVED  # another thread's event loop is using the connection
        try:
            self._tripped = False
            self._deadline = time.perf_counter() + self._budget
            try:
                done: T = how(op, *args, **kwargs)
                return done
            except TransientError:
                return MOVED  # it would have waited for a lock; rolled back
            except Exception:
                if not self._tripped:
                    raise
                if len(cooling) > 256:
                    cooling.clear()
                cooling[_key(op)] = COOLDOWN
                logger.debug("%r ran past %.1f ms: moved to worker threads", op, self._budget * 1e3)
                return MOVED
        finally:
            self._deadline = math.inf
            self._guard.release()

    def _overdue(self) -> bool:
        """Whether a checkpoint started a while ago and has not finished (a loaded machine
        has not scheduled its thread): writes then go to the workers, whose connections
        checkpoint on their own (SQLite's ``wal_autocheckpoint``), so the WAL stays bounded."""
        return self.checkpointing and self._commits >= 2 * self._interval

    def checkpoint_due(self) -> bool:
        """Whether the inline writes since the last checkpoint make about 1,000 WAL frames."""
        return self._commits >= self._interval and not self.checkpointing

    def checkpoint(self) -> None:
        """A passive checkpoint, for a worker thread; it also learns how many inline commits
        make ~1,000 frames from the size of the WAL it found."""
        commits, self._commits = self._commits, 0
        self._checkpoint_waiting = True
        try:
            acquired = self._write_lock.acquire(timeout=10.0)
        finally:
            self._checkpoint_waiting = False
        if not acquired:
            return  # a writer holds the lock that long: the next one will try again
        try:
            with self._checkpointer.connect() as conn:
                row = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        finally:
            self._write_lock.release()
        frames = row[1]
        if commits and frames > 0:
            self._interval = max(8, min(10_000, int(_WAL_FRAMES * commits / frames)))
        logger.debug("checkpointed %s WAL frames after %s inline commits", frames, commits)
