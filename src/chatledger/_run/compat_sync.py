"""What the generated synchronous code uses where the asynchronous source uses asyncio."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from sqlalchemy import Engine

__all__ = ["AnyEngine", "Awaitable", "Lock", "embed", "sleep", "to_thread"]

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
