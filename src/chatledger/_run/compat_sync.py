"""What the generated synchronous code uses where the asynchronous source uses asyncio."""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from sqlalchemy import Engine

from .wakeups import Waiter, Wakeups

__all__ = [
    "AnyEngine",
    "Awaitable",
    "Lock",
    "embed",
    "sleep",
    "subscribe",
    "to_thread",
    "woken",
]

#: The engines a store can adopt.
AnyEngine = Engine

T = TypeVar("T")

#: The synchronous twin of ``Awaitable[T]``: the value itself.
Awaitable = Annotated[T, "synchronous"]
Lock = threading.Lock
sleep = time.sleep


def to_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """The synchronous twin of ``to_thread``: call ``fn`` here."""
    return fn(*args, **kwargs)


def embed(embedder: Callable[[list[str]], Any], texts: list[str]) -> Any:
    """Call an application's embedder on ``texts``; the synchronous surface needs a
    synchronous one (an async embedder's coroutine is closed and refused)."""
    result = embedder(texts)
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise TypeError("the synchronous Ledger needs a synchronous embedder")
    return result


def subscribe(hub: Wakeups, message_id: uuid.UUID) -> Waiter:
    """A waiter for ``message_id``'s wake-ups, waited on by blocking this thread."""
    return hub.subscribe(message_id, asynchronous=False)


def woken(waiter: Waiter, timeout: float) -> bool:
    """Block until a wake-up, at most ``timeout`` seconds; whether one came."""
    return waiter.wait_blocking(timeout)
