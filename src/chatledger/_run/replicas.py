"""The state behind replica routing, shared by both surfaces (no I/O on databases here):

- :class:`Health`: what the router last learned of one replica (down until when, its lag);
- :class:`Remembered`: the last position each writer (the ledger, each user scope) committed,
  so its later reads wait for a replica that has it (read-your-writes);
- :class:`LiteFS`: an SQLite database on a LiteFS mount, read the way LiteFS documents it
  (the ``.primary`` file names the primary on replicas and is absent on the primary; the
  ``<database>-pos`` file holds ``TXID/checksum`` in hex); the seed's ``LITEFS_*`` variables
  are honoured too.
"""

from __future__ import annotations

import collections
import contextvars
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._replication import later, parse_token

__all__ = [
    "ASKED",
    "Health",
    "LiteFS",
    "Remembered",
    "RequestTokens",
    "litefs_for",
    "request_tokens",
]

#: Seconds a replica that failed a read is skipped before it is tried again.
RETRY_DOWN_AFTER = 2.0
#: Seconds between two looks at a replica's lag.
LAG_CHECK_INTERVAL = 1.0


@dataclass(slots=True)
class Health:
    """One replica as the router last saw it."""

    name: str
    down_until: float = 0.0
    lag: float = 0.0
    checked_at: float = -1e9
    last_error: str | None = None

    def usable(self, max_lag: float, now: float) -> bool:
        """Not down, and within the lag bound (as of the last look)."""
        return now >= self.down_until and self.lag <= max_lag

    def lag_due(self, now: float) -> bool:
        """Whether the lag should be looked at again before the next read."""
        return now - self.checked_at >= LAG_CHECK_INTERVAL

    def failed(self, error: str, now: float) -> None:
        """A read on it failed: skip it for a while."""
        self.down_until = now + RETRY_DOWN_AFTER
        self.last_error = error

    def looked(self, lag: float, now: float) -> None:
        """Its lag was measured."""
        self.lag, self.checked_at, self.last_error = lag, now, None


class Remembered:
    """The last positions a ledger's writers committed: everything (what a read by the
    ledger itself must see), the ledger's own unscoped writes, and each user scope's, for a
    bounded number of users. A user scope's read must see its user's writes and the ledger's
    unscoped ones (a conversation the ledger created for the user, say), not other users'.
    A user forgotten to make room is covered by ``floor``, the latest position of everyone
    forgotten (waiting for a later position is never wrong)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._by_user: collections.OrderedDict[uuid.UUID, str] = collections.OrderedDict()
        self._all: str | None = None
        self._direct: str | None = None
        self._floor: str | None = None
        self._capacity = capacity
        self._lock = threading.Lock()

    def wrote(self, owner: uuid.UUID | None, position: str) -> None:
        """``owner`` (``None``: the ledger itself) committed a write at ``position``."""
        with self._lock:
            self._all = later(self._all, position)
            if owner is None:
                self._direct = later(self._direct, position)
                return
            self._by_user[owner] = later(self._by_user.get(owner), position) or position
            self._by_user.move_to_end(owner)
            while len(self._by_user) > self._capacity:
                _, dropped = self._by_user.popitem(last=False)
                self._floor = later(self._floor, dropped)

    def needed(self, owner: uuid.UUID | None) -> str | None:
        """The position a read by ``owner`` (``None``: the ledger) must see."""
        if owner is None:
            return self._all
        return later(self._by_user.get(owner, self._floor), self._direct)


@dataclass(slots=True)
class RequestTokens:
    """One HTTP request's tokens: the one its client sent back (reads wait for it), and the
    position of the writes it made (answered in the response header)."""

    asked: str | None = None
    wrote: str | None = None
    extra: list[str] = field(default_factory=list)


def request_tokens(asked: str | None) -> RequestTokens:
    """A fresh holder for one request's (or block's) tokens; ``asked`` is checked."""
    if asked is not None:
        parse_token(asked)
    return RequestTokens(asked=asked)


#: The tokens of the current request or ``consistent_with`` block, if any.
ASKED: contextvars.ContextVar[RequestTokens | None] = contextvars.ContextVar(
    "chatledger_consistency", default=None
)


_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class LiteFS:
    """An SQLite database on a LiteFS mount (``mount`` is its directory)."""

    database: Path
    #: ``LITEFS_PRIMARY`` when set (True/False), else None: the ``.primary`` file decides.
    declared_primary: bool | None = None

    @property
    def mount(self) -> Path:
        """The mount directory (where LiteFS keeps ``.primary``)."""
        return self.database.parent

    def primary(self) -> tuple[bool, str | None]:
        """``(is_primary, primary_host)``: on a replica LiteFS writes the primary's host name
        into ``.primary``; on the primary the file is absent. Without the file, a declared
        ``LITEFS_PRIMARY=false`` still makes this node a replica (primary unknown)."""
        try:
            host = (self.mount / ".primary").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return self.declared_primary is not False, None
        except OSError:
            return False, None
        return False, host or None

    def position(self) -> str | None:
        """The replication position LiteFS exposes beside the database (``<db>-pos``:
        ``TXID/checksum``, 16 hex digits each), as a token; None before the first commit."""
        try:
            raw = Path(f"{self.database}-pos").read_text(encoding="ascii").strip()
        except OSError:
            return None
        txid = raw.split("/")[0]
        try:
            int(txid, 16)
        except ValueError:
            return None
        return f"litefs:{txid}"


def litefs_for(database: str | None, environ: Mapping[str, str] | None = None) -> LiteFS | None:
    """The LiteFS mount an SQLite database file is on, or None. A database is on LiteFS when
    its directory holds LiteFS's ``.primary`` file or its ``-pos`` file exists, or when
    ``LITEFS_MOUNTED`` is true or ``LITEFS_DB_PATH`` names this file (seed 000's
    variables)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    env = os.environ if environ is None else environ
    path = Path(os.path.abspath(database))
    declared = env.get("LITEFS_PRIMARY", "").strip().lower()
    primary = None if not declared else declared in _TRUE
    named = env.get("LITEFS_DB_PATH", "").strip()
    mounted = env.get("LITEFS_MOUNTED", "").strip().lower() in _TRUE
    on_mount = (
        (path.parent / ".primary").exists()
        or Path(f"{path}-pos").exists()
        or (named and Path(os.path.abspath(named)) == path)
        or (mounted and not named)
    )
    return LiteFS(path, primary) if on_mount else None


def now() -> float:
    """The monotonic clock the router uses."""
    return time.monotonic()
