"""What a ledger and its user scopes share: the core (database, configuration, retries,
the current transaction) and the store base class with ``transaction()``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from .. import migrate
from .._run.compat_async import Awaitable, Lock, sleep
from .._run.database_async import AsyncDatabase, AsyncTransaction
from .._run.retry import RetryPolicy
from .._validate import Limits
from ..config import Config
from ..errors import ConfigurationError, TransientError
from ._citations import AsyncCitations
from ._conversations import AsyncConversations
from ._feedback import AsyncMessageFeedback
from ._messages import AsyncMessages
from ._search import AsyncSearch
from ._surveys import AsyncSurveys
from ._tokens import AsyncTokens
from ._usage import AsyncUsage

__all__ = ["_AsyncCore", "_AsyncStore"]

logger = logging.getLogger(__name__)

S = TypeVar("S", bound="_AsyncStore")
T = TypeVar("T")


class _AsyncCore:
    """State shared by a ledger and its user scopes."""

    def __init__(
        self, db: AsyncDatabase, config: Config, retry: RetryPolicy, limits: Limits
    ) -> None:
        self.db = db
        self.config = config
        self.retry = retry
        self.limits = limits
        self.current: contextvars.ContextVar[AsyncTransaction | None] = contextvars.ContextVar(
            f"chatledger_transaction_{id(self):x}", default=None
        )
        self.opened = False
        self.closed = False
        self.open_lock = Lock()

    async def open(self) -> None:
        if self.opened:
            return
        if self.closed:
            raise ConfigurationError("the store is closed")
        async with self.open_lock:
            if not self.opened:
                await self.retrying(
                    self.db.run_raw, migrate.ensure_schema, auto_upgrade=self.config.auto_upgrade
                )
                self.opened = True

    async def retrying(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)``, re-run after transient failures per the policy."""
        failures = 0
        while True:
            try:
                return await fn(*args, **kwargs)
            except TransientError as exc:
                failures += 1
                delay = self.retry.delay(failures)
                if delay is None:
                    raise
                logger.info("retrying after a transient failure (%d): %s", failures, exc)
                await sleep(delay)


class _AsyncStore:
    """What a ledger and a user scope share: running operations, and transactions."""

    def __init__(self, core: _AsyncCore, owner: uuid.UUID | None) -> None:
        self._core = core
        self._owner = owner
        self.conversations = AsyncConversations(self)
        self.messages = AsyncMessages(self)
        self.feedback = AsyncMessageFeedback(self)
        self.citations = AsyncCitations(self)
        self.usage = AsyncUsage(self)
        self.surveys = AsyncSurveys(self)
        self.tokens = AsyncTokens(self)
        self.search = AsyncSearch(self)

    @property
    def limits(self) -> Limits:
        """The input limits in force."""
        return self._core.limits

    async def _call(
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
            return await tx.call(op, *args, **kwargs)
        if not core.opened:
            await core.open()
        db = core.db
        how = (db.run_single if single else db.run) if write else db.read
        result: T = await core.retrying(how, op, *args, **kwargs)
        return result

    @contextlib.asynccontextmanager
    async def transaction(self: S) -> AsyncIterator[S]:
        """Group operations into one atomic unit: they commit together when the block ends,
        and an exception inside rolls all of them back. Nested blocks are savepoints.

        The block is not retried (it cannot be re-run); use :meth:`run_in_transaction` for
        that. Do not share one transaction between threads or tasks.
        """
        core = self._core
        tx = core.current.get()
        if tx is not None:
            async with tx.savepoint():
                yield self
            return
        if not core.opened:
            await core.open()
        async with core.db.transaction() as tx:
            token = core.current.set(tx)
            try:
                yield self
            finally:
                core.current.reset(token)

    async def run_in_transaction(self: S, fn: Callable[[S], Awaitable[T]]) -> T:
        """Call ``fn(store)`` inside :meth:`transaction`, re-running the whole of it after a
        transient failure (deadlock, serialization failure, dropped connection, busy SQLite),
        with backoff. ``fn`` must be safe to run again."""
        if self._core.current.get() is not None:
            # Inside an outer transaction: only the outer one can be re-run.
            async with self.transaction() as store:
                return await fn(store)
        result: T = await self._core.retrying(self._once, fn)
        return result

    async def _once(self: S, fn: Callable[[S], Awaitable[T]]) -> T:
        async with self.transaction() as store:
            return await fn(store)
