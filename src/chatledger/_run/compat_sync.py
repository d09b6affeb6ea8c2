"""What the generated synchronous code uses where the asynchronous source uses asyncio."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from sqlalchemy import Engine

__all__ = ["AnyEngine", "Awaitable", "Lock", "sleep", "to_thread"]

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
