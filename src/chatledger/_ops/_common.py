"""Helpers shared by the operations: row mapping, keyset pagination, the UNSET marker."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

from sqlalchemy import Column, ColumnElement, Connection, Row, Select, Table, and_, or_

from .. import _cursors
from ..records import Order, Page

__all__ = [
    "UNSET",
    "Unset",
    "from_row",
    "given",
    "keyset_query",
    "page_of",
    "paginate",
    "record_columns",
    "record_values",
    "utcnow",
]

T = TypeVar("T")


class Unset(enum.Enum):
    """Marks an update argument that was not given (as opposed to ``None``, which clears)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


def given(**fields: object) -> dict[str, Any]:
    """The keyword arguments whose value is not :data:`UNSET`."""
    return {name: value for name, value in fields.items() if value is not UNSET}


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def record_columns(table: Table, record: type[Any]) -> list[Column[Any]]:
    """The columns of ``table`` in the order of ``record``'s fields, so that ``record(*row)``
    builds it. A field ``metadata`` reads the column named ``metadata``."""
    by_name = {column.name: column for column in table.columns}
    return [by_name[field.name] for field in dataclasses.fields(record)]


def from_row(record: Callable[..., T], row: Row[Any]) -> T:
    """A record from a row selected with :func:`record_columns`."""
    return record(*row)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def record_values(record: Any) -> dict[str, Any]:
    """Insert parameters for a record: its fields are named like its table's columns."""
    kind = type(record)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(field.name for field in dataclasses.fields(record))
    return {name: getattr(record, name) for name in names}


def _beyond(
    sort: Sequence[ColumnElement[Any]], key: Sequence[Any], *, descending: bool
) -> ColumnElement[bool]:
    """Rows strictly after ``key`` in the order ``sort`` (descending or ascending). The
    leading ``>=``/``<=`` lets every backend use the index range."""
    first, value = sort[0], key[0]
    if len(sort) == 1:
        return cast("ColumnElement[bool]", first < value if descending else first > value)
    rest = _beyond(sort[1:], key[1:], descending=descending)
    if descending:
        return and_(first <= value, or_(first < value, and_(first == value, rest)))
    return and_(first >= value, or_(first > value, and_(first == value, rest)))


def paginate(
    conn: Connection,
    query: Select[Any],
    sort: Sequence[ColumnElement[Any]],
    *,
    kind: str,
    order: Order,
    after: Sequence[Any] | None,
    before: Sequence[Any] | None,
    limit: int,
    convert: Callable[[Row[Any]], T],
    cursor_key: Callable[[T], Sequence[Any]],
) -> Page[T]:
    """One page of ``query`` by keyset on ``sort``, reading ``after`` or ``before`` a key."""
    forward = before is None
    descending = (order == "desc") == forward
    key = after if forward else before
    query = keyset_query(query, sort, key, descending=descending, limit=limit + 1)
    rows = conn.execute(query).all()
    return page_of(rows, limit, forward=forward, kind=kind, convert=convert, cursor_key=cursor_key)


def keyset_query(
    query: Select[Any],
    sort: Sequence[ColumnElement[Any]],
    key: Sequence[Any] | None,
    *,
    descending: bool,
    limit: int | ColumnElement[Any],
) -> Select[Any]:
    """``query`` ordered by ``sort`` (descending or ascending), after ``key`` when given
    (values, or bind parameters for statements built once), limited to ``limit`` rows."""
    if key is not None:
        query = query.where(_beyond(sort, key, descending=descending))
    query = query.order_by(*(c.desc() if descending else c.asc() for c in sort))
    return query.limit(limit)


def page_of(
    rows: Sequence[Any],
    limit: int,
    *,
    forward: bool,
    kind: str,
    convert: Callable[[Any], T],
    cursor_key: Callable[[T], Sequence[Any]],
) -> Page[T]:
    """The page from up to ``limit + 1`` rows read in keyset order (the extra one says there
    is more); read backwards (``forward=False``), the page is put back in order."""
    has_more = len(rows) > limit
    items = [convert(row) for row in rows[:limit]]
    if not forward:
        items.reverse()
    if not items:
        return Page(items=items, has_more=False, first_cursor=None, last_cursor=None)
    return Page(
        items=items,
        has_more=has_more,
        first_cursor=_cursors.encode(kind, *cursor_key(items[0])),
        last_cursor=_cursors.encode(kind, *cursor_key(items[-1])),
    )
