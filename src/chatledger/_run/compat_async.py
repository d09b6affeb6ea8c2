"""The asyncio names the asynchronous source uses; ``compat_sync.py`` has their twins."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AnyEngine", "Awaitable", "Lock", "embed", "sleep", "to_thread"]

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
