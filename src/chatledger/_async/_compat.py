"""The asyncio names the asynchronous source uses; ``../_sync/_compat.py`` has their twins."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["AnyEngine", "Awaitable", "Lock", "sleep"]

#: The engines a store can adopt.
AnyEngine = Engine | AsyncEngine

Lock = asyncio.Lock
sleep = asyncio.sleep
