"""Engines: created from a :class:`~chatledger.config.Config`, or adopted from the caller."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .._backends import Backend, backend_for, is_memory_sqlite
from ..config import Config
from ..errors import ConfigurationError

__all__ = [
    "PoolBudget",
    "adopt_engine",
    "async_engine",
    "pool_budget",
    "prepare_sqlite_file",
    "sync_engine",
]

logger = logging.getLogger(__name__)


#: SQLAlchemy's own pool defaults, used for a backend with one pool.
_SQLALCHEMY_POOL: Final = (5, 10)
#: The defaults for a backend with a read pool: the process total that two pools of
#: SQLAlchemy's defaults made before ``pool_size`` counted both.
_SPLIT_POOL: Final = (10, 20)


@dataclass(frozen=True, slots=True)
class PoolBudget:
    """The connections one process may open: ``(pool_size, max_overflow)`` of the pool for
    writes (and everything, when there is no read pool) and of the autocommit read pool."""

    writes: tuple[int, int]
    reads: tuple[int, int] | None

    @property
    def connections(self) -> int:
        """The most connections the process holds at once."""
        return sum(self.writes) + (sum(self.reads) if self.reads else 0)


def pool_budget(config: Config, backend: Backend) -> PoolBudget:
    """How ``config.pool_size`` and ``config.max_overflow`` (the process's totals) are shared
    between the write pool and, on backends that have one, the read pool: half each, the
    odd connection to writes; a read pool that would get no steady connection is not made."""
    default = _SPLIT_POOL if backend.read_pool else _SQLALCHEMY_POOL
    size = default[0] if config.pool_size is None else config.pool_size
    overflow = default[1] if config.max_overflow is None else config.max_overflow
    if not backend.read_pool or size // 2 == 0:
        return PoolBudget((size, overflow), None)
    return PoolBudget((size - size // 2, overflow - overflow // 2), (size // 2, overflow // 2))


def _options(config: Config, backend: Backend, url: URL, *, reader: bool = False) -> dict[str, Any]:
    options: dict[str, Any] = {"echo": config.echo, "hide_parameters": not config.echo}
    if not is_memory_sqlite(url):
        budget = pool_budget(config, backend)
        share = budget.reads if reader and budget.reads is not None else budget.writes
        pool = {
            "pool_size": share[0],
            "max_overflow": share[1],
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


def prepare_sqlite_file(url: URL) -> None:
    """Create the directory of an SQLite file URL if it is missing (SQLite creates the file)."""
    if is_memory_sqlite(url) or url.database is None or url.database.startswith("file:"):
        return
    directory = Path(url.database).expanduser().resolve().parent
    if not directory.exists():
        logger.info("creating directory %s for the SQLite database", directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the directory {directory} for the SQLite database "
                f"{url.database}: {exc.strerror or exc}"
            ) from exc


def sync_engine(
    config: Config,
    backend: Backend | None = None,
    *,
    reader: bool = False,
    inline: bool = False,
) -> tuple[Engine, Backend]:
    """A new synchronous engine for ``config`` (``backend``: its backend, when the caller has
    resolved it already; ``reader``: autocommit connections, for the read pool of backends that
    have one; ``inline``: one SQLite connection that never waits for a lock, for operations run
    on the event loop thread, see ``inline.py``)."""
    backend = backend_for(config.url) if backend is None else backend
    url = backend.url_for(config.url, asynchronous=False)
    if backend.name == "sqlite":
        prepare_sqlite_file(url)
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


def async_engine(
    config: Config, backend: Backend | None = None, *, reader: bool = False
) -> tuple[AsyncEngine, Backend]:
    """A new asyncio engine for ``config`` (not for SQLite, which runs on threads;
    ``backend`` as for :func:`sync_engine`)."""
    backend = backend_for(config.url) if backend is None else backend
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
