# This file is generated from ../_async/_knowledge.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The knowledge resource: chunks of knowledge sources, for retrieval."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import _validate as check
from .._ops import knowledge as _knowledge
from .._ops._once import gone
from .._schema import EXTERNAL_ID_MAX, SOURCE_MAX, knowledge_chunks
from .._validate import Id
from ..records import KnowledgeChunk, Page, UpsertReport

if TYPE_CHECKING:
    from ._store import _Store

__all__ = ["Knowledge"]


class Knowledge:
    """Chunks of knowledge sources, unique by (source, external_id); bulk upserts skip chunks whose
    content did not change.

    A chunk's ``content_hash`` is the SHA-256 of the canonical JSON of its title, content and
    metadata, so a change of any of them counts as a change; an upsert that changes nothing
    writes nothing and keeps ``updated_at``.
    """

    def __init__(self, store: _Store) -> None:
        self._store = store

    def upsert(
        self,
        source: str,
        external_id: str,
        content: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> KnowledgeChunk:
        """Insert the chunk ``(source, external_id)``, or replace the stored one's title,
        content and metadata with these (``None`` clears). Unchanged: nothing is written and
        the stored chunk is returned. Safe when racing another upsert of the same key."""
        new = _knowledge.prepare(
            self._store.limits,
            source=source,
            external_id=external_id,
            content=content,
            title=title,
            metadata=metadata,
        )
        return self._store._call(_knowledge.upsert, new, write=True)

    def bulk_upsert(
        self, chunks: Iterable[Mapping[str, Any]], *, batch_size: int = 500
    ) -> UpsertReport:
        """Upsert many chunks (mappings with ``source``, ``external_id``, ``content`` and
        optionally ``title`` and ``metadata``) in one transaction: all of them or none.

        Everything is validated first: errors name the item (``chunks[12].content``), and a
        key given twice is an error. Then per ``batch_size`` chunks: one query for the stored
        hashes, one multi-row insert of new chunks, one batched update of changed ones;
        unchanged chunks are not written. At most ``Limits.max_batch_size`` chunks per call;
        ``batch_size`` is 1 to 10,000.
        """
        limits = self._store.limits
        size = _knowledge.batch_size(batch_size)
        prepared = _knowledge.prepare_many(limits, chunks)
        if not prepared:
            return UpsertReport(inserted=0, updated=0, unchanged=0)
        return self._store._call(_knowledge.bulk_upsert, prepared, size, write=True)

    def get(self, chunk_id: Id) -> KnowledgeChunk:
        """The chunk with this id."""
        key = check.identifier("chunk_id", chunk_id)
        return self._store._call(_knowledge.get, key)

    def get_by_key(self, source: str, external_id: str) -> KnowledgeChunk:
        """The chunk with this source and external id."""
        checked_source = _knowledge.key("source", source, SOURCE_MAX)
        checked_id = _knowledge.key("external_id", external_id, EXTERNAL_ID_MAX)
        return self._store._call(_knowledge.get_by_key, checked_source, checked_id)

    def list(
        self,
        source: str,
        *,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
    ) -> Page[KnowledgeChunk]:
        """A page of the source's chunks in ``external_id`` order (the database's collation:
        byte order on SQLite and MariaDB, the database collation on PostgreSQL). Follow
        ``after=page.last_cursor`` for the next page."""
        keys = check.paging(_knowledge.decode_cursor, after, before, limit, self._store.limits)
        checked_source = _knowledge.key("source", source, SOURCE_MAX)
        return self._store._call(
            _knowledge.page,
            checked_source,
            **keys,
        )

    def delete(self, chunk_id: Id) -> None:
        """Delete the chunk; citations of it stay, with ``chunk_id`` cleared."""
        key = check.identifier("chunk_id", chunk_id)
        self._store._call(
            _knowledge.delete_one,
            key,
            write=True,
            settle=gone("knowledge chunk", knowledge_chunks, key),
        )

    def delete_source(self, source: str) -> int:
        """Delete every chunk of ``source``; returns how many were deleted."""
        checked_source = _knowledge.key("source", source, SOURCE_MAX)
        return self._store._call(_knowledge.delete_source, checked_source, write=True)
