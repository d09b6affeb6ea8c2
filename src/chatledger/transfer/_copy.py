"""Copying a whole chatledger database to another one, on any backend, and comparing two.

:func:`copy_database` backs an SQLite source up first, creates or upgrades the target's
schema, brings each table to the source's rows in primary-key order in batches with the
target's fast path (``COPY`` on PostgreSQL), resumes where an interrupted run stopped (an
incremental resync: :mod:`chatledger._ops.sync`), and ends by comparing row counts and
checksums of every table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Table
from sqlalchemy.engine import URL

from .. import _bulk, migrate
from .._backends import is_memory_sqlite, sqlite_library
from .._ops import sync as _sync
from .._ops import transfer as _ops
from .._run.database_sync import Database
from .._schema import Base, audit_events, messages, token_ledger
from ..errors import ConfigurationError, ConflictError, SchemaOutOfDateError
from ._common import (
    DEFAULT_BATCH_SIZE,
    Progress,
    T,
    Target,
    checked_batch,
    config_of,
    database,
    quiet,
)

__all__ = ["CopyReport", "TableCheck", "backup_sqlite", "compare_databases", "copy_database"]

logger = logging.getLogger(__name__)


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
    batch = checked_batch(batch_size)
    report_progress = progress or quiet
    source_config, target_config = config_of(source), config_of(target)
    if source_config.url == target_config.url:
        raise ConfigurationError("the source and the target are the same database")
    started = time.perf_counter()
    url = source_config.url
    on_disk = source_config.backend == "sqlite" and not is_memory_sqlite(url)
    if on_disk and url.database and not Path(url.database).expanduser().is_file():
        raise ConfigurationError(f"the source database {url.database} does not exist")
    source_db, target_db = database(source_config), database(target_config)
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
    batch = checked_batch(batch_size)
    source_db, target_db = database(config_of(source)), database(config_of(target))
    try:

        def run(conn: Connection) -> list[TableCheck]:
            with _bulk.snapshot(conn) as snap:
                return _compare(snap, target_db, batch, {}, {}, quiet)

        return source_db.read(run)
    finally:
        source_db.dispose()
        target_db.dispose()
