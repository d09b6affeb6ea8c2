"""How the asynchronous surface opens its database: natively on an asyncio driver, or on
worker threads where that is faster (SQLite)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from .._backends import backend_for, is_memory_sqlite
from ..config import Config
from .database_async import AsyncDatabase, NativeDatabase, ThreadedDatabase
from .database_sync import Database
from .engine import adopt_engine, async_engine, pool_budget, sync_engine
from .inline import Inline

__all__ = ["open_database"]


def _workers(config: Config) -> int:
    return (config.pool_size or 5) + (
        config.max_overflow if config.max_overflow is not None else 10
    )


def open_database(config: Config, engine: Engine | AsyncEngine | None) -> AsyncDatabase:
    """An :class:`AsyncDatabase` on ``engine``, or on a new engine for ``config``."""
    if isinstance(engine, AsyncEngine):
        return NativeDatabase(engine, adopt_engine(engine.sync_engine, config))
    if engine is not None:
        backend = adopt_engine(engine, config)
        db = Database(engine, backend, busy_timeout=config.sqlite_busy_timeout)
        return ThreadedDatabase(db, workers=_workers(config))
    backend = backend_for(config.url)
    if not backend.threaded_async:
        native, _ = async_engine(config, backend)
        reads = pool_budget(config, backend).reads is not None
        native_reader = async_engine(config, backend, reader=True)[0] if reads else None
        return NativeDatabase(native, backend, reader=native_reader)
    engine, _ = sync_engine(config, backend)
    reads = pool_budget(config, backend).reads is not None
    reader = sync_engine(config, backend, reader=True)[0] if reads else None
    inline = None
    if _inlines(config, engine):
        inline = Inline(
            Database(sync_engine(config, backend, inline=True)[0], backend, busy_timeout=0.0),
            budget=config.sqlite_inline_budget,
            writes=config.sqlite_synchronous == "NORMAL",
            checkpointer=engine,
        )
    db = Database(engine, backend, busy_timeout=config.sqlite_busy_timeout, reader=reader)
    return ThreadedDatabase(db, workers=_workers(config), inline=inline)


def _inlines(config: Config, engine: Engine) -> bool:
    """Whether short operations run on the event loop thread: SQLite files (a private
    in-memory database is one connection, which the workers share) with a budget."""
    return (
        engine.dialect.name == "sqlite"
        and not is_memory_sqlite(engine.url)
        and config.sqlite_inline_budget > 0
    )
