# This file is generated from ../_async/_knowledge.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The knowledge resource: chunks of knowledge sources, for retrieval."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .. import _validate as check
from .._ops import knowledge as _knowledge
from .._ops import retrieval as _retrieval
from .._ops import search_syntax as _syntax
from .._ops._common import utcnow
from .._ops._once import Returned, gone
from .._run.compat_sync import embed
from .._schema import EMBEDDING_DIMENSION_MAX, EXTERNAL_ID_MAX, SOURCE_MAX, knowledge_chunks
from .._validate import Id
from ..errors import ValidationError
from ..records import (
    ChunkHit,
    KnowledgeChunk,
    KnowledgeSource,
    Order,
    Page,
    UpsertReport,
    VectorEngine,
)

if TYPE_CHECKING:
    from ._store import _Store

__all__ = ["Knowledge"]

#: Stands in for the key of a chunk added without one while it is validated (the operation
#: gives it its id).
_UNKEYED = "0" * 32


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

    def add(
        self,
        source: str,
        content: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> KnowledgeChunk:
        """Insert a chunk without a key of the application's (a plain insert): its
        ``external_id`` is its own id as 32 hex digits, so it is listed, found by
        :meth:`get_by_external_id` and replaced by :meth:`upsert` like any other chunk."""
        new = _knowledge.prepare(
            self._store.limits,
            source=source,
            external_id=_UNKEYED,
            content=content,
            title=title,
            metadata=metadata,
        )
        return self._store._call(_knowledge.add, new, write=True, settle=_knowledge.ADDED)

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
        returned: Returned[UpsertReport] = Returned()
        now = utcnow()
        return self._store._call(
            _knowledge.bulk_upsert,
            prepared,
            size,
            now,
            returned,
            write=True,
            settle=_knowledge.upserted(prepared, size, now, returned),
        )

    def get(self, chunk_id: Id) -> KnowledgeChunk:
        """The chunk with this id."""
        key = check.identifier("chunk_id", chunk_id)
        return self._store._call(_knowledge.get, key)

    def get_by_key(self, source: str, external_id: str) -> KnowledgeChunk:
        """The chunk with this source and external id."""
        checked_source = _knowledge.key("source", source, SOURCE_MAX)
        checked_id = _knowledge.key("external_id", external_id, EXTERNAL_ID_MAX)
        return self._store._call(_knowledge.get_by_key, checked_source, checked_id)

    def get_by_external_id(self, external_id: str) -> KnowledgeChunk:
        """The chunk with this external id, whatever its source (an index look-up). When
        several sources hold it: ConflictError (field ``external_id``); use
        :meth:`get_by_key`."""
        checked = _knowledge.key("external_id", external_id, EXTERNAL_ID_MAX)
        return self._store._call(_knowledge.get_by_external_id, checked)

    def list_all(
        self,
        *,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "asc",
    ) -> Page[KnowledgeChunk]:
        """A page of every source's chunks in creation order (oldest first by default), read
        by primary key. Follow ``after=page.last_cursor`` for the next page."""
        keys = check.paging(_knowledge.decode_all_cursor, after, before, limit, self._store.limits)
        return self._store._call(_knowledge.page_all, order=check.order(order), **keys)

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
        returned: Returned[int] = Returned()
        return self._store._call(
            _knowledge.delete_source,
            checked_source,
            returned,
            write=True,
            settle=_knowledge.source_deleted(checked_source, returned),
        )

    # -- retrieval ------------------------------------------------------------------------

    def configure(
        self, source: str, *, dimension: int, metric: Literal["cosine", "l2", "dot"] = "cosine"
    ) -> KnowledgeSource:
        """Set the dimension and metric of ``source``'s embeddings (before embedding its
        chunks). Changing the dimension while embeddings are stored is a ConflictError."""
        checked_source = _knowledge.key("source", source, SOURCE_MAX)
        checked = check.count("dimension", dimension)
        if checked is None or not 1 <= checked <= EMBEDDING_DIMENSION_MAX:
            raise ValidationError(
                "dimension",
                f"must be 1..{EMBEDDING_DIMENSION_MAX:,}",
                limit=EMBEDDING_DIMENSION_MAX,
            )
        chosen = _retrieval.check_metric(metric)
        return self._store._call(_retrieval.configure, checked_source, checked, chosen, write=True)

    def embed(self, embeddings: Mapping[Id, Sequence[float]]) -> int:
        """Store embeddings, ``{chunk_id: vector}``, all or none: each vector must have its
        source's dimension and hold finite numbers. A chunk whose title, content or metadata
        change later loses its embedding. Returns how many were stored."""
        if not isinstance(embeddings, Mapping):
            raise ValidationError("embeddings", "must be a mapping of chunk id to vector")
        checked = [
            (
                check.identifier("embeddings", chunk_id),
                _retrieval.prepare_vector(f"embeddings[{index}]", vector),
            )
            for index, (chunk_id, vector) in enumerate(embeddings.items())
        ]
        return self._store._call(_retrieval.set_embeddings, checked, write=True)

    def embed_chunks(
        self,
        chunks: Sequence[KnowledgeChunk],
        embedder: Callable[[builtins.list[str]], Any],
    ) -> int:
        """Embed the chunks' contents with ``embedder`` (sync or async, texts -> vectors) and
        store the vectors (see :meth:`embed`)."""
        items = list(chunks)
        if not items:
            return 0
        vectors = embed(embedder, [chunk.content for chunk in items])
        if len(vectors) != len(items):
            raise ValidationError(
                "embedder", f"returned {len(vectors)} vectors for {len(items)} texts"
            )
        return self.embed({chunk.id: vector for chunk, vector in zip(items, vectors, strict=True)})

    def retrieve(
        self,
        query: str | None = None,
        *,
        sources: str | Sequence[str],
        vector: Sequence[float] | None = None,
        embedder: Callable[[builtins.list[str]], Any] | None = None,
        metadata: Mapping[str, str | int | bool] | None = None,
        k: int = 10,
    ) -> builtins.list[ChunkHit]:
        """The top ``k`` chunks of ``sources`` for ``query`` (full-text), ``vector`` (by the
        sources' metric), or both, fused by reciprocal rank (hybrid). With ``embedder`` and
        no ``vector``, the query is embedded to search both ways. ``metadata`` keeps chunks
        whose top-level metadata keys equal the values given. Vector search is exact
        (``docs/search.md``)."""
        names = (sources,) if isinstance(sources, str) else tuple(sources)
        if not names:
            raise ValidationError("sources", "must name at least one source")
        checked_sources = tuple(_knowledge.key("sources", name, SOURCE_MAX) for name in names)
        parsed = None if query is None else _syntax.parse(query)
        if vector is None and embedder is not None and query is not None:
            (vector,) = embed(embedder, [query])
        checked_vector = None if vector is None else _retrieval.prepare_vector("vector", vector)
        if parsed is None and checked_vector is None:
            raise ValidationError("query", "give a query, a vector, or both")
        size = check.count("k", k)
        if size is None or not 1 <= size <= _retrieval.TOP_K_MAX:
            raise ValidationError(
                "k", f"must be 1..{_retrieval.TOP_K_MAX:,}", limit=_retrieval.TOP_K_MAX
            )
        retrieval = _retrieval.Retrieval(
            sources=checked_sources,
            query=parsed,
            vector=checked_vector,
            metadata=_retrieval.metadata_filter("metadata", metadata),
            k=size,
        )
        return self._store._call(_retrieval.retrieve, retrieval)

    def vector_engine(self) -> VectorEngine:
        """What scores vector searches on this database (sqlite-vec inside SQLite, or an
        exact numpy scan) and which vector extensions the database offers; see
        ``docs/search.md``."""
        return self._store._call(_retrieval.engine)
