"""What the generated synchronous code uses where the asynchronous source uses asyncio."""

from __future__ import annotations

import threading
import time
from typing import Annotated, TypeVar

from sqlalchemy import Engine

__all__ = ["AnyEngine", "Awaitable", "Lock", "sleep"]

#: The engines a store can adopt.
AnyEngine = Engine

T = TypeVar("T")

#: The synchronous twin of ``Awaitable[T]``: the value itself.
Awaitable = Annotated[T, "synchronous"]
Lock = threading.Lock
sleep = time.sleep
