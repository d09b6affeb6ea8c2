"""The asyncio names the asynchronous source uses; ``compat_sync.py`` has their twins."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

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
AnyEngine = Engine | AsyncEngine

T = TypeVar("T")

Lock = asyncio.Lock
sleep = asyncio.sleep


async def to_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run CPU-bound ``fn`` (password hashing) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def embed(embedder: Callable[[list[str]], Any], texts: list[str]) -> Any:
    """Call an application's embedder, sync or async, on ``texts``."""
    result = embedder(texts)
    if inspect.isawaitable(result):
        result = await result
    return result


def subscribe(hub: Wakeups, message_id: uuid.UUID) -> Waiter:
    """A waiter for ``message_id``'s wake-ups, waited on in this event loop."""
    return hub.subscribe(message_id, asynchronous=True)


async def woken(waiter: Waiter, timeout: float) -> bool:
    """Wait for a wake-up at most ``timeout`` seconds; whether one came."""
    return await waiter.wait_async(timeout)
