"""Importing chatledger's own export (:func:`~chatledger.transfer.export_data`'s JSON
document or JSON lines) row for row: parents first, rows whose primary key exists skipped,
one transaction per table batch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from sqlalchemy import Table

from .. import migrate
from .._ops import transfer as _ops
from .._ops.privacy import EXPORT_FORMAT
from .._schema import Base
from .._sync.ledger import Ledger
from ..errors import ConflictError, NotFoundError, ValidationError
from ._common import Progress
from ._importing import ImportReport, write

__all__ = ["import_document", "import_lines"]


def _decode_row(name: str, table: Table, index: int, row: object) -> dict[str, Any]:
    where = f"{name}: {table.name}[{index}]"
    if not isinstance(row, Mapping):
        raise ValidationError(where, f"must be an object, not {type(row).__name__}")
    # A column added after the export was made may be absent when it can be null.
    missing = [c.name for c in table.columns if c.name not in row and not c.nullable]
    if missing:
        raise ValidationError(f"{where}.{missing[0]}", "is missing")
    decoded: dict[str, Any] = {c.name: None for c in table.columns if c.name not in row}
    for column, value in row.items():
        try:
            decoded[column] = _ops.decode(table, column, value)
        except ValueError as exc:
            raise ValidationError(f"{where}.{column}", str(exc)) from None
    return decoded


class _Batches:
    """Rows gathered per table and written ``size`` at a time, one transaction each."""

    def __init__(
        self, ledger: Ledger, name: str, report: ImportReport, size: int, progress: Progress
    ) -> None:
        self.ledger, self.name, self.report = ledger, name, report
        self.size, self.progress = size, progress
        #: Rows per table when known beforehand (a whole JSON document), for progress bars.
        self.totals: dict[str, int] = {}
        self.pending: list[dict[str, Any]] = []
        self.table: Table | None = None
        self.done: dict[str, int] = {}

    def add(self, table: Table, row: dict[str, Any]) -> None:
        if self.table is not None and table is not self.table:
            self.flush()
        self.table = table
        self.pending.append(row)
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.table is None or not self.pending:
            return
        table, rows = self.table, self.pending
        self.pending = []
        first = self.done.get(table.name, 0)
        try:
            inserted, skipped = write(self.ledger, _ops.insert_missing, table, rows)
        except ConflictError as exc:
            where = f"{self.name}: {table.name} rows {first}..{first + len(rows) - 1}"
            raise ConflictError(f"{where}: {exc}", field=exc.field, code=exc.code) from exc
        except NotFoundError as exc:
            where = f"{self.name}: {table.name} rows {first}..{first + len(rows) - 1}"
            raise ValidationError(
                where, f"refer to a {exc.kind} that is neither in the file nor in the database"
            ) from exc
        self.report.add(table.name, inserted, skipped)
        self.done[table.name] = self.done.get(table.name, 0) + len(rows)
        self.progress(table.name, self.done[table.name], self.totals.get(table.name))


def _check_header(name: str, header: Mapping[str, Any]) -> None:
    fmt = header.get("format")
    if fmt != EXPORT_FORMAT:
        raise ValidationError(
            f"{name}: format", f"is {fmt!r}; this chatledger reads format {EXPORT_FORMAT}"
        )
    revision = header.get("schema_revision")
    if revision is not None and revision not in {r.revision for r in migrate.history()}:
        raise ValidationError(
            f"{name}: schema_revision",
            f"{revision!r} is unknown: the file was exported by a newer chatledger",
        )


def _order(name: str, tables: Sequence[str]) -> list[Table]:
    known = Base.metadata.tables
    for table in tables:
        if table not in known:
            raise ValidationError(f"{name}: tables", f"{table!r} is not a chatledger table")
    return [t for t in Base.metadata.sorted_tables if t.name in tables]


def import_document(
    ledger: Ledger, name: str, document: Any, report: ImportReport, batch: int, progress: Progress
) -> None:
    if not isinstance(document, Mapping) or not isinstance(document.get("tables"), Mapping):
        raise ValidationError(name, "is not a chatledger export (no tables object)")
    _check_header(name, document)
    tables = document["tables"]
    writer = _Batches(ledger, name, report, batch, progress)
    for table in _order(name, list(tables)):
        rows = tables[table.name]
        if not isinstance(rows, list):
            raise ValidationError(f"{name}: tables.{table.name}", "must be a list of rows")
        writer.totals[table.name] = len(rows)
        for index, row in enumerate(rows):
            writer.add(table, _decode_row(name, table, index, row))
        writer.flush()
        report.add(table.name, 0, 0)


def import_lines(
    ledger: Ledger, name: str, stream: TextIO, report: ImportReport, batch: int, progress: Progress
) -> None:
    try:
        header = json.loads(stream.readline())
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{name}: line 1", f"is not valid JSON: {exc}") from None
    if not isinstance(header, Mapping):
        raise ValidationError(f"{name}: line 1", "is not a chatledger JSON-lines header")
    _check_header(name, header)
    writer = _Batches(ledger, name, report, batch, progress)
    rank = {table.name: i for i, table in enumerate(Base.metadata.sorted_tables)}
    last = -1
    index: dict[str, int] = {}
    for number, line in enumerate(stream, start=2):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{name}: line {number}", f"is not valid JSON: {exc}") from None
        table_name = record.get("table") if isinstance(record, Mapping) else None
        if table_name not in rank:
            raise ValidationError(
                f"{name}: line {number}.table", f"{table_name!r} is not a chatledger table"
            )
        if rank[table_name] < last:
            raise ValidationError(
                f"{name}: line {number}.table",
                f"{table_name} rows come after those of their children",
            )
        last = rank[table_name]
        table = Base.metadata.tables[table_name]
        position = index.get(table_name, 0)
        index[table_name] = position + 1
        writer.add(table, _decode_row(name, table, position, record.get("row")))
    writer.flush()
