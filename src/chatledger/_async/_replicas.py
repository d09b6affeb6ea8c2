"""Read replicas and read-your-writes: where a store's reads run, and what its writes remember.

- With replica URLs (PostgreSQL, MariaDB), a read outside a transaction runs on a healthy
  replica (round robin); a replica that fails a read, or lags more than ``replica_max_lag``,
  is skipped and the read runs on the next one or on the primary: no error reaches the
  caller for it. Writes and transactions always run on the primary.
- Every committed write's position is remembered for the ledger and the user scope that made
  it (and for the HTTP request); a later read by them is served by a replica only once it has
  replayed that position, waiting up to ``replica_wait`` seconds, else by the primary.
- On a LiteFS mount (SQLite), reads run on the local copy; a write on a replica node raises
  :class:`NotPrimaryError` before touching the file, and a read that must see a position the
  node has not replayed within ``replica_wait`` raises it too (the primary can serve it).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .._backends import Backend
from .._replication import ReplicaStatus, covers, later, parse_token
from .._run.compat_async import Awaitable, sleep
from .._run.database_async import AsyncDatabase
from .._run.open_async import open_database
from .._run.replicas import ASKED, Health, LiteFS, Remembered, now
from ..config import Config
from ..errors import ChatledgerError, NotPrimaryError, TransientError, ValidationError

__all__ = ["_AsyncReplicas"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_BEHIND = object()
#: Seconds between two looks at a replica that has not replayed a position yet.
_POLL_FIRST, _POLL_MAX = 0.002, 0.05
#: After a write whose position could not be read, seconds its writer reads on the primary.
_PRIMARY_AFTER_UNKNOWN = 5.0


def _replica_config(config: Config, index: int) -> Config:
    url = config.replicas[index]
    primary = config.url
    if url.password is None and primary.password is not None and url.username == primary.username:
        url = url.set(password=primary.password)  # the primary's password, for the same user
    return dataclasses.replace(config, url=url, replicas=())


def _read_at(
    conn: Any, backend: Backend, need: str, op: Callable[..., T], args: Any, kwargs: Any
) -> Any:
    """On a replica: ``op``'s result if the replica has ``need``, else ``_BEHIND``."""
    if not covers(backend.replication.replica_position(conn), need):
        return _BEHIND
    return op(conn, *args, **kwargs)


def _status(conn: Any, backend: Backend) -> ReplicaStatus:
    return backend.replication.replica_status(conn)


def _position(conn: Any, backend: Backend) -> str | None:
    return backend.replication.primary_position(conn)


def _replayed(conn: Any, backend: Backend, need: str) -> bool:
    return covers(backend.replication.replica_position(conn), need)


def _wait_on_server(conn: Any, backend: Backend, need: str, timeout: float) -> bool:
    return backend.replication.wait(conn, need, timeout)


class _AsyncReplicas:
    """A store's replicas (or LiteFS node) and what its writers last committed."""

    def __init__(self, config: Config, backend: Backend, litefs: LiteFS | None = None) -> None:
        self.config = config
        self.backend = backend
        self.litefs = litefs
        self.remembered = Remembered()
        self.replicas: list[tuple[Health, AsyncDatabase]] = [
            (
                Health(config.redacted_replicas()[index]),
                open_database(_replica_config(config, index), None),
            )
            for index in range(len(config.replicas))
        ]
        self._next = 0
        self._primary_until: dict[uuid.UUID | None, float] = {}

    @property
    def routes(self) -> bool:
        """Whether reads can run anywhere but the primary."""
        return bool(self.replicas)

    # ---------------------------------------------------------------- writes

    def check_writable(self) -> None:
        """Raise :class:`NotPrimaryError` on a LiteFS replica node (before any I/O on the
        database file)."""
        if self.litefs is None:
            return
        primary, host = self.litefs.primary()
        if not primary:
            where = f"the primary is {host}" if host else "no primary is known right now"
            raise NotPrimaryError(
                f"this node is a LiteFS replica: writes must run on the primary ({where})",
                primary=host,
            )

    async def wrote(self, primary: AsyncDatabase, owner: uuid.UUID | None) -> str | None:
        """A write by ``owner`` committed: remember its position (and hand it to the current
        HTTP request). A position that cannot be read sends ``owner``'s reads to the primary
        for a while instead of failing the committed write."""
        try:
            position = await self.position(primary)
        except ChatledgerError as exc:
            logger.warning("could not read the position of a committed write: %s", exc)
            self._primary_until[owner] = now() + _PRIMARY_AFTER_UNKNOWN
            return None
        if position is not None:
            self.remembered.wrote(owner, position)
            tokens = ASKED.get()
            if tokens is not None:
                tokens.wrote = later(tokens.wrote, position)
        return position

    async def position(self, primary: AsyncDatabase) -> str | None:
        """Everything committed so far on the primary (the LiteFS ``-pos`` file on LiteFS)."""
        if self.litefs is not None:
            return self.litefs.position()
        result: str | None = await primary.read(_position, self.backend)
        return result

    # ---------------------------------------------------------------- reads

    def needed(self, owner: uuid.UUID | None) -> str | None:
        """The position a read by ``owner`` must see: what it wrote, and the token of the
        current request or ``consistent_with`` block."""
        tokens = ASKED.get()
        asked = tokens.asked if tokens is not None else None
        mine = self.remembered.needed(owner)
        if asked is None:
            return mine
        kind = "litefs" if self.litefs is not None else self.backend.replication.kind
        if parse_token(asked)[0] != kind:
            raise ValidationError(
                "consistency_token", f"is not a position of this database (a {kind} token)"
            )
        return later(mine, asked)

    def _candidates(self) -> Iterator[tuple[Health, AsyncDatabase]]:
        count = len(self.replicas)
        start = self._next
        self._next = (start + 1) % count
        moment = now()
        for step in range(count):
            health, db = self.replicas[(start + step) % count]
            if moment >= health.down_until:
                yield health, db

    async def read(
        self,
        primary: Callable[[], Awaitable[T]],
        owner: uuid.UUID | None,
        op: Callable[..., T],
        args: Any,
        kwargs: Any,
    ) -> T:
        """Run the read ``op`` where it may run: on a replica that is up, within the lag
        bound and (read-your-writes) has replayed what this reader must see; else
        ``primary()``."""
        if self.litefs is not None:
            return await self._read_local(primary, owner)
        need = self.needed(owner)
        if owner in self._primary_until:
            if now() < self._primary_until[owner]:
                return await primary()
            self._primary_until.pop(owner, None)
        for health, db in self._candidates():
            try:
                if health.lag_due(now()):
                    status: ReplicaStatus = await db.read(_status, self.backend)
                    health.looked(status.lag, now())
                if health.lag > self.config.replica_max_lag:
                    continue
                if need is None:
                    return await db.read(op, *args, **kwargs)
                result = await db.read(_read_at, self.backend, need, op, args, kwargs)
                if result is not _BEHIND:
                    return result  # type: ignore[no-any-return]
                if await self._wait(db, need):
                    return await db.read(op, *args, **kwargs)
                break  # behind after the wait: the primary has it
            except TransientError as exc:
                logger.info("replica %s skipped: %s", health.name, exc)
                health.failed(str(exc), now())
        return await primary()

    async def _wait(self, db: AsyncDatabase, need: str) -> bool:
        """Wait up to ``replica_wait`` for the replica to replay ``need``."""
        bound = self.config.replica_wait
        if bound <= 0:
            return False
        if self.backend.replication.server_wait:
            waited: bool = await db.read(_wait_on_server, self.backend, need, bound)
            return waited
        deadline = now() + bound
        delay = _POLL_FIRST
        while now() < deadline:
            await sleep(min(delay, max(0.0, deadline - now())))
            if await db.read(_replayed, self.backend, need):
                return True
            delay = min(delay * 2, _POLL_MAX)
        return False

    async def _read_local(self, primary: Callable[[], Awaitable[T]], owner: uuid.UUID | None) -> T:
        """LiteFS: every node reads its own copy, once it has what the reader must see."""
        litefs = self.litefs
        assert litefs is not None
        need = self.needed(owner)
        if need is None or litefs.primary()[0] or covers(litefs.position(), need):
            return await primary()
        deadline = now() + self.config.replica_wait
        delay = _POLL_FIRST
        while now() < deadline:
            await sleep(min(delay, max(0.0, deadline - now())))
            if covers(litefs.position(), need):
                return await primary()
            delay = min(delay * 2, _POLL_MAX)
        host = litefs.primary()[1]
        raise NotPrimaryError(
            f"this LiteFS replica has not replayed {need} after {self.config.replica_wait:g}s "
            f"(it is at {litefs.position()}): read on the primary ({host or 'unknown'})",
            primary=host,
        )

    async def lags(self) -> list[tuple[str, float | None, str | None]]:
        """``(replica, lag in seconds or None when unreachable, error)`` for each replica."""
        found: list[tuple[str, float | None, str | None]] = []
        for health, db in self.replicas:
            try:
                status: ReplicaStatus = await db.read(_status, self.backend)
                health.looked(status.lag, now())
                found.append((health.name, status.lag, None))
            except ChatledgerError as exc:
                health.failed(str(exc), now())
                found.append((health.name, None, str(exc)))
        return found

    async def dispose(self) -> None:
        """Close every replica's connections."""
        for _, db in self.replicas:
            await db.dispose()
