"""Moving data in, out and between databases.

- :func:`copy_database` copies a whole chatledger database to another one, on any backend
  (typically an SQLite file into PostgreSQL or MariaDB): it backs an SQLite source up first,
  creates or upgrades the target's schema, copies each table in primary-key order in batches
  with the target's fast path (``COPY`` on PostgreSQL), resumes where an interrupted run
  stopped, and ends by comparing row counts and checksums of every table.
- :func:`export_data` writes everything, one user or one conversation as chatledger's own
  lossless JSON (or JSON lines), or a Markdown transcript, streaming batch by batch.
- :func:`import_data` reads chatledger's own export, a ChatGPT export (the ZIP or its
  ``conversations.json``), or the
  visitors and feedback files of the visitor-registry apps. Importing the same file twice
  writes nothing the second time.

The command line (``chatledger copy | export | import``) is a thin layer over these.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, TextIO, TypeVar, cast

from sqlalchemy import Connection, Table
from sqlalchemy.engine import URL

from . import _bulk, _inputs, migrate
from ._backends import is_memory_sqlite, sqlite_library
from ._ops import importers
from ._ops import sync as _sync
from ._ops import transfer as _ops
from ._ops._common import utcnow
from ._ops.privacy import EXPORT_FORMAT
from ._run.database_sync import Database
from ._run.engine import sync_engine
from ._schema import Base, audit_events, conversations, messages, token_ledger
from ._sync._store import run_op
from ._sync.ledger import Ledger
from .config import Config
from .errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    SchemaOutOfDateError,
    ValidationError,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "CopyReport",
    "ExportFormat",
    "ExportReport",
    "ImportFormat",
    "ImportReport",
    "Progress",
    "TableCheck",
    "backup_sqlite",
    "compare_databases",
    "copy_database",
    "detect_format",
    "export_data",
    "import_data",
    "resolve_user",
    "table_counts",
]

logger = logging.getLogger(__name__)

#: Rows per batch (one transaction on the target each) unless told otherwise.
DEFAULT_BATCH_SIZE: Final = 5000
ExportFormat = Literal["json", "jsonl", "markdown"]
ImportFormat = Literal["chatledger", "chatledger-jsonl", "chatgpt", "visitors", "feedback"]
EXPORT_FORMATS: Final[tuple[ExportFormat, ...]] = ("json", "jsonl", "markdown")
IMPORT_FORMATS: Final[tuple[ImportFormat, ...]] = (
    "chatledger",
    "chatledger-jsonl",
    "chatgpt",
    "visitors",
    "feedback",
)

#: ``progress(task, done, total)``: called as work advances; ``done`` counts rows (or
#: records) of ``task`` so far, ``total`` is the expected count when known.
Progress = Callable[[str, int, int | None], None]

Target = str | URL | Config
T = TypeVar("T")


def _quiet(task: str, done: int, total: int | None) -> None:
    """The default progress callback: nothing."""


def _config(target: Target) -> Config:
    return target if isinstance(target, Config) else Config.load(target)


def _database(config: Config) -> Database:
    engine, backend = sync_engine(config)
    return Database(engine, backend, busy_timeout=config.sqlite_busy_timeout)


def _batch_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise ValidationError("batch_size", f"must be a whole number 1..100000, not {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# copy


@dataclass(frozen=True, slots=True)
class TableCheck:
    """One table compared on the source and the target of a copy."""

    table: str
    source_rows: int
    target_rows: int
    source_checksum: str
    target_checksum: str
    #: Rows this run inserted into the target.
    copied: int = 0
    #: Rows of the target this run changed to the source's values (counters excepted: they
    #: move with the rows they count).
    updated: int = 0
    #: Rows of the target this run deleted because the source no longer holds them (children
    #: deleted with their parent are not counted).
    deleted: int = 0

    @property
    def ok(self) -> bool:
        """Whether both sides hold the same rows."""
        return (self.source_rows, self.source_checksum) == (self.target_rows, self.target_checksum)


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What :func:`copy_database` did, and the verification of every table."""

    source: str
    target: str
    backup: Path | None
    tables: list[TableCheck]
    #: Rows inserted by this run, per table.
    copied: dict[str, int]
    seconds: float
    #: Rows changed by this run, per table.
    updated: dict[str, int] = field(default_factory=dict)
    #: Rows deleted by this run, per table.
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every table matched."""
        return all(check.ok for check in self.tables)

    @property
    def rows_copied(self) -> int:
        """Rows written by this run, in all tables."""
        return sum(self.copied.values())

    @property
    def rows_per_second(self) -> float:
        """The copy's rate over the whole run (verification included)."""
        return self.rows_copied / self.seconds if self.seconds > 0 else 0.0

    @property
    def messages_per_second(self) -> float:
        """Messages written per second over the whole run."""
        return self.copied.get("messages", 0) / self.seconds if self.seconds > 0 else 0.0


def backup_sqlite(url: URL, *, now: datetime | None = None) -> Path:
    """Back the SQLite database at ``url`` up to ``<file>.backup.<UTC timestamp>`` with
    SQLite's online backup API (a consistent copy, WAL content included); return the path."""
    if url.database is None or is_memory_sqlite(url) or url.database.startswith("file:"):
        raise ConfigurationError(f"cannot back up {url.render_as_string()}: not an SQLite file")
    path = Path(url.database).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"the source database {path} does not exist")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    backup = path.with_name(f"{path.name}.backup.{stamp}")
    serial = 1
    while backup.exists():
        serial += 1
        backup = path.with_name(f"{path.name}.backup.{stamp}-{serial}")
    library = sqlite_library()
    source = library.connect(f"file:{path}?mode=ro", uri=True)
    try:
        target = library.connect(str(backup))
        try:
            source.backup(target)
        finally:
            target.close()
    except library.Error as exc:
        backup.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot back up {path}: {exc}") from exc
    finally:
        source.close()
    logger.info("backed up %s to %s", path, backup)
    return backup


def _check_source(conn: Connection, name: str) -> None:
    revision = migrate.current(conn)
    if conn.in_transaction():
        conn.rollback()
    if revision != migrate.head():
        raise SchemaOutOfDateError(
            f"the source {name} is at revision {revision or 'none (not a chatledger database)'}"
            f", this chatledger copies revision {migrate.head()}: upgrade the source first "
            "(`chatledger db upgrade --url SOURCE`)",
            current=revision,
            head=migrate.head(),
        )


def _check_origin(source: Connection, target: Database, batch: int) -> None:
    """Refuse, before anything is written, a target that is not a copy of this source: one
    that holds none of the source's users or conversations, or whose append-only rows
    (messages, ledger entries, audit events) the source does not have."""
    if not target.read(_sync.shares_origin, source):
        raise ConflictError(
            "the target holds data but none of the source's users or conversations: it is "
            "not a copy of this source (copy into an empty database)"
        )
    for table in (messages, token_ledger, audit_events):
        after: tuple[Any, ...] | None = None
        while True:
            reason, after = target.read(_sync.divergence, source, table, after, batch)
            if reason is not None:
                raise ConflictError(f"{reason} (nothing was written)")
            if after is None:
                break


def _delete_stale(source: Connection, target: Database, table: Table, batch: int) -> int:
    """Delete the target's rows of ``table`` that the source no longer holds, a batch per
    transaction (children go with their parents: ``ON DELETE CASCADE``)."""
    deleted = 0
    after: tuple[Any, ...] | None = None
    while True:
        keys = target.read(_sync.target_keys, table, after, batch)
        stale = _sync.absent(source, table, keys)
        if stale:
            deleted += target.run(_sync.delete_missing, table, stale)
        if len(keys) < batch:
            return deleted
        after = keys[-1]


def _copy_table(
    source: Connection,
    target: Database,
    table: Table,
    batch: int,
    progress: Progress,
) -> tuple[int, int, _ops.Digest]:
    """Bring the target's ``table`` to the source's rows, batch after batch in copy order
    (:func:`chatledger._ops.sync.sync_batch`, one target transaction each). Returns the rows
    inserted and updated, and the source table's digest."""
    total = _ops.count_rows(source, table)
    fresh = target.read(_ops.count_rows, table) == 0
    progress(table.name, 0, total)
    inserted = updated = done = 0
    digest = _ops.Digest()
    after: tuple[Any, ...] | None = None
    while True:
        rows = _sync.read_ordered(source, table, after, batch)
        digest.add(rows)
        if rows:
            # A batch the target already holds as it is writes nothing (and backs nothing up).
            if fresh or any(target.read(_sync.pending, table, rows, fresh=False)):
                added, changed = target.run(_sync.sync_batch, table, rows, fresh=fresh)
            else:
                added = changed = 0
            inserted += added
            updated += changed
            done += len(rows)
            after = _sync.order_key(table, rows[-1])
            progress(table.name, done, total)
        if len(rows) < batch:
            return inserted, updated, digest


def _compare(
    source: Connection,
    target: Database,
    batch: int,
    written: Mapping[str, tuple[int, int, int]],
    known: Mapping[str, _ops.Digest],
    progress: Progress,
) -> list[TableCheck]:
    """Digest every table on both sides: the target's on a worker thread meanwhile, and the
    source's only where the copy did not already (``known``)."""
    tables = Base.metadata.sorted_tables

    def target_digests() -> list[_ops.Digest]:
        return [target.read(_ops.table_digest, table, batch) for table in tables]

    with ThreadPoolExecutor(1, thread_name_prefix="chatledger-verify") as pool:
        pending = pool.submit(target_digests)
        sources = [
            known.get(table.name) or _ops.table_digest(source, table, batch) for table in tables
        ]
        progress("verify", 0, len(tables))
        targets = pending.result()
    progress("verify", len(tables), len(tables))
    return [
        TableCheck(
            table.name,
            mine.count,
            theirs.count,
            mine.hexdigest,
            theirs.hexdigest,
            *written.get(table.name, (0, 0, 0)),
        )
        for table, mine, theirs in zip(tables, sources, targets, strict=True)
    ]


class _BackupFirst:
    """The target's :class:`Database`, seen through :attr:`db`: the first write through it
    backs the SQLite source at ``source`` up first, so a copy that writes nothing (a finished
    copy run again) leaves no backup behind, and one that writes leaves exactly one."""

    def __init__(self, target: Database, source: URL | None) -> None:
        self._target = target
        self._source = source
        #: Where the backup was written, once it was.
        self.saved: Path | None = None
        self.db = cast(Database, self)

    def run(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # Moving the audit chain's head is a compare-and-set that writes only when the events
        # it covers were copied (and backed up for) already.
        if self._source is not None and self.saved is None and op is not _ops.advance_audit_chain:
            self.saved = backup_sqlite(self._source)
        return self._target.run(op, *args, **kwargs)

    def read(self, op: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._target.read(op, *args, **kwargs)


def copy_database(
    source: Target,
    target: Target,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    backup: bool = True,
    progress: Progress | None = None,
) -> CopyReport:
    """Make ``target`` an exact copy of ``source`` as it is now, and verify the result.

    ``source`` and ``target`` are URLs (or :class:`Config`), of any backend. An SQLite source is
    backed up next to itself (:func:`backup_sqlite`; ``backup=False`` skips it) just before
    the first row is written, so a run with nothing to copy makes no backup. The
    source must be at this chatledger's schema revision; the target is initialised or upgraded
    to it, and refused if a newer chatledger migrated it.

    Everything is read from one snapshot of the source. An empty target gets every row, table
    after table, parents first, ``batch_size`` rows per target transaction with the backend's
    bulk path. A target copied from this source before (a finished copy, an interrupted one,
    and the source written to since) is brought up to date: rows the source no longer holds
    are deleted, changed rows updated, new rows inserted. The ledger's invariants hold on the
    target after every one of its transactions, so an interruption leaves a consistent target
    and a rerun continues (:mod:`chatledger._ops.sync`). A target that is not a copy of this
    source (it holds none of its users or conversations, or messages, ledger entries or audit
    events the source does not have) raises :class:`ConflictError` before anything is written.
    Afterwards every table is compared: its row count and a checksum of its rows' canonical
    values (:class:`chatledger._ops.transfer.Digest`, independent of each backend's row order);
    :attr:`CopyReport.ok` says whether all match.
    """
    batch = _batch_size(batch_size)
    report_progress = progress or _quiet
    source_config, target_config = _config(source), _config(target)
    if source_config.url == target_config.url:
        raise ConfigurationError("the source and the target are the same database")
    started = time.perf_counter()
    url = source_config.url
    on_disk = source_config.backend == "sqlite" and not is_memory_sqlite(url)
    if on_disk and url.database and not Path(url.database).expanduser().is_file():
        raise ConfigurationError(f"the source database {url.database} does not exist")
    source_db, target_db = _database(source_config), _database(target_config)
    writer = _BackupFirst(target_db, url if on_disk and backup else None)
    order = _sync.sync_order()
    try:
        # Both ends are checked before anything is written.
        source_db.read(_check_source, source_config.redacted_url())
        target_db.run_raw(migrate.ensure_schema, auto_upgrade=True)

        def run(conn: Connection) -> tuple[dict[str, tuple[int, int, int]], list[TableCheck]]:
            with _bulk.snapshot(conn) as snap:
                _check_origin(snap, target_db, batch)
                deleted = {
                    table.name: _delete_stale(snap, writer.db, table, batch) for table in order
                }
                written: dict[str, tuple[int, int, int]] = {}
                known: dict[str, _ops.Digest] = {}
                for table in order:
                    inserted, updated, digest = _copy_table(
                        snap, writer.db, table, batch, report_progress
                    )
                    written[table.name] = (inserted, updated, deleted[table.name])
                    known[table.name] = digest
                logger.info("copied (inserted, updated, deleted) %s", written)
                return written, _compare(snap, target_db, batch, written, known, report_progress)

        written, checks = source_db.read(run)
    finally:
        source_db.dispose()
        target_db.dispose()
    return CopyReport(
        source=source_config.redacted_url(),
        target=target_config.redacted_url(),
        backup=writer.saved,
        tables=checks,
        copied={name: counts[0] for name, counts in written.items()},
        seconds=time.perf_counter() - started,
        updated={name: counts[1] for name, counts in written.items()},
        deleted={name: counts[2] for name, counts in written.items()},
    )


def compare_databases(
    source: Target, target: Target, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> list[TableCheck]:
    """Compare every chatledger table of two databases (row counts and checksums)."""
    batch = _batch_size(batch_size)
    source_db, target_db = _database(_config(source)), _database(_config(target))
    try:

        def run(conn: Connection) -> list[TableCheck]:
            with _bulk.snapshot(conn) as snap:
                return _compare(snap, target_db, batch, {}, {}, _quiet)

        return source_db.read(run)
    finally:
        source_db.dispose()
        target_db.dispose()


# --------------------------------------------------------------------------------------------
# export


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


def resolve_user(ledger: Ledger, user: str | uuid.UUID) -> uuid.UUID:
    """The id of the user ``user`` names: their id, external id, email or username.

    Every field is looked up; :class:`NotFoundError` if none matches, :class:`ConflictError`
    if the text names different users in different fields (then give the id)."""
    if isinstance(user, uuid.UUID):
        return ledger.users.get(user).id
    lookups: list[tuple[str, Callable[[str], Any]]] = [
        ("external id", ledger.users.get_by_external_id),
        ("email", ledger.users.get_by_email),
        ("username", ledger.users.get_by_username),
    ]
    if _is_uuid(user):
        lookups.insert(0, ("id", ledger.users.get))
    found: dict[uuid.UUID, str] = {}
    for field_name, lookup in lookups:
        try:
            found.setdefault(lookup(user).id, field_name)
        except (NotFoundError, ValidationError):
            continue
    if not found:
        raise NotFoundError("user", user)
    if len(found) > 1:
        named = "; ".join(f"{field_name} of user {ident}" for ident, field_name in found.items())
        raise ConflictError(f"{user!r} names more than one user ({named}): give the id")
    return next(iter(found))


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
    batch = _batch_size(batch_size)
    report = progress or _quiet
    scope = _scope(ledger, user, conversation)

    def run(conn: Connection) -> dict[str, int]:
        # One snapshot for the whole export: rows written meanwhile are all in or all out, so
        # no row refers to one the file lacks.
        with _bulk.snapshot(conn) as snap:
            if format == "markdown":
                return _markdown(snap, out, scope, batch, report, include_hidden)
            return _tables(snap, out, format == "jsonl", scope, batch, report, include_hidden)

    ledger.open()
    counts = ledger._core.db.read(run)
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


# --------------------------------------------------------------------------------------------
# import


@dataclass(slots=True)
class ImportReport:
    """What :func:`import_data` did: rows inserted and skipped (already there), per table."""

    format: str
    inserted: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    #: What the source held that has no place in chatledger, by kind (a ChatGPT export's
    #: ``images``, ``files``, ``thoughts``): counted, not imported.
    not_imported: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, inserted: int, skipped: int) -> None:
        """Count rows of ``table``."""
        self.inserted[table] = self.inserted.get(table, 0) + inserted
        self.skipped[table] = self.skipped.get(table, 0) + skipped

    @property
    def total_inserted(self) -> int:
        """Rows inserted, in all tables."""
        return sum(self.inserted.values())

    @property
    def total_skipped(self) -> int:
        """Rows found already there, in all tables."""
        return sum(self.skipped.values())


def _is_jsonl(name: str) -> bool:
    """Whether the file starts with a chatledger JSON-lines header (a short first line)."""
    first = _inputs.read_head(name, _HEADER_MAX)
    if first is None:
        return False
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(head, Mapping) and head.get("kind") == _ops.KIND and "tables" not in head


#: The longest first line read when looking for a JSON-lines header.
_HEADER_MAX: Final = 65_536


def detect_format(path: str | os.PathLike[str]) -> ImportFormat:
    """Which import format a file holds, from its first record; :class:`ValidationError` if
    none fits."""
    name = os.fspath(path)
    return "chatledger-jsonl" if _is_jsonl(name) else _detect(name, _load(name))


def _detect(name: str, document: Any) -> ImportFormat:
    if isinstance(document, Mapping):
        if document.get("kind") == _ops.KIND or ("format" in document and "tables" in document):
            return "chatledger"
        wrapped: tuple[tuple[str, ImportFormat], ...] = (
            ("visitors", "visitors"),
            ("feedback", "feedback"),
            ("conversations", "chatgpt"),
        )
        for key, kind in wrapped:
            if isinstance(document.get(key), list):
                return _detect(name, document[key]) if document[key] else kind
        raise ValidationError(name, "is a JSON object of no known format: use --format")
    if not isinstance(document, list):
        raise ValidationError(name, "holds neither a JSON object nor a list: no known format")
    if not document:
        raise ValidationError(name, "is an empty list: its format cannot be detected, use --format")
    first = document[0]
    if isinstance(first, Mapping):
        if "mapping" in first:
            return "chatgpt"
        if "agent_name" in first:
            return "feedback"
        if "name" in first:
            return "visitors"
    raise ValidationError(
        f"{name}: record 0", "matches no known format (chatgpt, visitors, feedback)"
    )


def _load(name: str) -> Any:
    return _inputs.load_document(name)


def _records(name: str, document: Any, key: str) -> list[Any]:
    if isinstance(document, Mapping) and isinstance(document.get(key), list):
        return list(document[key])
    if isinstance(document, list):
        return document
    raise ValidationError(name, f"must hold a list of {key} records")


def import_data(
    ledger: Ledger,
    path: str | os.PathLike[str],
    *,
    format: ImportFormat | None = None,
    user: str | uuid.UUID | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the file at ``path`` (its format detected, or given) and count what was written.

    - ``chatledger`` / ``chatledger-jsonl``: :func:`export_data`'s output, row for row (ids,
      sequence numbers, times, costs, metadata and all); rows whose primary key exists are
      skipped. The audit chain's head moves forward only. One transaction per table batch.
    - ``chatgpt``: a ChatGPT export (the ZIP ChatGPT delivers, or its ``conversations.json``),
      imported for ``user`` (an id or an external id; a new external id creates the user),
      every branch of each conversation's tree, the active leaf at ``current_node``. One
      transaction per conversation. A conversation imported before gets the messages it has
      grown by since. Images, attached files and "thoughts" are counted in
      ``report.not_imported``, not imported.
    - ``visitors``, ``feedback``: files of the visitor-registry apps. One transaction per file.

    Ids are deterministic, so a second import of the same file inserts nothing. Invalid input
    raises :class:`ValidationError` naming the file, the record and the field; what was
    committed before stays (a rerun after fixing the file completes it).
    """
    name = os.fspath(path)
    if not Path(name).is_file():
        raise ValidationError("path", f"{name} is not a file")
    batch = _batch_size(batch_size)
    document: Any = None
    if format is not None:
        kind = format
    elif _is_jsonl(name):
        kind = "chatledger-jsonl"
    else:
        document = _load(name)
        kind = _detect(name, document)
    if kind not in IMPORT_FORMATS:
        raise ValidationError("format", f"must be one of {', '.join(IMPORT_FORMATS)}, not {kind!r}")
    if kind != "chatgpt" and user is not None:
        raise ValidationError("user", f"applies to ChatGPT imports only, not to {kind}")
    report = ImportReport(kind)
    tick = progress or _quiet
    if kind == "chatledger-jsonl":
        with _inputs.open_text(name) as stream:
            _import_lines(ledger, name, stream, report, batch, tick)
        return report
    if document is None:
        document = _load(name)
    if kind == "chatledger":
        _import_document(ledger, name, document, report, batch, tick)
    elif kind == "chatgpt":
        if user is None:
            raise ValidationError(
                "user", "a ChatGPT import needs the user the conversations belong to"
            )
        _import_chatgpt(ledger, name, _records(name, document, "conversations"), user, report, tick)
    elif kind == "visitors":
        now = utcnow()
        records = _records(name, document, "visitors")
        parsed = _named(name, lambda: importers.visitor_records(records, now))
        inserted, skipped = _write(ledger, importers.insert_visitors, parsed)
        report.add("visitors", inserted, skipped)
        tick("visitors", len(records), len(records))
    else:
        now = utcnow()
        records = _records(name, document, "feedback")
        rows = _named(
            name, lambda: [importers.feedback_row(doc, i, now) for i, doc in enumerate(records)]
        )
        inserted, skipped = _write(ledger, importers.insert_feedback, rows)
        report.add("product_feedback", inserted, skipped)
        tick("product_feedback", len(records), len(records))
    logger.info(
        "imported %s: %s inserted, %s skipped, not imported: %s",
        name,
        report.inserted,
        report.skipped,
        report.not_imported,
    )
    return report


def _write(ledger: Ledger, op: Callable[..., T], *args: Any) -> T:
    """Run an import write in a transaction of its own. Writes skip what exists, so a
    conflict means a concurrent import of the same records committed first: run it once more,
    and it skips them (a conflict with other data fails again, and is raised)."""
    try:
        return run_op(ledger, op, *args, write=True)
    except ConflictError:
        logger.info("an import batch met a concurrent write; running it again")
        return run_op(ledger, op, *args, write=True)


def _named(name: str, parse: Callable[[], Any]) -> Any:
    """Run ``parse``; a validation error gets the file's name in front of its field."""
    try:
        return parse()
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc.field}", exc.problem, limit=exc.limit) from None


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
            inserted, skipped = _write(self.ledger, _ops.insert_missing, table, rows)
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


def _import_document(
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


def _import_lines(
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


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _import_chatgpt(
    ledger: Ledger,
    name: str,
    records: list[Any],
    user: str | uuid.UUID,
    report: ImportReport,
    progress: Progress,
) -> None:
    try:
        owner = resolve_user(ledger, user)
    except NotFoundError:
        if isinstance(user, uuid.UUID) or _is_uuid(user):
            raise  # an id that names nobody is a mistake, not a new external id
        owner = ledger.users.get_or_create(user).id
    progress("conversations", 0, len(records))
    for index, doc in enumerate(records):
        parsed = _named(
            name,
            functools.partial(importers.chatgpt_conversation, doc, index, owner, ledger.limits),
        )
        created, added, known = _write(ledger, importers.insert_conversation, parsed)
        report.add("conversations", int(created), int(not created))
        report.add("messages", added, known)
        for kind, count in parsed.not_imported.items():
            report.not_imported[kind] = report.not_imported.get(kind, 0) + count
        progress("conversations", index + 1, len(records))
