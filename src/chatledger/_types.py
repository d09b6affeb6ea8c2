"""Portable column types: one definition per kind of value, correct on every backend.

- :class:`UTCDateTime` stores UTC and rejects naive datetimes. PostgreSQL gets ``timestamptz``;
  MariaDB ``DATETIME(6)`` (microseconds, so ordering by time is exact); SQLite a fixed-width
  ISO string, which sorts correctly.
- :class:`Money` holds exact decimals. PostgreSQL and MariaDB use ``NUMERIC(20, 9)``; SQLite has
  no exact decimal type, so the value is stored as a whole number of billionths (an integer,
  whose ``SUM`` is exact too).
- :data:`LongText` is ``LONGTEXT`` on MariaDB (its ``TEXT`` stops at 64 KB) and ``TEXT`` elsewhere.
- :data:`JSONDocument` is ``JSONB`` on PostgreSQL and ``JSON`` elsewhere.
- :class:`LongBlob` holds bytes of any size (serialised checkpoints): ``LONGBLOB`` on MariaDB.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, LargeBinary, Numeric, String, Text, Uuid
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "MONEY_SCALE",
    "SEARCH_COLLATION",
    "JSONDocument",
    "LongBlob",
    "LongText",
    "Money",
    "SearchableText",
    "UTCDateTime",
    "bind_saver",
    "canonical_decimal",
    "result_loader",
    "searchable_string",
    "uuid_from_int",
]

#: Digits kept after the decimal point in :class:`Money` values.
MONEY_SCALE = 9
_MONEY_FACTOR = Decimal(10) ** MONEY_SCALE
_BILLION = 10**MONEY_SCALE

LongText: TypeEngine[str] = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
#: The collation of MariaDB columns with a full-text index: case-insensitive, accent-sensitive
#: (an index on a binary collation would be case-sensitive). See ``_fulltext``.
SEARCH_COLLATION = "utf8mb4_uca1400_as_ci"
#: :data:`LongText` with a full-text index (message and chunk contents).
SearchableText: TypeEngine[str] = Text().with_variant(
    mysql.LONGTEXT(collation=SEARCH_COLLATION), "mysql", "mariadb"
)


def searchable_string(length: int) -> TypeEngine[str]:
    """A ``VARCHAR(length)`` with a full-text index (titles)."""
    return String(length).with_variant(
        mysql.VARCHAR(length, collation=SEARCH_COLLATION), "mysql", "mariadb"
    )


JSONDocument: TypeEngine[Any] = JSON().with_variant(postgresql.JSONB(), "postgresql")


def _is_mysql(dialect: Dialect) -> bool:
    return dialect.name in ("mysql", "mariadb")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored in UTC. Naive values are rejected."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if _is_mysql(dialect):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "sqlite":
            return dialect.type_descriptor(DateTime())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given: use an aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact, non-float decimal amount with :data:`MONEY_SCALE` digits after the point."""

    impl = Numeric(20, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return int((value * _MONEY_FACTOR).to_integral_exact())
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return canonical_decimal(Decimal(int(value)) / _MONEY_FACTOR)
        return canonical_decimal(Decimal(value))


def canonical_decimal(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and never in exponent form (``100``, not ``1E+2``)."""
    normal = value.normalize()
    # Only a whole number can normalise to a positive exponent (1E+2); cheaper to test than
    # reading the exponent out of as_tuple().
    if normal == normal.to_integral_value():
        return normal.quantize(_ONE)
    return normal


_ONE = Decimal(1)


class _FromBase64(ColumnElement[bytes]):
    """``FROM_BASE64(value)`` on MySQL/MariaDB, the bare value elsewhere (see LongBlob)."""

    inherit_cache = True

    def __init__(self, value: ColumnElement[Any]) -> None:
        self.value = value
        self.type = value.type


@compiles(_FromBase64)
def _from_base64_default(element: _FromBase64, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.value, **kw))


@compiles(_FromBase64, "mysql")
@compiles(_FromBase64, "mariadb")
def _from_base64_mysql(element: _FromBase64, compiler: Any, **kw: Any) -> str:
    return f"FROM_BASE64({compiler.process(element.value, **kw)})"


class LongBlob(TypeDecorator[bytes]):
    """Serialised checkpoint data: ``BYTEA`` on PostgreSQL, ``BLOB`` on SQLite, ``LONGBLOB`` on
    MariaDB (its ``BLOB`` stops at 64 KB).

    On MySQL/MariaDB the value travels as base64 text decoded by the server: aiomysql 0.3 cannot
    escape ``bytes`` parameters with PyMySQL 1.2 (it imports a converter PyMySQL removed), and
    the same statement then serves PyMySQL and aiomysql alike."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.LONGBLOB())
        return dialect.type_descriptor(LargeBinary())

    def bind_expression(self, bindvalue: BindParameter[bytes]) -> ColumnElement[bytes]:
        return _FromBase64(bindvalue)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return _base64
        return super().bind_processor(dialect)


def _base64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


# -- fast result loading ------------------------------------------------------------------------
#
# The hot reads (chatledger._prepared) take rows straight from the driver and convert them with
# these functions instead of SQLAlchemy's per-column result processors. Each gives exactly what
# SQLAlchemy's processing of the same column gives; they are faster because they do one thing:
# a UUID from its text without re-validating it, an SQLite timestamp with one C call.

_new_object = object.__new__
_set_uuid_int = uuid.UUID.__dict__["int"].__set__ if "int" in uuid.UUID.__dict__ else None
_set_uuid_safe = uuid.UUID.__dict__["is_safe"].__set__ if "is_safe" in uuid.UUID.__dict__ else None
_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_UUID = uuid.UUID


def uuid_from_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` without its range check (the database gave 128 bits)."""
    if _set_uuid_int is None or _set_uuid_safe is None:  # pragma: no cover  (other Pythons)
        return uuid.UUID(int=value)
    made: uuid.UUID = _new_object(uuid.UUID)
    _set_uuid_int(made, value)
    _set_uuid_safe(made, _SAFE_UNKNOWN)
    return made


def _uuid_loader(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    set_int, set_safe = _set_uuid_int, _set_uuid_safe
    if set_int is None or set_safe is None:  # pragma: no cover  (other Pythons)
        return fallback

    def load(value: Any) -> Any:
        if value.__class__ is str:
            # 32 hex digits (SQLite, CHAR(32)) or the 36-character form (MariaDB's UUID);
            # uuid_from_int inlined: one call less per id of every row read.
            made = _new_object(_UUID)
            set_int(made, int(value.replace("-", "") if len(value) == 36 else value, 16))
            set_safe(made, _SAFE_UNKNOWN)
            return made
        return None if value is None else fallback(value)

    return load


def _json_loader(fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def load(value: Any) -> Any:
        # A document stored from None is the text 'null' (SQLAlchemy's JSON stores None as
        # JSON null): most messages have no metadata, and json.loads costs ~0.9 µs a row.
        if value is None or value == "null":
            return None
        return fallback(value)

    return load


def _utc(value: datetime) -> datetime:
    """An aware UTC datetime from a naive one holding UTC, or from any aware one."""
    zone = value.tzinfo
    if zone is None:
        # The constructor: datetime.replace(tzinfo=...) costs twice as much.
        return datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            UTC,
        )
    return value if zone is UTC else value.astimezone(UTC)


def _utc_text(value: Any) -> Any:
    """SQLite's ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC) as an aware datetime: one C call."""
    if value.__class__ is not str:
        return None if value is None else _utc(value)
    try:
        return _fromisoformat(value + "+00:00")
    except ValueError:  # written with an offset by another tool
        return _utc(_fromisoformat(value))


def _utc_value(value: Any) -> Any:
    return None if value is None else _utc(value)


_fromisoformat = datetime.fromisoformat


def _money_loader(billionths: bool) -> Callable[[Any], Any]:
    def load(value: Any) -> Any:
        if value is None:
            return None
        if billionths:
            if value.__class__ is not int:
                value = int(value)
            if value % _BILLION:
                # Not whole, so it normalises to a negative exponent: never 1E+2. The same
                # Decimal as dividing by 10**9, in fewer operations.
                return Decimal(value).scaleb(-MONEY_SCALE).normalize()
            return Decimal(value // _BILLION)
        return canonical_decimal(value if value.__class__ is Decimal else Decimal(value))

    return load


def result_loader(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """A function that converts a value of a column of ``type_`` as the driver returns it into
    what SQLAlchemy's result processing returns for it on ``dialect`` (``None``: as is)."""
    if isinstance(type_, UTCDateTime):
        return _utc_text if dialect.name == "sqlite" else _utc_value
    if isinstance(type_, Money):
        return _money_loader(billionths=dialect.name == "sqlite")
    impl = type_.dialect_impl(dialect)
    process = impl.result_processor(dialect, None)
    if isinstance(type_, Uuid) and process is not None:
        return _uuid_loader(process)
    if isinstance(impl, JSON) and process is not None:
        return _json_loader(process)
    return process


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """What :class:`UTCDateTime` then SQLite's ``DATETIME`` make of ``value`` (the same text:
    ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC), in two C calls."""
    if value is None:
        return None
    zone = value.tzinfo
    if zone is not UTC:
        if zone is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given: use an aware datetime")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def bind_saver(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """A function that converts a Python value of ``type_`` into what SQLAlchemy's bind
    processing sends the driver on ``dialect`` (``None``: as is)."""
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return _sqlite_utc_text
    impl = type_.dialect_impl(dialect)
    process = impl.bind_processor(dialect)
    # A document bound as text (not in a driver's wrapper, e.g. psycopg's Jsonb).
    if process is not None and isinstance(impl, JSON) and process(None) == "null":
        return _json_saver(process)
    return process


def _json_saver(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def save(value: Any) -> Any:
        # Most messages have no metadata: skip json.dumps for the JSON null it gives.
        return "null" if value is None else process(value)

    return save
