"""Knowledge chunks: pieces of knowledge sources, unique by ``(source, external_id)``.

A chunk's ``content_hash`` is the SHA-256 of the canonical JSON of ``{title, content,
metadata}`` (:func:`~chatledger._ops.audit.canonical_json`): a change of any of the three is a
change. Upserts compare hashes, so a chunk whose title, content and metadata are unchanged is
not written at all (its ``updated_at`` stays).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, bindparam, delete, func, null, or_, select, update
from sqlalchemy.exc import IntegrityError

from .. import _cursors, _ids
from .. import _validate as check
from .._backends import backend_of
from .._schema import EXTERNAL_ID_MAX, SOURCE_MAX, TITLE_MAX, knowledge_chunks
from .._types import JSONDocument, LongText, UTCDateTime
from ..errors import ConflictError, NotFoundError, TransientError, ValidationError
from ..records import KnowledgeChunk, Order, Page, UpsertReport
from . import _once
from ._common import from_row, paginate, record_columns, utcnow
from .audit import canonical_json

__all__ = [
    "ADDED",
    "BATCH_SIZE_MAX",
    "NewChunk",
    "add",
    "batch_size",
    "bulk_upsert",
    "content_hash",
    "decode_all_cursor",
    "decode_cursor",
    "delete_one",
    "delete_source",
    "get",
    "get_by_external_id",
    "get_by_key",
    "key",
    "page",
    "page_all",
    "prepare",
    "prepare_many",
    "source_deleted",
    "upsert",
    "upserted",
]

_COLUMNS: Final = record_columns(knowledge_chunks, KnowledgeChunk)
_KIND: Final = "knowledge"
_k = knowledge_chunks.c
#: The largest batch of a bulk upsert (rows per statement).
BATCH_SIZE_MAX: Final = 10_000
#: How often a bulk batch is re-run after losing a race to insert one of its keys.
_BATCH_ATTEMPTS: Final = 3

_UPDATE: Final = (
    update(knowledge_chunks)
    .where(_k.id == bindparam("b_id"))
    .values(
        title=bindparam("b_title", type_=_k.title.type),
        content=bindparam("b_content", type_=LongText),
        metadata=bindparam("b_metadata", type_=JSONDocument),
        content_hash=bindparam("b_hash", type_=_k.content_hash.type),
        updated_at=bindparam("b_now", type_=UTCDateTime()),
        # A changed chunk's embedding no longer describes it (see _ops/retrieval.py).
        embedding=null(),
    )
)


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A validated chunk, with its content hash."""

    source: str
    external_id: str
    title: str | None
    content: str
    metadata: dict[str, Any] | None
    content_hash: str


def content_hash(title: str | None, content: str, metadata: dict[str, Any] | None) -> str:
    """The SHA-256 (hex) of the canonical JSON of ``{title, content, metadata}``."""
    document = {"title": title, "content": content, "metadata": metadata}
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def batch_size(value: object) -> int:
    """A bulk upsert's batch size: an integer from 1 to :data:`BATCH_SIZE_MAX`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("batch_size", f"must be an integer, not {type(value).__name__}")
    if not 1 <= value <= BATCH_SIZE_MAX:
        raise ValidationError(
            "batch_size", f"{value} is outside 1..{BATCH_SIZE_MAX:,}", limit=BATCH_SIZE_MAX
        )
    return value


def key(field: str, value: object, max_chars: int) -> str:
    """A key part (source, external id): a string within ``max_chars``, not blank, kept as
    given (surrounding white space is part of the key)."""
    checked = check.text(field, value, max_chars)
    if not checked.strip():
        raise ValidationError(field, "must not be blank")
    return checked


def prepare(
    limits: check.Limits,
    *,
    source: object,
    external_id: object,
    content: object,
    title: object = None,
    metadata: object = None,
) -> NewChunk:
    """Validate a chunk before anything is written."""
    checked_source = key("source", source, SOURCE_MAX)
    checked_id = key("external_id", external_id, EXTERNAL_ID_MAX)
    checked_title = check.optional_text("title", title, TITLE_MAX)
    checked_content = check.text("content", content, limits.max_content_chars)
    checked_metadata = check.metadata("metadata", metadata, limits)
    return NewChunk(
        source=checked_source,
        external_id=checked_id,
        title=checked_title,
        content=checked_content,
        metadata=checked_metadata,
        content_hash=content_hash(checked_title, checked_content, checked_metadata),
    )


_FIELDS: Final = frozenset(("source", "external_id", "title", "content", "metadata"))


def prepare_many(limits: check.Limits, chunks: object) -> list[NewChunk]:
    """Validate a bulk upsert; errors name the item (``chunks[12].content``). At most
    ``limits.max_batch_size`` chunks; a key given twice is an error."""
    if isinstance(chunks, str | bytes | Mapping) or not isinstance(chunks, Iterable):
        raise ValidationError("chunks", "must be an iterable of mappings")
    prepared: list[NewChunk] = []
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(chunks):
        where = f"chunks[{index}]"
        if len(prepared) >= limits.max_batch_size:
            raise ValidationError(
                "chunks",
                f"more than {limits.max_batch_size:,} chunks in one call",
                limit=limits.max_batch_size,
            )
        if not isinstance(item, Mapping):
            raise ValidationError(where, f"must be a mapping, not {type(item).__name__}")
        unknown = set(item) - _FIELDS
        if unknown:
            raise ValidationError(where, f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        missing = {"source", "external_id", "content"} - set(item)
        if missing:
            raise ValidationError(f"{where}.{sorted(missing)[0]}", "is required")
        try:
            new = prepare(limits, **item)
        except ValidationError as exc:
            raise ValidationError(f"{where}.{exc.field}", exc.problem, limit=exc.limit) from None
        first = seen.setdefault((new.source, new.external_id), index)
        if first != index:
            raise ValidationError(
                f"{where}.external_id",
                f"repeats chunks[{first}] (same source and external_id)",
            )
        prepared.append(new)
    return prepared


def _to_chunk(row: Row[Any]) -> KnowledgeChunk:
    return from_row(KnowledgeChunk, row)


def _by_key(
    conn: Connection, source: str, external_id: str, *, lock: bool = False
) -> KnowledgeChunk | None:
    query = select(*_COLUMNS).where(_k.source == source, _k.external_id == external_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _to_chunk(row)


def _json(document: dict[str, Any] | None) -> Any:
    """``document``, or SQL NULL (not JSON ``null``) for ``None``."""
    return null() if document is None else document


def _values(chunk: KnowledgeChunk) -> dict[str, Any]:
    return {
        "id": chunk.id,
        "source": chunk.source,
        "external_id": chunk.external_id,
        "title": chunk.title,
        "content": chunk.content,
        "metadata": _json(chunk.metadata),
        "content_hash": chunk.content_hash,
        "created_at": chunk.created_at,
        "updated_at": chunk.updated_at,
    }


def _fresh(new: NewChunk, chunk_id: uuid.UUID | None = None) -> KnowledgeChunk:
    now = utcnow()
    return KnowledgeChunk(
        id=_ids.new_id() if chunk_id is None else chunk_id,
        source=new.source,
        external_id=new.external_id,
        title=new.title,
        content=new.content,
        metadata=new.metadata,
        content_hash=new.content_hash,
        created_at=now,
        updated_at=now,
    )


def _is_unique(conn: Connection, exc: IntegrityError) -> bool:
    return backend_of(conn).violation(exc).kind == "unique"


def _changes(new: NewChunk, chunk_id: uuid.UUID, now: Any) -> dict[str, Any]:
    return {
        "b_id": chunk_id,
        "b_title": new.title,
        "b_content": new.content,
        "b_metadata": _json(new.metadata),
        "b_hash": new.content_hash,
        "b_now": now,
    }


def upsert(conn: Connection, new: NewChunk) -> KnowledgeChunk:
    """Insert the chunk, or update the stored one with its key when its hash differs. Safe
    against a racing upsert of the same key: the insert runs in a savepoint, and losing the
    race turns it into an update."""
    existing = _by_key(conn, new.source, new.external_id, lock=True)
    if existing is None:
        chunk = _fresh(new)
        try:
            with conn.begin_nested():
                conn.execute(knowledge_chunks.insert(), _values(chunk))
            return chunk
        except IntegrityError as exc:
            if not _is_unique(conn, exc):
                raise
        # Lost the race. Read without a lock first: an unchanged chunk (racers storing the same
        # document) needs none, and on InnoDB every loser still holds a shared lock on the row
        # from its failed insert, so their exclusive locks would deadlock each other.
        existing = _by_key(conn, new.source, new.external_id)
        if existing is not None and existing.content_hash != new.content_hash:
            existing = _by_key(conn, new.source, new.external_id, lock=True)
        if existing is None:  # inserted and deleted again while we waited
            raise TransientError("knowledge chunk changed concurrently") from None
    if existing.content_hash == new.content_hash:
        return existing
    now = utcnow()
    conn.execute(_UPDATE, _changes(new, existing.id, now))
    return replace(
        existing,
        title=new.title,
        content=new.content,
        metadata=new.metadata,
        content_hash=new.content_hash,
        updated_at=now,
    )


def _keys_of(batch: list[NewChunk]) -> Any:
    """A condition matching the stored chunks with the keys of ``batch``."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for new in batch:
        by_source[new.source].append(new.external_id)
    return or_(
        *((_k.source == source) & _k.external_id.in_(ids) for source, ids in by_source.items())
    )


def _upsert_batch(conn: Connection, batch: list[NewChunk], now: datetime) -> tuple[int, int, int]:
    """One batch: one SELECT of the stored keys and hashes, one executemany INSERT of the new
    chunks, one executemany UPDATE of the changed ones. Returns (inserted, updated,
    unchanged). ``now`` is the call's clock, the same on every attempt: a stored row that
    already holds the new text and was written at ``now`` was written by an earlier attempt
    of this call whose COMMIT went unanswered, and counts as that attempt counted it."""
    condition = _keys_of(batch)
    columns = (_k.source, _k.external_id, _k.id, _k.content_hash, _k.created_at, _k.updated_at)
    stored = {
        (row.source, row.external_id): row
        for row in conn.execute(select(*columns).where(condition))
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    inserted_before = updated_before = unchanged = 0
    for new in batch:
        found = stored.get((new.source, new.external_id))
        if found is None:
            inserts.append(_values(replace(_fresh(new), created_at=now, updated_at=now)))
        elif found.content_hash != new.content_hash:
            updates.append(_changes(new, found.id, now))
        elif found.updated_at == now:
            if found.created_at == now:
                inserted_before += 1
            else:
                updated_before += 1
        else:
            unchanged += 1
    if inserts:
        conn.execute(knowledge_chunks.insert(), inserts)
    if updates:
        conn.execute(_UPDATE, updates)
    return len(inserts) + inserted_before, len(updates) + updated_before, unchanged


def bulk_upsert(
    conn: Connection,
    chunks: list[NewChunk],
    batch_size: int,
    now: datetime,
    returned: _once.Returned[UpsertReport] | None = None,
) -> UpsertReport:
    """Upsert ``chunks`` in batches of ``batch_size``, all in the caller's one transaction,
    at ``now`` (the call's clock, kept across attempts). A batch that loses a race to insert
    one of its keys is rolled back to its savepoint and run again (it then sees the racer's
    row). ``returned`` keeps the report for :func:`upserted`."""
    inserted = updated = unchanged = 0
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        for attempt in range(1, _BATCH_ATTEMPTS + 1):
            try:
                with conn.begin_nested():
                    counts = _upsert_batch(conn, batch, now)
                break
            except IntegrityError as exc:
                if attempt == _BATCH_ATTEMPTS or not _is_unique(conn, exc):
                    raise
        inserted += counts[0]
        updated += counts[1]
        unchanged += counts[2]
    report = UpsertReport(inserted=inserted, updated=updated, unchanged=unchanged)
    return report if returned is None else returned.keep(report)


def _upserted(
    conn: Connection,
    drawn: list[Any],
    chunks: list[NewChunk],
    batch_size: int,
    now: datetime,
    returned: _once.Returned[UpsertReport],
) -> UpsertReport | _once.NotWritten:
    if returned.value is _once.NOT_WRITTEN:
        return _once.NOT_WRITTEN
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        wanted = {(new.source, new.external_id): new.content_hash for new in batch}
        query = select(_k.source, _k.external_id, _k.content_hash).where(_keys_of(batch))
        stored = {(row.source, row.external_id): row.content_hash for row in conn.execute(query)}
        if stored != wanted:
            return _once.NOT_WRITTEN
    return returned.value


def upserted(
    chunks: list[NewChunk],
    batch_size: int,
    now: datetime,
    returned: _once.Returned[UpsertReport],
) -> _once.Settle[UpsertReport]:
    """A bulk upsert committed when every chunk is stored as it wrote it: its report is then
    the attempt's. (A commit that lands after this check is counted by the re-run itself:
    :func:`_upsert_batch` knows the rows written at the call's ``now``.)"""
    return _once.Settle("knowledge upsert", _upserted, (chunks, batch_size, now, returned))


def get(conn: Connection, chunk_id: uuid.UUID) -> KnowledgeChunk:
    """One chunk by id."""
    row = conn.execute(select(*_COLUMNS).where(_k.id == chunk_id)).first()
    if row is None:
        raise NotFoundError("knowledge chunk", chunk_id)
    return _to_chunk(row)


#: A retried add learns whether an earlier attempt committed (see ``_once``).
ADDED: Final = _once.inserted("knowledge chunk", knowledge_chunks, KnowledgeChunk)


def add(conn: Connection, new: NewChunk) -> KnowledgeChunk:
    """Insert a chunk its caller gave no key: its ``external_id`` is its own id (32 hex
    digits), so it is listed, found and replaced like any other chunk."""
    chunk_id = _ids.new_id()
    chunk = _fresh(replace(new, external_id=chunk_id.hex), chunk_id)
    conn.execute(knowledge_chunks.insert(), _values(chunk))
    return chunk


def get_by_external_id(conn: Connection, external_id: str) -> KnowledgeChunk:
    """The one chunk with ``external_id``, whatever its source (an index look-up). Held by
    several sources: ConflictError, naming how many; the caller must name the source."""
    rows = conn.execute(select(*_COLUMNS).where(_k.external_id == external_id).limit(2)).all()
    if not rows:
        raise NotFoundError("knowledge chunk", external_id)
    if len(rows) > 1:
        held = conn.execute(
            select(func.count()).select_from(knowledge_chunks).where(_k.external_id == external_id)
        ).scalar_one()
        raise ConflictError(
            f"external_id {external_id!r} is held by {held} sources: name the source (get_by_key)",
            field="external_id",
        )
    return _to_chunk(rows[0])


#: Reads back the sort key of the all-sources listing's cursors: the chunk's id.
decode_all_cursor = _cursors.decoder("knowledge_all", _cursors.ID)


def page_all(
    conn: Connection,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[KnowledgeChunk]:
    """A keyset page of every source's chunks by id (creation order)."""
    return paginate(
        conn,
        select(*_COLUMNS),
        [_k.id],
        kind="knowledge_all",
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_chunk,
        cursor_key=lambda chunk: (chunk.id.hex,),
    )


def get_by_key(conn: Connection, source: str, external_id: str) -> KnowledgeChunk:
    """One chunk by ``(source, external_id)``."""
    chunk = _by_key(conn, source, external_id)
    if chunk is None:
        raise NotFoundError("knowledge chunk", f"{source!r}/{external_id!r}")
    return chunk


#: Reads back the sort key of this listing's cursors: the ``external_id`` of a knowledge document.
decode_cursor = _cursors.decoder(_KIND, _cursors.TEXT)


def page(
    conn: Connection,
    source: str,
    *,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[KnowledgeChunk]:
    """A keyset page of the source's chunks by ``external_id`` (the unique index's order)."""
    return paginate(
        conn,
        select(*_COLUMNS).where(_k.source == source),
        [_k.external_id],
        kind=_KIND,
        order="asc",
        after=after,
        before=before,
        limit=limit,
        convert=_to_chunk,
        cursor_key=lambda chunk: (chunk.external_id,),
    )


def delete_one(conn: Connection, chunk_id: uuid.UUID) -> None:
    """Delete one chunk; citations of it keep their row with ``chunk_id`` NULL."""
    if conn.execute(delete(knowledge_chunks).where(_k.id == chunk_id)).rowcount != 1:
        raise NotFoundError("knowledge chunk", chunk_id)


def delete_source(
    conn: Connection, source: str, returned: _once.Returned[int] | None = None
) -> int:
    """Delete every chunk of ``source``; returns how many (kept in ``returned`` for
    :func:`source_deleted`)."""
    count = int(conn.execute(delete(knowledge_chunks).where(_k.source == source)).rowcount)
    return count if returned is None else returned.keep(count)


def _source_deleted(
    conn: Connection, drawn: list[Any], source: str, returned: _once.Returned[int]
) -> int | _once.NotWritten:
    if returned.value is _once.NOT_WRITTEN:
        return _once.NOT_WRITTEN
    left = conn.execute(select(_k.id).where(_k.source == source).limit(1)).first()
    return _once.NOT_WRITTEN if left is not None else returned.value


def source_deleted(source: str, returned: _once.Returned[int]) -> _once.Settle[int]:
    """A delete of a source committed when none of its chunks is left: the count is the
    attempt's (a re-run would find nothing to delete and answer 0)."""
    return _once.Settle("knowledge source deletion", _source_deleted, (source, returned))
