"""Moving many rows at once: the fastest insert each backend offers, and the key order that is
the same on every backend (for keyset walks that copy, resume and compare tables).

- :func:`bulk_insert` writes a batch of rows in the caller's transaction: ``COPY ... FROM
  STDIN`` on PostgreSQL with psycopg 3 (``cursor.copy``), one ``executemany`` elsewhere (PyMySQL
  rewrites it into multi-row ``INSERT`` statements; SQLite runs the prepared statement per row).
  Values go through the columns' SQLAlchemy types (:mod:`chatledger._types`), so a row is
  stored exactly as ``conn.execute(table.insert(), row)`` would store it.
- :func:`key_columns` and :func:`after_key` walk a table in primary-key order, batch after
  batch, along the primary-key index (keyset pagination).
- :func:`snapshot` gives a connection that reads one consistent snapshot across statements.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Table, and_, or_
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util import await_only

__all__ = ["after_key", "bulk_insert", "copy_rows", "key_columns", "snapshot"]

logger = logging.getLogger(__name__)

#: Rows per ``executemany`` call on the generic path (bounds the size of one statement).
_CHUNK: Final = 1000


def _processors(conn: Connection, table: Table, names: Sequence[str]) -> list[Any]:
    dialect = conn.dialect
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]


def _converted(
    conn: Connection, table: Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> Iterator[list[Any]]:
    """The rows' values in ``names`` order, converted by the columns' bind processing."""
    processors = _processors(conn, table, names)
    return (
        [
            value if process is None else process(value)
            for value, process in zip((row[n] for n in names), processors, strict=True)
        ]
        for row in rows
    )


def _copy(
    conn: Connection, table: Table, names: Sequence[str], converted: Iterable[Sequence[Any]]
) -> bool:
    """``COPY`` the converted rows in; False when the driver cannot (not psycopg 3)."""
    driver = conn.connection.driver_connection
    cursor_factory = getattr(driver, "cursor", None)
    if cursor_factory is None:
        return False
    quote = conn.dialect.identifier_preparer
    statement = "COPY {} ({}) FROM STDIN".format(
        quote.format_table(table), ", ".join(quote.quote(name) for name in names)
    )
    if conn.dialect.is_async:
        # psycopg's AsyncConnection (the asyncio surface runs ops inside SQLAlchemy's greenlet)
        await_only(_copy_async(driver, statement, converted))
        return True
    with cursor_factory() as cursor:
        if not hasattr(cursor, "copy"):
            return False
        with cursor.copy(statement) as copy:
            for row in converted:
                copy.write_row(row)
    return True


async def _copy_async(driver: Any, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    async with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            await copy.write_row(row)


def copy_rows(
    conn: Connection, table: Table, names: Sequence[str], converted: Iterable[Sequence[Any]]
) -> bool:
    """``COPY`` rows whose values are already converted for the driver (in ``names`` order)
    into ``table`` on PostgreSQL with psycopg 3; False, writing nothing, where that is not
    possible. The driver's errors are wrapped as SQLAlchemy wraps those of the statements it
    runs, so that the one translation boundary (``chatledger._run.translate``) turns them into
    chatledger errors (a duplicate key into ConflictError, and so on)."""
    if conn.dialect.name != "postgresql":
        return False
    try:
        return _copy(conn, table, names, converted)
    except Exception as exc:
        base = _psycopg_error()
        if base is None or not isinstance(exc, base):
            raise
        raise DBAPIError.instance(
            f"COPY {table.name}", None, exc, base, dialect=conn.dialect
        ) from exc


def _psycopg_error() -> type[Exception] | None:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - COPY is only attempted through psycopg
        return None
    return psycopg.Error


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` into ``table`` in the caller's transaction with the backend's fastest
    path, and return how many were inserted.

    Every row must have the same keys (column keys of ``table``); columns not named get their
    defaults. Values are Python values of the columns' types (``uuid.UUID``, aware
    ``datetime``, ``Decimal``, dicts for JSON), converted as ``table.insert()`` converts them.
    Constraint violations raise as from ``conn.execute`` (the whole batch is refused on
    PostgreSQL, where ``COPY`` is one statement). Nothing is committed here.
    """
    if not rows:
        return 0
    names = list(rows[0].keys())
    wanted = set(names)
    for index, row in enumerate(rows):
        if set(row.keys()) != wanted:
            raise ValueError(f"row {index} of the batch has other keys than row 0")
    unknown = wanted - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {', '.join(sorted(unknown))}")
    if copy_rows(conn, table, names, _converted(conn, table, names, rows)):
        logger.debug("copied %d rows into %s", len(rows), table.name)
        return len(rows)
    insert = table.insert()
    for start in range(0, len(rows), _CHUNK):
        conn.execute(insert, list(rows[start : start + _CHUNK]))
    logger.debug("inserted %d rows into %s", len(rows), table.name)
    return len(rows)


def key_columns(conn: Connection, table: Table) -> list[ColumnElement[Any]]:
    """``table``'s primary-key columns, to ``ORDER BY`` along the primary-key index.

    The order is each backend's own (MariaDB's native ``UUID`` type, for one, does not sort
    like the text of the UUID), so it is only ever compared within one database."""
    return list(table.primary_key.columns)


def after_key(conn: Connection, table: Table, key: Sequence[Any]) -> ColumnElement[bool]:
    """The rows of ``table`` whose primary key comes after ``key`` in :func:`key_columns`
    order. Written ``a >= x AND (a > x OR (b >= y AND (b > y OR ...)))`` so that every backend
    turns it into an index range on the primary key."""
    columns = key_columns(conn, table)
    if len(columns) != len(key):
        raise ValueError(f"{table.name} has a {len(columns)}-column key, got {len(key)} values")
    condition: ColumnElement[bool] = columns[-1] > key[-1]
    for column, value in zip(reversed(columns[:-1]), reversed(key[:-1]), strict=True):
        condition = and_(column >= value, or_(column > value, condition))
    return condition


@contextmanager
def snapshot(conn: Connection) -> Iterator[Connection]:
    """A transaction on ``conn`` in which every read sees the same snapshot of the database:
    ``REPEATABLE READ`` on PostgreSQL and MariaDB; on SQLite an explicit ``BEGIN`` (chatledger
    turns the driver's own transaction handling off, and its reads begin nothing), whose
    snapshot is taken by the first read."""
    if conn.in_transaction():
        conn.rollback()
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with conn.begin():
        if sqlite and not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            conn.exec_driver_sql("BEGIN")
        yield conn
