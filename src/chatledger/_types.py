"""Portable column types: one definition per kind of value, correct on every backend.

- :class:`UTCDateTime` stores UTC and rejects naive datetimes. PostgreSQL gets ``timestamptz``;
  MariaDB ``DATETIME(6)`` (microseconds, so ordering by time is exact); SQLite a fixed-width
  ISO string, which sorts correctly.
- :class:`Money` holds exact decimals. PostgreSQL and MariaDB use ``NUMERIC(20, 9)``; SQLite has
  no exact decimal type, so the value is stored as a whole number of billionths (an integer,
  whose ``SUM`` is exact too).
- :data:`LongText` is ``LONGTEXT`` on MariaDB (its ``TEXT`` stops at 64 KB) and ``TEXT`` elsewhere.
- :data:`JSONDocument` is ``JSONB`` on PostgreSQL and ``JSON`` elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Numeric, Text
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "MONEY_SCALE",
    "JSONDocument",
    "LongText",
    "Money",
    "UTCDateTime",
    "canonical_decimal",
]

#: Digits kept after the decimal point in :class:`Money` values.
MONEY_SCALE = 9
_MONEY_FACTOR = Decimal(10) ** MONEY_SCALE

LongText: TypeEngine[str] = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
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
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normal.quantize(Decimal(1))
    return normal
