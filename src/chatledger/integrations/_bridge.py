"""How an integration runs chatledger operations on a sync or an async store.

The integrations' methods come in sync/async twins (the frameworks require both). Each twin
runs the same operation (a plain function of a connection, see ``chatledger._ops``) through
:class:`Runner`: on a sync store the sync twin calls it directly and the async twin on a worker
thread; on an async store the async twin awaits it, and the sync twin hands it to the store's
event loop when called from another thread (as LangGraph's official async savers do).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from .._async._store import _AsyncStore, run_op
from .._sync._store import _Store
from .._sync._store import run_op as run_op_sync
from ..errors import ConfigurationError, MissingDependencyError

__all__ = ["AnyStore", "Runner", "require"]

T = TypeVar("T")
AnyStore = _Store | _AsyncStore


def require(module: str, package: str, extra: str) -> None:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, extra) from exc


class Runner:
    """Runs operations on a :class:`~chatledger.Ledger`, an :class:`~chatledger.AsyncLedger`
    or a user scope of either."""

    __slots__ = ("_loop", "is_async", "store")

    def __init__(self, store: object) -> None:
        if not isinstance(store, _Store | _AsyncStore):
            raise TypeError(
                "expected a chatledger Ledger, AsyncLedger or user scope, "
                f"not {type(store).__name__}"
            )
        self.store: AnyStore = store
        self.is_async = isinstance(store, _AsyncStore)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def owner(self) -> Any:
        """The scope's user id (``None`` for a whole ledger)."""
        return self.store._owner

    @property
    def in_transaction(self) -> bool:
        """Whether operations run now would join the caller's ``store.transaction()`` (so
        their effects may still be rolled back after they return)."""
        return self.store._core.current.get() is not None

    @property
    def max_batch(self) -> int:
        """The store's batch size limit."""
        return self.store.limits.max_batch_size

    def call(self, op: Callable[..., T], *args: Any, write: bool = False, **kwargs: Any) -> T:
        """Run ``op`` from synchronous code."""
        store = self.store
        if isinstance(store, _Store):
            return run_op_sync(store, op, *args, write=write, **kwargs)
        loop = self._loop
        if loop is None or not loop.is_running():
            raise ConfigurationError(
                "this integration was built on an AsyncLedger: use its async methods "
                "(ainvoke, astream, aget_messages...), or build it on a Ledger"
            )
        if _running_loop() is loop:
            raise ConfigurationError(
                "a synchronous method of an integration built on an AsyncLedger was called "
                "from its event loop, where it would block the loop: await the async twin"
            )
        future = asyncio.run_coroutine_threadsafe(
            run_op(store, op, *args, write=write, **kwargs), loop
        )
        return future.result()

    async def acall(
        self, op: Callable[..., T], *args: Any, write: bool = False, **kwargs: Any
    ) -> T:
        """Run ``op`` from asynchronous code."""
        store = self.store
        if isinstance(store, _AsyncStore):
            self._loop = asyncio.get_running_loop()
            return await run_op(store, op, *args, write=write, **kwargs)
        # On a worker thread, in a copy of this context (the store's current transaction).
        work: Callable[[], T] = functools.partial(
            run_op_sync, store, op, *args, write=write, **kwargs
        )
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(None, context.run, work)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
