"""Engines: created from a :class:`~chatledger.config.Config`, or adopted from the caller."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .._backends import Backend, backend_for, is_memory_sqlite
from ..config import Config
from ..errors import ConfigurationError

__all__ = ["adopt_engine", "async_engine", "sync_engine"]

logger = logging.getLogger(__name__)


def _options(config: Config, backend: Backend, url: URL, *, reader: bool = False) -> dict[str, Any]:
    options: dict[str, Any] = {"echo": config.echo, "hide_parameters": not config.echo}
    if not is_memory_sqlite(url):
        pool = {
            "pool_size": config.pool_size,
            "max_overflow": config.max_overflow,
            "pool_timeout": config.pool_timeout,
            "pool_recycle": config.pool_recycle,
        }
        if backend.name == "mariadb" and config.pool_recycle is None:
            pool["pool_recycle"] = 3600  # below the server's default wait_timeout of 8 hours
        options.update({name: value for name, value in pool.items() if value is not None})
    extra = backend.engine_options(url, options, pooler=config.pooler)
    connect_args = extra.pop("connect_args", {})
    options.update(extra)
    if reader:
        options["isolation_level"] = "AUTOCOMMIT"
        # An autocommit connection has no transaction to roll back when it returns to the
        # pool: skip the pool's reset (a driver call per read; with asyncio, a lock and a
        # wait on the event loop).
        options["pool_reset_on_return"] = None
    if connect_args:
        options["connect_args"] = connect_args
    return options


def _prepare_sqlite_file(url: URL) -> None:
    if is_memory_sqlite(url) or url.database is None or url.database.startswith("file:"):
        return
    directory = Path(url.database).expanduser().resolve().parent
    if not directory.exists():
        logger.info("creating directory %s for the SQLite database", directory)
        directory.mkdir(parents=True, exist_ok=True)


def sync_engine(
    config: Config, *, reader: bool = False, inline: bool = False
) -> tuple[Engine, Backend]:
    """A new synchronous engine for ``config`` (``reader``: autocommit connections, for the
    read pool of backends that have one; ``inline``: one SQLite connection that never waits for
    a lock, for operations run on the event loop thread, see ``inline.py``)."""
    backend = backend_for(config.url)
    url = backend.url_for(config.url, asynchronous=False)
    if backend.name == "sqlite":
        _prepare_sqlite_file(url)
    options = _options(config, backend, url, reader=reader)
    if inline:
        options.update(pool_size=1, max_overflow=0)
    try:
        engine = create_engine(url, **options)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"cannot create an engine for {config.redacted_url()}: {exc}"
        ) from exc
    backend.install(
        engine,
        synchronous=config.sqlite_synchronous,
        busy_timeout=0.0 if inline else config.sqlite_busy_timeout,
        pooler=config.pooler,
    )
    logger.debug("opened %s", config.redacted_url())
    return engine, backend


def async_engine(config: Config, *, reader: bool = False) -> tuple[AsyncEngine, Backend]:
    """A new asyncio engine for ``config`` (not for SQLite, which runs on threads)."""
    backend = backend_for(config.url)
    url = backend.url_for(config.url, asynchronous=True)
    try:
        engine = create_async_engine(url, **_options(config, backend, url, reader=reader))
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"cannot create an engine for {config.redacted_url()}: {exc}"
        ) from exc
    backend.install(
        engine.sync_engine,
        synchronous=config.sqlite_synchronous,
        busy_timeout=config.sqlite_busy_timeout,
        pooler=config.pooler,
    )
    return engine, backend


def adopt_engine(engine: Engine, config: Config) -> Backend:
    """Install chatledger's connection hooks on an engine the caller created."""
    backend = backend_for(engine.url)
    backend.install(
        engine,
        synchronous=config.sqlite_synchronous,
        busy_timeout=config.sqlite_busy_timeout,
        pooler=config.pooler,
    )
    return backend
