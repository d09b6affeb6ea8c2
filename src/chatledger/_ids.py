"""Identifiers: UUIDv7 (RFC 9562), which sort by creation time, millisecond first.

A write that the retry loop may run more than once draws its identities once: the values an
operation draws through :func:`drawn` (every :func:`new_id`, an API key's secret) on its first
attempt are handed out again, in the same order, on every later attempt of the same call
(:class:`Replaying`). So a retry writes the same ids, and can first look whether an earlier
attempt committed them (see ``_ops/_once.py``).
"""

from __future__ import annotations

import contextvars
import functools
import uuid
from collections.abc import Callable
from typing import Any, Final, TypeVar

from uuid_utils import uuid7

from ._types import uuid_from_int

__all__ = ["Draws", "Replaying", "drawn", "new_id"]

T = TypeVar("T")


class Draws:
    """The values one call drew, in order, kept across its attempts; and how far the current
    attempt's operation got (``started``, ``returned``: its COMMIT follows)."""

    __slots__ = ("position", "returned", "started", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.position = 0
        self.started = False
        self.returned = False

    def attempt(self) -> None:
        """A new attempt begins: nothing of it has run yet."""
        self.started = self.returned = False

    def draw(self, make: Callable[[], T]) -> T:
        """The value at the current position: drawn by an earlier attempt, else made now."""
        position = self.position
        self.position = position + 1
        if position < len(self.values):
            value: T = self.values[position]
            return value
        value = make()
        self.values.append(value)
        return value


#: The draws of the write operation running in this thread, greenlet or task.
_CURRENT: Final[contextvars.ContextVar[Draws | None]] = contextvars.ContextVar(
    "chatledger_draws", default=None
)


class Replaying(functools.partial[T]):
    """An operation ``op(conn, ...)`` whose every run (attempt) replays the draws of ``draws``
    from the start. A ``functools.partial`` of the operation, so that whoever keys state by
    operation (the inline SQLite runner) still sees the operation itself."""

    draws: Draws

    def __new__(cls, op: Callable[..., T], draws: Draws) -> Replaying[T]:
        self = super().__new__(cls, op)
        self.draws = draws
        return self

    def __call__(self, /, *args: Any, **kwargs: Any) -> T:
        draws = self.draws
        draws.position = 0
        draws.started = True
        draws.returned = False
        token = _CURRENT.set(draws)
        try:
            result = super().__call__(*args, **kwargs)
        finally:
            _CURRENT.reset(token)
        draws.returned = True
        return result


def drawn(make: Callable[[], T]) -> T:
    """``make()``, or inside a retried write the value its first attempt drew here."""
    draws = _CURRENT.get()
    return make() if draws is None else draws.draw(make)


def _fresh_id() -> uuid.UUID:
    return uuid_from_int(uuid7().int)


def new_id() -> uuid.UUID:
    """A new time-ordered UUID (version 7), as the standard library's ``uuid.UUID``; inside a
    retried write, the one its first attempt drew at this point.

    uuid_utils makes it (monotonic within a millisecond, RFC 9562); its ``compat.uuid7``
    converts with ``uuid.UUID(int=...)``, which checks what cannot be wrong and costs 1.4 µs
    against 0.5 µs here (a share of every append and of bulk imports)."""
    draws = _CURRENT.get()
    if draws is None:
        return uuid_from_int(uuid7().int)
    return draws.draw(_fresh_id)
