"""The SQL of moving data: reading tables in key order by scope, inserting what is missing,
comparing tables, and the value codecs of chatledger's own export format.

Rows are read and written as dicts keyed by column name, with Python values of the columns'
types. In the export document a value is encoded by :func:`encode` (ids, times and decimals as
strings, as :func:`chatledger._ops.privacy.export` does) and decoded by :func:`decode` from the
column's type, so that export -> import -> export gives the same document.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Connection,
    Double,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    and_,
    false,
    func,
    select,
    tuple_,
    update,
)

from .. import _bulk
from .._schema import (
    Base,
    audit_chain,
    audit_events,
    citations,
    conversations,
    knowledge_chunks,
    message_feedback,
    users,
)
from .._types import JSONDocument, Money, UTCDateTime, canonical_decimal
from ..errors import ConflictError, ValidationError
from . import privacy

__all__ = [
    "KIND",
    "Digest",
    "Scope",
    "advance_audit_chain",
    "canonical",
    "count_rows",
    "decode",
    "encode",
    "has_key",
    "insert_missing",
    "key_at",
    "key_of",
    "read_batch",
    "row_digest",
    "scope_condition",
    "scope_tables",
    "table_digest",
]

#: The ``kind`` member that marks chatledger's own export documents.
KIND: Final = "chatledger-export"

ScopeKind = Literal["all", "user", "conversation"]
#: What an export covers: everything, one user (by id) or one conversation (by id).
Scope = tuple[ScopeKind, uuid.UUID | None]

#: Tables left out of a user's or a conversation's export: the audit chain belongs to the whole
#: database (events of one user cannot be moved into another chain without breaking it).
_WHOLE_DATABASE_ONLY: Final = frozenset({"audit_events", "audit_chain"})


def encode(value: Any) -> Any:
    """A column value as JSON: UUIDs, datetimes and decimals as strings."""
    return privacy._json(value)


def _kind(column: Any) -> str:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "datetime"
    if isinstance(kind, Money):
        return "money"
    if isinstance(kind, Uuid):
        return "uuid"
    if kind is JSONDocument or isinstance(kind, JSON):
        return "json"
    if isinstance(kind, Integer | BigInteger):
        return "int"
    if isinstance(kind, Double):
        return "float"
    if isinstance(kind, String | Text):
        return "text"
    return "other"  # pragma: no cover - every column of the schema is one of the above


def decode(table: Table, name: str, value: Any) -> Any:
    """A column value of ``table`` from its JSON form; raises :class:`ValueError` with the
    problem when it does not fit the column."""
    column = table.c.get(name)
    if column is None:
        raise ValueError(f"{table.name} has no column {name!r}")
    if value is None:
        if not column.nullable:
            raise ValueError("must not be null")
        return None
    kind = _kind(column)
    if kind == "uuid":
        if isinstance(value, str):
            return uuid.UUID(value)
        raise ValueError(f"must be a UUID string, not {type(value).__name__}")
    if kind == "datetime":
        if not isinstance(value, str):
            raise ValueError(f"must be an ISO 8601 string, not {type(value).__name__}")
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("must carry a UTC offset")
        return moment.astimezone(UTC)
    if kind == "money":
        if not isinstance(value, str | int):
            raise ValueError(f"must be a decimal string, not {type(value).__name__}")
        try:
            return canonical_decimal(Decimal(value))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {type(value).__name__}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {type(value).__name__}")
        return float(value)
    if kind == "text":
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {type(value).__name__}")
        if "\x00" in value:
            raise ValueError("contains a NUL character, which no backend stores")
        length = getattr(column.type, "length", None)
        if length is not None and len(value) > length:
            raise ValueError(f"{len(value)} characters exceeds the limit of {length}")
        return value
    return value


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


#: Exact type -> its canonical form (a dict lookup: this runs for every value of a copy).
_CANONICAL: Final[dict[type, Callable[[Any], Any]]] = {
    str: lambda v: v,
    int: lambda v: v,
    bool: lambda v: v,
    type(None): lambda v: v,
    uuid.UUID: str,
    datetime: lambda v: v.astimezone(UTC).isoformat(timespec="microseconds"),
    Decimal: lambda v: str(canonical_decimal(v)),
    float: repr,
    dict: _json_text,
    list: _json_text,
}


def canonical(value: Any) -> Any:
    """A value in the one form every backend's copy of it compares equal in: UUIDs as
    strings, datetimes as UTC ISO with microseconds, decimals as exact strings without trailing
    zeros, JSON as compact sorted dumps, floats by ``repr``."""
    convert = _CANONICAL.get(type(value))
    if convert is not None:
        return convert(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return _CANONICAL[datetime](value)
    if isinstance(value, Decimal):
        return _CANONICAL[Decimal](value)
    return _json_text(value)


def _conversations_of(owner: uuid.UUID) -> Any:
    return select(conversations.c.id).where(conversations.c.owner_id == owner)


def _cited_chunks(conversation_ids: Any) -> Any:
    return select(citations.c.chunk_id).where(citations.c.conversation_id.in_(conversation_ids))


def scope_tables(scope: Scope) -> list[Table]:
    """The tables an export of ``scope`` holds, parents first."""
    kind, _ = scope
    tables = list(Base.metadata.sorted_tables)
    if kind == "all":
        return tables
    return [
        t for t in tables if t.name not in _WHOLE_DATABASE_ONLY and _condition(t, scope) is not None
    ]


def _condition(table: Table, scope: Scope) -> ColumnElement[bool] | None:
    kind, ident = scope
    assert ident is not None
    name = table.name
    if name == "knowledge_chunks":
        chosen = (
            _conversations_of(ident)
            if kind == "user"
            else select(conversations.c.id).where(conversations.c.id == ident)
        )
        return knowledge_chunks.c.id.in_(_cited_chunks(chosen))
    if kind == "user":
        if name == "message_feedback":
            # Only their own ratings of their own messages: others' ratings need other users.
            return (message_feedback.c.rater_id == ident) & message_feedback.c.conversation_id.in_(
                _conversations_of(ident)
            )
        rows = privacy.USER_ROWS.get(name)
        return None if rows is None else rows(ident)
    conversation = ident
    owner = select(conversations.c.owner_id).where(conversations.c.id == conversation)
    if name == "users":
        return users.c.id.in_(owner)
    if name == "conversations":
        return conversations.c.id == conversation
    if name in ("messages", "citations", "tool_calls"):
        return table.c.conversation_id == conversation
    if name == "message_feedback":
        return (message_feedback.c.conversation_id == conversation) & (
            message_feedback.c.rater_id.in_(owner)
        )
    return None


def scope_condition(table: Table, scope: Scope) -> ColumnElement[bool] | None:
    """The condition selecting ``table``'s rows of ``scope`` (``None``: every row)."""
    if scope[0] == "all":
        return None
    condition = _condition(table, scope)
    return false() if condition is None else condition


def key_of(table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The primary key of a row, as a tuple."""
    return tuple(row[column.name] for column in table.primary_key.columns)


def read_batch(
    conn: Connection,
    table: Table,
    scope: Scope,
    after: Sequence[Any] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``table`` in ``scope`` after primary key ``after``, in key order."""
    query = select(*table.columns).order_by(*_bulk.key_columns(conn, table)).limit(limit)
    condition = scope_condition(table, scope)
    if condition is not None:
        query = query.where(condition)
    if after is not None:
        query = query.where(_bulk.after_key(conn, table, after))
    return [
        {c.name: v for c, v in zip(table.columns, row, strict=True)} for row in conn.execute(query)
    ]


def count_rows(conn: Connection, table: Table, scope: Scope = ("all", None)) -> int:
    """How many rows ``table`` holds in ``scope``."""
    query = select(func.count()).select_from(table)
    condition = scope_condition(table, scope)
    if condition is not None:
        query = query.where(condition)
    return int(conn.execute(query).scalar_one())


def key_at(conn: Connection, table: Table, position: int) -> tuple[Any, ...] | None:
    """The primary key of the row at ``position`` (from 0) in primary-key order, or ``None``
    when the table has fewer rows."""
    query = (
        select(*table.primary_key.columns)
        .order_by(*_bulk.key_columns(conn, table))
        .offset(position)
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else tuple(row)


def has_key(conn: Connection, table: Table, key: Sequence[Any]) -> bool:
    """Whether ``table`` holds a row with this primary key."""
    columns = list(table.primary_key.columns)
    condition = and_(*(column == value for column, value in zip(columns, key, strict=True)))
    return conn.execute(select(columns[0]).where(condition)).first() is not None


def row_digest(row: Mapping[str, Any]) -> int:
    """The SHA-256 of one row's canonical values (in column order), as an integer."""
    line = repr([canonical(v) for v in row.values()])
    return int.from_bytes(hashlib.sha256(line.encode("utf-8", "surrogatepass")).digest(), "big")


#: Checksums are sums of SHA-256 digests modulo this.
_DIGEST_MODULUS: Final = 2**256


class Digest:
    """A table's row count and checksum: the sum, modulo 2**256, of every row's
    :func:`row_digest`. It does not depend on the order rows come in (which differs between
    backends), and any changed, missing or extra row changes it."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Count rows in."""
        total = self.total
        for row in rows:
            total += row_digest(row)
            self.count += 1
        self.total = total % _DIGEST_MODULUS

    @property
    def hexdigest(self) -> str:
        """The checksum as 64 hex digits."""
        return f"{self.total:064x}"


def table_digest(conn: Connection, table: Table, batch: int) -> Digest:
    """The :class:`Digest` of the whole table, read ``batch`` rows at a time in key order."""
    digest = Digest()
    after: tuple[Any, ...] | None = None
    while True:
        rows = read_batch(conn, table, ("all", None), after, batch)
        digest.add(rows)
        if len(rows) < batch:
            return digest
        after = key_of(table, rows[-1])


def _existing(
    conn: Connection, table: Table, keys: Sequence[tuple[Any, ...]]
) -> set[tuple[Any, ...]]:
    columns = list(table.primary_key.columns)
    found: set[tuple[Any, ...]] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        if len(columns) == 1:
            condition = columns[0].in_([key[0] for key in chunk])
        else:
            condition = tuple_(*columns).in_(chunk)
        found.update(tuple(row) for row in conn.execute(select(*columns).where(condition)))
    return found


def insert_missing(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> tuple[int, int]:
    """Insert the rows whose primary key ``table`` does not hold yet; (inserted, skipped).

    ``audit_chain`` is never inserted into (migrations seed its one row): it is moved forward
    by :func:`advance_audit_chain` (counted as inserted when it moved). An audit event whose
    sequence number is taken by another event is a :class:`ConflictError` (the chains differ)."""
    if table is audit_chain:
        moved = sum(advance_audit_chain(conn, row) for row in rows)
        return moved, len(rows) - moved
    keys = [key_of(table, row) for row in rows]
    existing = _existing(conn, table, keys)
    if table is audit_events and existing:
        query = select(audit_events.c.seq, audit_events.c.hash).where(
            audit_events.c.seq.in_([key[0] for key in existing])
        )
        stored = {row.seq: row.hash for row in conn.execute(query)}
        for row in rows:
            if row["seq"] in stored and stored[row["seq"]] != row["hash"]:
                raise ConflictError(
                    f"audit event {row['seq']} differs from the one stored: the audit chains "
                    "of the two databases diverge",
                    field="seq",
                )
    fresh = [row for row, key in zip(rows, keys, strict=True) if key not in existing]
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for row in fresh:
        key = key_of(table, row)
        if key not in seen:
            seen.add(key)
            unique.append(row)
    _bulk.bulk_insert(conn, table, unique)
    return len(unique), len(rows) - len(unique)


def advance_audit_chain(conn: Connection, head: Mapping[str, Any]) -> bool:
    """Move the audit chain's head to ``head`` if it is further along; whether it moved."""
    if "id" in head and head["id"] is not None and head["id"] != 1:
        raise ValidationError("audit_chain.id", f"must be 1, not {head['id']!r}")
    moved = conn.execute(
        update(audit_chain)
        .where(audit_chain.c.id == 1, audit_chain.c.last_seq < head["last_seq"])
        .values(last_seq=head["last_seq"], last_hash=head["last_hash"])
    )
    return bool(moved.rowcount)
