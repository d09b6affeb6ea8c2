"""Exporting everything, one user or one conversation: chatledger's own lossless JSON (or
JSON lines), or a Markdown transcript of each conversation's active path, written batch by
batch from one snapshot."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, TextIO

from sqlalchemy import Connection, Table

from .. import _bulk, migrate
from .._ops import transfer as _ops
from .._ops._common import utcnow
from .._ops.privacy import EXPORT_FORMAT
from .._schema import conversations, messages
from .._sync._store import read_once, run_op
from .._sync.ledger import Ledger
from ..errors import ValidationError
from ._common import DEFAULT_BATCH_SIZE, Progress, checked_batch, quiet, resolve_user

__all__ = ["EXPORT_FORMATS", "ExportFormat", "ExportReport", "export_data", "table_counts"]

ExportFormat = Literal["json", "jsonl", "markdown"]
EXPORT_FORMATS: Final[tuple[ExportFormat, ...]] = ("json", "jsonl", "markdown")


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What :func:`export_data` wrote: rows per table (conversations and messages for
    Markdown)."""

    format: str
    scope: str
    rows: dict[str, int]


def _scope(
    ledger: Ledger, user: str | uuid.UUID | None, conversation: str | uuid.UUID | None
) -> _ops.Scope:
    if user is not None and conversation is not None:
        raise ValidationError("conversation", "give a user or a conversation, not both")
    if conversation is not None:
        return ("conversation", ledger.conversations.get(conversation).id)
    if user is not None:
        return ("user", resolve_user(ledger, user))
    return ("all", None)


def table_counts(ledger: Ledger, *, user: str | uuid.UUID | None = None) -> dict[str, int]:
    """Rows per chatledger table, parents first (with ``user``: that user's rows, as in their
    export)."""
    scope = _scope(ledger, user, None)
    return {
        table.name: run_op(ledger, _ops.count_rows, table, scope)
        for table in _ops.scope_tables(scope)
    }


def _rows(
    conn: Connection, table: Table, scope: _ops.Scope, batch: int
) -> Iterator[dict[str, Any]]:
    after: tuple[Any, ...] | None = None
    while True:
        rows = _ops.read_batch(conn, table, scope, after, batch)
        yield from rows
        if len(rows) < batch:
            return
        after = _ops.key_of(table, rows[-1])


def _scope_name(scope: _ops.Scope) -> str:
    return scope[0] if scope[1] is None else f"{scope[0]} {scope[1]}"


def _header(scope: _ops.Scope) -> dict[str, Any]:
    return {
        "kind": _ops.KIND,
        "format": EXPORT_FORMAT,
        "schema_revision": migrate.head(),
        "exported_at": utcnow().isoformat(),
        "scope": {"kind": scope[0], "id": None if scope[1] is None else str(scope[1])},
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def export_data(
    ledger: Ledger,
    out: TextIO,
    *,
    format: ExportFormat = "json",
    user: str | uuid.UUID | None = None,
    conversation: str | uuid.UUID | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    include_hidden: bool = False,
) -> ExportReport:
    """Write everything, one ``user`` (id or external id) or one ``conversation`` to ``out``.

    Hidden messages (``messages.hide``) are left out of what the export shows unless
    ``include_hidden``: the Markdown transcript skips them, and the ``json``/``jsonl`` rows
    keep them (their place in the tree) with ``content`` empty. Erased messages hold no
    content anyway.

    ``json`` is one document ``{"kind": "chatledger-export", "format", "schema_revision",
    "exported_at", "scope", "tables": {table: [row, ...]}}`` holding every column (ids, times
    and decimals as strings), written row by row; ``jsonl`` is the same as one header line and
    then one ``{"table": ..., "row": ...}`` line per row; both are lossless and
    :func:`import_data` reads them back (message trees included: parents, sibling order, the
    active path). ``markdown`` is a readable transcript of each conversation's active path,
    each message with other versions marked ("version 2 / 3") and the messages on other
    branches counted. A user's export leaves out the audit log (it belongs to the whole database)
    and ratings by other users; a conversation's holds its owner, its messages, their citations
    with the cited knowledge chunks, and the owner's ratings. Rows are read ``batch_size`` at a
    time, so memory stays flat whatever the size of the database, all from one snapshot (one
    read transaction; ``REPEATABLE READ`` on PostgreSQL and MariaDB), so an export taken while
    the app writes is consistent.
    """
    if format not in EXPORT_FORMATS:
        raise ValidationError(
            "format", f"must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}"
        )
    batch = checked_batch(batch_size)
    report = progress or quiet
    scope = _scope(ledger, user, conversation)

    def run(conn: Connection) -> dict[str, int]:
        # One snapshot for the whole export: rows written meanwhile are all in or all out, so
        # no row refers to one the file lacks.
        with _bulk.snapshot(conn) as snap:
            if format == "markdown":
                return _markdown(snap, out, scope, batch, report, include_hidden)
            return _tables(snap, out, format == "jsonl", scope, batch, report, include_hidden)

    counts = read_once(ledger, run)
    return ExportReport(format, _scope_name(scope), counts)


def _tables(
    conn: Connection,
    out: TextIO,
    lines: bool,
    scope: _ops.Scope,
    batch: int,
    report: Progress,
    include_hidden: bool,
) -> dict[str, int]:
    """Write the tables of ``scope`` as JSON lines or as one JSON document."""
    counts: dict[str, int] = {}
    header = _header(scope)
    tables = _ops.scope_tables(scope)
    if lines:
        out.write(_dumps(header) + "\n")
    else:
        out.write(_dumps(header)[:-1] + ', "tables": {')
    for position, table in enumerate(tables):
        total = _ops.count_rows(conn, table, scope)
        report(table.name, 0, total)
        if not lines:
            out.write(("" if position == 0 else ", ") + _dumps(table.name) + ": [")
        written = 0
        blank = table is messages and not include_hidden
        for row in _rows(conn, table, scope, batch):
            encoded = {name: _ops.encode(value) for name, value in row.items()}
            if blank and row["hidden_at"] is not None:
                encoded["content"] = ""
            if lines:
                out.write(_dumps({"table": table.name, "row": encoded}) + "\n")
            else:
                out.write(("\n" if written == 0 else ",\n") + _dumps(encoded))
            written += 1
            if written % batch == 0:
                report(table.name, written, total)
        if not lines:
            out.write("]")
        counts[table.name] = written
        report(table.name, written, total)
    if not lines:
        out.write("}}\n")
    return counts


def _markdown(
    conn: Connection,
    out: TextIO,
    scope: _ops.Scope,
    batch: int,
    report: Progress,
    include_hidden: bool,
) -> dict[str, int]:
    total = _ops.count_rows(conn, conversations, scope)
    report("conversations", 0, total)
    done = written = 0
    for chat in _rows(conn, conversations, scope, batch):
        title = chat["title"] or "Untitled conversation"
        out.write(f"# {title}\n\n")
        only: _ops.Scope = ("conversation", chat["id"])
        # The active path, and how many children each message has (for "version 2 / 3").
        path: list[dict[str, Any]] = []
        children: dict[int | None, int] = {}
        for message in _rows(conn, messages, only, batch):
            children[message["parent_seq"]] = children.get(message["parent_seq"], 0) + 1
            if message["on_active_path"]:
                path.append(message)
        out.write(
            f"- conversation: `{chat['id']}`\n- owner: `{chat['owner_id']}`\n"
            f"- created: {chat['created_at'].isoformat()}\n- status: {chat['status']}\n"
            f"- messages: {chat['message_count']}\n"
        )
        if len(path) < chat["message_count"]:
            out.write(
                f"- active path: {len(path)} messages; "
                f"{chat['message_count'] - len(path)} more on other branches\n"
            )
        out.write("\n")
        for message in path:
            if message["hidden_at"] is not None and not include_hidden:
                continue
            details = [message["created_at"].isoformat()]
            if message["hidden_at"] is not None:
                details.append("erased" if message["erased_at"] is not None else "hidden")
            versions = children.get(message["parent_seq"], 1)
            if versions > 1:
                details.append(f"version {message['sibling_index'] + 1} / {versions}")
            if message["model"]:
                details.append(message["model"])
            if message["input_tokens"] is not None or message["output_tokens"] is not None:
                tokens = (message["input_tokens"] or 0, message["output_tokens"] or 0)
                details.append("{} in / {} out tokens".format(*tokens))
            if message["cost"] is not None:
                details.append(f"cost {message['cost']}")
            out.write(f"## {message['seq']}. {message['role']} ({', '.join(details)})\n\n")
            out.write(message["content"].rstrip("\n") + "\n\n")
            written += 1
        done += 1
        report("conversations", done, total)
    return {"conversations": done, "messages": written}
