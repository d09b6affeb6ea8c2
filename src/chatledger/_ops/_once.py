"""How a retried write learns whether an earlier attempt committed.

A write operation draws its identities through ``_ids`` (they are the same on every attempt of
one call). When an attempt fails with its outcome unknown (the connection was lost after the
COMMIT, or the autocommit statement, may have reached the server), the retry loop first runs the
write's :class:`Settle`: a read that looks for what the earlier attempt would have written and
returns that attempt's result, or :data:`NOT_WRITTEN`. Only then is the write run again; it
writes the same ids, so a commit that lands late still cannot make a second row (the insert of
the same primary key fails, and the loop settles again).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import Connection, Table, select

from ..errors import NotFoundError
from ._common import from_row, record_columns

__all__ = [
    "NOT_WRITTEN",
    "NotWritten",
    "Returned",
    "Settle",
    "first_id",
    "found",
    "gone",
    "inserted",
    "inserted_many",
]

T = TypeVar("T")


class NotWritten(enum.Enum):
    """What a settle answers when no earlier attempt committed."""

    NOT_WRITTEN = "not written"


NOT_WRITTEN: Final = NotWritten.NOT_WRITTEN


@dataclass(frozen=True, slots=True)
class Settle(Generic[T]):
    """``find(conn, drawn, *args)``: the result of the earlier attempt that committed the
    values ``drawn`` (what its operation drew through ``_ids``), or :data:`NOT_WRITTEN`.
    ``kind`` names what the write stores, for :class:`~chatledger.OutcomeUnknownError`."""

    kind: str
    find: Callable[..., T | NotWritten]
    args: tuple[Any, ...] = ()
    #: The id the error reports when the caller chose it before the first attempt (a
    #: streamed reply's message id); ``None``: the first id drawn.
    subject: object = None

    def key(self, drawn: Sequence[Any]) -> object:
        """The id to look for, as the error reports it: ``subject``, else the first id drawn."""
        return first_id(drawn) if self.subject is None else self.subject


class Returned(Generic[T]):
    """What the latest attempt of one call returned, for a write whose result cannot be read
    back afterwards (how many rows a delete removed, what a bulk upsert changed): the
    operation stores it here before its COMMIT, and the call's settle answers it once it has
    seen that the attempt committed. A fresh holder per call."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: T | NotWritten = NOT_WRITTEN

    def keep(self, value: T) -> T:
        """Remember ``value`` as the latest attempt's result, and return it."""
        self.value = value
        return value


def first_id(drawn: Sequence[Any]) -> uuid.UUID | None:
    """The first id among the values an attempt drew."""
    return next((value for value in drawn if isinstance(value, uuid.UUID)), None)


def _by_id(conn: Connection, table: Table, record: type[T], key: uuid.UUID) -> T | NotWritten:
    row = conn.execute(select(*record_columns(table, record)).where(table.c.id == key)).first()
    return NOT_WRITTEN if row is None else from_row(record, row)


def _inserted(
    conn: Connection, drawn: Sequence[Any], table: Table, record: type[T]
) -> T | NotWritten:
    key = first_id(drawn)
    return NOT_WRITTEN if key is None else _by_id(conn, table, record, key)


def inserted(kind: str, table: Table, record: type[T]) -> Settle[T]:
    """For a write whose result is the ``record`` of the row of ``table`` it inserted with the
    first id it drew."""
    return Settle(kind, _inserted, (table, record))


def _inserted_many(
    conn: Connection, drawn: Sequence[Any], table: Table, record: type[T]
) -> list[T] | NotWritten:
    keys = [value for value in drawn if isinstance(value, uuid.UUID)]
    if not keys:
        return NOT_WRITTEN
    rows = conn.execute(select(*record_columns(table, record)).where(table.c.id.in_(keys))).all()
    if not rows:
        return NOT_WRITTEN
    found = {row.id: from_row(record, row) for row in rows}
    return [found[key] for key in keys if key in found]


def inserted_many(kind: str, table: Table, record: type[T]) -> Settle[list[T]]:
    """For a write whose result is the ``record`` of every row of ``table`` it inserted, in
    the order of the ids it drew (all in one transaction: all or none are there)."""
    return Settle(kind, _inserted_many, (table, record))


def _found(
    conn: Connection, drawn: Sequence[Any], get: Callable[[Connection, uuid.UUID], T]
) -> T | NotWritten:
    key = first_id(drawn)
    if key is None:
        return NOT_WRITTEN
    try:
        return get(conn, key)
    except NotFoundError:
        return NOT_WRITTEN


def found(kind: str, get: Callable[[Connection, uuid.UUID], T]) -> Settle[T]:
    """For a write whose result is what ``get(conn, id)`` reads for the first id it drew
    (``get`` raises :class:`~chatledger.NotFoundError` when there is none)."""
    return Settle(kind, _found, (get,))


def _gone(
    conn: Connection, drawn: Sequence[Any], table: Table, key: uuid.UUID
) -> NotWritten | None:
    found = conn.execute(select(table.c.id).where(table.c.id == key)).first()
    return None if found is None else NOT_WRITTEN


def gone(kind: str, table: Table, key: uuid.UUID) -> Settle[None]:
    """For a delete of the row ``key`` of ``table`` that returns nothing: done once the row is
    gone (whoever deleted it; a retry would answer "not found" for a delete that landed)."""
    return Settle(kind, _gone, (table, key))
