# This file is generated from ../_async/_store.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""What a ledger and its user scopes share: the core (database, configuration, retries,
the current transaction) and the store base class with ``transaction()``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .. import migrate
from .._run.compat_sync import Awaitable, Lock, sleep
from .._run.database_sync import Database, Transaction
from .._run.retry import RetryPolicy
from .._validate import Limits
from ..config import Config
from ..errors import ConfigurationError, TransientError
from ._citations import Citations
from ._conversations import Conversations
from ._feedback import MessageFeedback
from ._messages import Messages
from ._search import Search
from ._surveys import Surveys
from ._tokens import Tokens
from ._usage import Usage

__all__ = ["_Core", "_Store"]

logger = logging.getLogger(__name__)

S = TypeVar("S", bound="_Store")
T = TypeVar("T")


class _Core:
    """State shared by a ledger and its user scopes."""

    def __init__(self, db: Database, config: Config, retry: RetryPolicy, limits: Limits) -> None:
        self.db = db
        self.config = config
        self.retry = retry
        self.limits = limits
        self.current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
            f"chatledger_transaction_{id(self):x}", default=None
        )
        self.opened = False
        self.closed = False
        self.open_lock = Lock()

    def open(self) -> None:
        if self.opened:
            return
        if self.closed:
            raise ConfigurationError("the store is closed")
        with self.open_lock:
            if not self.opened:
                self.retrying(
                    self.db.run_raw, migrate.ensure_schema, auto_upgrade=self.config.auto_upgrade
                )
                self.opened = True

    def retrying(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, re-run after transient failures per the policy."""
        failures = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except TransientError as exc:
                failures += 1
                delay = self.retry.delay(failures)
                if delay is None:
                    raise
                logger.info("retrying after a transient failure (%d): %s", failures, exc)
                sleep(delay)


class _Store:
    """What a ledger and a user scope share: running operations, and transactions."""

    def __init__(self, core: _Core, owner: uuid.UUID | None) -> None:
        self._core = core
        self._owner = owner
        self.conversations = Conversations(self)
        self.messages = Messages(self)
        self.feedback = MessageFeedback(self)
        self.citations = Citations(self)
        self.usage = Usage(self)
        self.surveys = Surveys(self)
        self.tokens = Tokens(self)
        self.search = Search(self)

    @property
    def limits(self) -> Limits:
        """The input limits in force."""
        return self._core.limits

    def _call(
        self,
        op: Callable[..., T],
        *args: Any,
        write: bool = False,
        single: bool = False,
        **kwargs: Any,
    ) -> T:
        """Run ``op`` in the caller's transaction, or in one of its own with retries.
        ``write``: ``op`` writes; ``single``: with one statement at most (autocommit where
        that saves round trips, see ``Database.run_single``)."""
        core = self._core
        tx = core.current.get()
        if tx is not None:
            return tx.call(op, *args, **kwargs)
        if not core.opened:
            core.open()
        db = core.db
        how = (db.run_single if single else db.run) if write else db.read
        result: T = core.retrying(how, op, *args, **kwargs)
        return result

    @contextlib.contextmanager
    def transaction(self: S) -> Iterator[S]:
        """Group operations into one atomic unit: they commit together when the block ends,
        and an exception inside rolls all of them back. Nested blocks are savepoints.

        The block is not retried (it cannot be re-run); use :meth:`run_in_transaction` for
        that. Do not share one transaction between threads or tasks.
        """
        core = self._core
        tx = core.current.get()
        if tx is not None:
            with tx.savepoint():
                yield self
            return
        if not core.opened:
            core.open()
        with core.db.transaction() as tx:
            token = core.current.set(tx)
            try:
                yield self
            finally:
                core.current.reset(token)

    def run_in_transaction(self: S, fn: Callable[[S], Awaitable[T]]) -> T:
        """Call ``fn(store)`` inside :meth:`transaction`, re-running the whole of it after a
        transient failure (deadlock, serialization failure, dropped connection, busy SQLite),
        with backoff. ``fn`` must be safe to run again."""
        if self._core.current.get() is not None:
            # Inside an outer transaction: only the outer one can be re-run.
            with self.transaction() as store:
                return fn(store)
        result: T = self._core.retrying(self._once, fn)
        return result

    def _once(self: S, fn: Callable[[S], Awaitable[T]]) -> T:
        with self.transaction() as store:
            return fn(store)
