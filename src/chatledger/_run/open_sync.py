"""How the synchronous surface opens its database."""

from __future__ import annotations

from sqlalchemy import Engine

from ..config import Config
from .database_sync import Database
from .engine import adopt_engine, pool_budget, sync_engine

__all__ = ["open_database"]


def open_database(config: Config, engine: Engine | None) -> Database:
    """A :class:`Database` on ``engine``, or on a new engine for ``config``."""
    reader = None
    if engine is None:
        engine, backend = sync_engine(config)
        if pool_budget(config, backend).reads is not None:
            reader, _ = sync_engine(config, backend, reader=True)
    else:
        backend = adopt_engine(engine, config)
    return Database(engine, backend, busy_timeout=config.sqlite_busy_timeout, reader=reader)
