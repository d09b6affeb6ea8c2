"""Retrieval over knowledge chunks: embeddings, vector search, full-text, and both fused.

An embedding is stored with its chunk (``knowledge_chunks.embedding``: float32 little-endian,
the layout sqlite-vec and numpy read directly); the chunk's source fixes the dimension and
the metric (``knowledge_sources``). A changed chunk loses its embedding (see
``_ops/knowledge``).

Vector search is exact. Where the database can score the stored embeddings itself
(sqlite-vec on SQLite: :mod:`chatledger._vectors`) it returns the top k; elsewhere the
source's embeddings are read in batches of :data:`SCAN_BATCH` and scored with numpy when it
is installed (the ``vector`` extra), in pure Python otherwise. Both give the same chunks.
Hybrid search fuses the full-text ranking and the vector ranking by reciprocal rank
(``1 / (RRF_K + rank)`` summed over both lists).
"""

from __future__ import annotations

import heapq
import math
import re
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, and_, func, select, update

from .. import _fulltext
from .. import _validate as check
from .._backends import backend_of
from .._fulltext import BY_NAME
from .._schema import (
    EMBEDDING_DIMENSION_MAX,
    METRICS,
    SOURCE_MAX,
    knowledge_chunks,
    knowledge_sources,
)
from ..errors import ConflictError, NotFoundError, ValidationError
from ..records import ChunkHit, KnowledgeChunk, KnowledgeSource, VectorEngine
from . import search_syntax as syntax
from ._common import from_row, record_columns, utcnow

try:  # the ``vector`` extra
    import numpy
except ImportError:  # pragma: no cover - numpy is in the dev extra
    numpy = None  # type: ignore[assignment]

__all__ = [
    "RRF_K",
    "SCAN_BATCH",
    "Retrieval",
    "configure",
    "encode",
    "engine",
    "prepare_vector",
    "retrieve",
    "set_embeddings",
    "source_of",
]

#: Embeddings scored per batch of the exact scan.
SCAN_BATCH: Final = 4_096
#: The constant of reciprocal-rank fusion (the value of the original paper).
RRF_K: Final = 60
#: The most chunks one retrieval returns.
TOP_K_MAX: Final = 1_000
_COLUMNS: Final = record_columns(knowledge_chunks, KnowledgeChunk)
_SOURCE_COLUMNS: Final = record_columns(knowledge_sources, KnowledgeSource)
_k = knowledge_chunks.c
_METADATA_KEY: Final = re.compile(r"[A-Za-z0-9_]{1,64}")


def prepare_vector(field: str, value: object) -> tuple[float, ...]:
    """A vector: a sequence of finite numbers, 1 to :data:`EMBEDDING_DIMENSION_MAX` long."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        if numpy is not None and isinstance(value, numpy.ndarray):
            value = value.tolist()
        else:
            raise ValidationError(field, "must be a sequence of numbers")
    assert isinstance(value, Sequence)
    if not 1 <= len(value) <= EMBEDDING_DIMENSION_MAX:
        raise ValidationError(
            field,
            f"has {len(value)} numbers, not 1..{EMBEDDING_DIMENSION_MAX:,}",
            limit=EMBEDDING_DIMENSION_MAX,
        )
    numbers: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ValidationError(field, f"holds {type(item).__name__}, not a number")
        number = float(item)
        if not math.isfinite(number):
            raise ValidationError(field, "holds NaN or an infinity")
        numbers.append(number)
    return tuple(numbers)


def encode(vector: Sequence[float]) -> bytes:
    """A vector as float32 little-endian bytes."""
    return struct.pack(f"<{len(vector)}f", *vector)


def _decode(blob: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(blob) // 4}f", blob)


def source_of(conn: Connection, source: str) -> KnowledgeSource:
    """The embedding settings of ``source``."""
    row = conn.execute(select(*_SOURCE_COLUMNS).where(knowledge_sources.c.source == source)).first()
    if row is None:
        raise NotFoundError("knowledge source", source)
    return from_row(KnowledgeSource, row)


def configure(conn: Connection, source: str, dimension: int, metric: str) -> KnowledgeSource:
    """Set the dimension and metric of ``source``'s embeddings. Changing the dimension of a
    source that holds embeddings is a conflict (they would no longer fit)."""
    s = knowledge_sources.c
    row = conn.execute(select(*_SOURCE_COLUMNS).where(s.source == source).with_for_update()).first()
    if row is None:
        conn.execute(
            knowledge_sources.insert().values(
                source=source, dimension=dimension, metric=metric, created_at=utcnow()
            )
        )
        return source_of(conn, source)
    current = from_row(KnowledgeSource, row)
    if current.dimension != dimension:
        held = conn.execute(
            select(func.count())
            .select_from(knowledge_chunks)
            .where(_k.source == source, _k.embedding.is_not(None))
        ).scalar_one()
        if held:
            raise ConflictError(
                f"{source!r} holds {held} embeddings of dimension {current.dimension}",
                field="dimension",
            )
    conn.execute(
        update(knowledge_sources)
        .where(s.source == source)
        .values(dimension=dimension, metric=metric)
    )
    return source_of(conn, source)


def set_embeddings(
    conn: Connection, embeddings: Sequence[tuple[uuid.UUID, tuple[float, ...]]]
) -> int:
    """Store each chunk's embedding, checking its dimension against the chunk's source; all
    or none. Returns how many were stored."""
    if not embeddings:
        return 0
    ids = [chunk_id for chunk_id, _ in embeddings]
    found = dict(
        conn.execute(
            select(_k.id, knowledge_sources.c.dimension)
            .select_from(knowledge_chunks)
            .outerjoin(knowledge_sources, knowledge_sources.c.source == _k.source)
            .where(_k.id.in_(ids))
        ).all()
    )
    for index, (chunk_id, vector) in enumerate(embeddings):
        if chunk_id not in found:
            raise NotFoundError("knowledge chunk", chunk_id)
        dimension = found[chunk_id]
        if dimension is None:
            raise ConflictError(
                "the chunk's source has no embedding settings: configure it first",
                field="source",
            )
        if len(vector) != dimension:
            raise ValidationError(
                f"embeddings[{index}]",
                f"has {len(vector)} numbers; the source's dimension is {dimension}",
                limit=dimension,
            )
    for chunk_id, vector in embeddings:
        conn.execute(
            update(knowledge_chunks).where(_k.id == chunk_id).values(embedding=encode(vector))
        )
    return len(embeddings)


@dataclass(frozen=True, slots=True)
class Retrieval:
    """A validated retrieval: full-text ``query`` and/or ``vector`` over ``sources``."""

    sources: tuple[str, ...]
    query: syntax.Query | None
    vector: tuple[float, ...] | None
    metadata: dict[str, str | int | bool] | None
    k: int


def metadata_filter(field: str, value: object) -> dict[str, str | int | bool] | None:
    """Equality filters on top-level metadata keys: ``{"lang": "en", "version": 2}``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(field, "must be a mapping of key to value")
    checked: dict[str, str | int | bool] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
            raise ValidationError(field, f"key {key!r} is not 1-64 letters, digits or _")
        if not isinstance(item, str | int | bool):
            raise ValidationError(f"{field}.{key}", "must be a string, an integer or a bool")
        if isinstance(item, str):
            item = check.text(f"{field}.{key}", item, SOURCE_MAX)
        checked[key] = item
    return checked


def _conditions(retrieval: Retrieval) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [_k.source.in_(retrieval.sources)]
    for key, value in (retrieval.metadata or {}).items():
        element = _k.metadata[key]
        if isinstance(value, bool):
            conditions.append(element.as_boolean() == value)
        elif isinstance(value, int):
            conditions.append(element.as_integer() == value)
        else:
            conditions.append(element.as_string() == value)
    return conditions


def _text_ranking(
    conn: Connection, retrieval: Retrieval, limit: int
) -> list[tuple[uuid.UUID, float]]:
    assert retrieval.query is not None
    if retrieval.query.empty:
        return []
    fulltext = backend_of(conn).fulltext
    query = select(_k.id).select_from(knowledge_chunks)
    query, score = fulltext.apply(
        query, knowledge_chunks, BY_NAME["chunks"], _fulltext.shape(retrieval.query)
    )
    query = (
        query.where(and_(*_conditions(retrieval)))
        .add_columns(score)
        .order_by(score.desc(), _k.id)
        .limit(limit)
    )
    params = fulltext.params(retrieval.query)
    return [(row[0], float(row[1] or 0.0)) for row in conn.execute(query, params)]


def _similarity(metric: str, query: Any, norm: float) -> Any:
    """Scores of a batch of embeddings (a numpy matrix) against ``query``: higher is closer."""
    if metric == "dot":
        return lambda matrix: matrix @ query
    if metric == "cosine":

        def cosine(matrix: Any) -> Any:
            norms = numpy.linalg.norm(matrix, axis=1) * norm
            return (matrix @ query) / numpy.where(norms == 0, 1.0, norms)

        return cosine
    return lambda matrix: -numpy.linalg.norm(matrix - query, axis=1)


def _python_similarity(metric: str, query: Sequence[float], vector: Sequence[float]) -> float:
    dot = sum(a * b for a, b in zip(query, vector, strict=True))
    if metric == "dot":
        return dot
    if metric == "cosine":
        norms = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in vector))
        return dot / norms if norms else 0.0
    return -math.sqrt(sum((a - b) ** 2 for a, b in zip(query, vector, strict=True)))


def _vector_ranking(
    conn: Connection, retrieval: Retrieval, metric: str, limit: int
) -> list[tuple[uuid.UUID, float]]:
    """The ``limit`` chunks closest to the query vector: scored by the database when it
    can (:mod:`chatledger._vectors`), else by :func:`exact_ranking`."""
    assert retrieval.vector is not None
    ranked = backend_of(conn).vectors.rank(
        conn, _conditions(retrieval), encode(retrieval.vector), metric, limit
    )
    if ranked is not None:
        return ranked
    return exact_ranking(conn, retrieval, metric, limit)


def exact_ranking(
    conn: Connection, retrieval: Retrieval, metric: str, limit: int
) -> list[tuple[uuid.UUID, float]]:
    """The ``limit`` chunks closest to the query vector, by an exact scan in batches."""
    assert retrieval.vector is not None
    conditions = [_k.embedding.is_not(None), *_conditions(retrieval)]
    best: list[tuple[float, str, uuid.UUID]] = []
    last: uuid.UUID | None = None
    target: Any = None if numpy is None else numpy.asarray(retrieval.vector, dtype=numpy.float32)
    while True:
        # A page of ids (the keyset), then their embeddings by joining that page back,
        # unordered: sorting rows that carry the blobs is costly (SQLite copies them into a
        # sorter), and the last id of the page is the next keyset position.
        ids = select(_k.id).where(*conditions)
        if last is not None:
            ids = ids.where(_k.id > last)
        ids = ids.order_by(_k.id).limit(SCAN_BATCH)
        position = conn.execute(ids.offset(SCAN_BATCH - 1).limit(1)).scalar()
        page = ids.subquery("page")
        batch = conn.execute(
            select(page.c.id, _k.embedding).join_from(page, knowledge_chunks, _k.id == page.c.id)
        ).all()
        if not batch:
            break
        last = position
        if target is not None:
            score = _similarity(metric, target, float(numpy.linalg.norm(target)))
            matrix = numpy.frombuffer(b"".join(bytes(row[1]) for row in batch), dtype="<f4")
            scores = score(matrix.reshape(len(batch), -1))
            # The batch is in no particular order: keep every row tied with the
            # limit-th score, so ties still go to the smaller id.
            if len(batch) > limit:
                floor = numpy.partition(scores, len(batch) - limit)[len(batch) - limit]
                candidates = numpy.flatnonzero(scores >= floor)
            else:
                candidates = numpy.arange(len(batch))
            for index in candidates:
                _keep(best, float(scores[index]), batch[int(index)][0], limit)
        else:  # pragma: no cover - numpy is in the dev extra
            for chunk_id, blob in batch:
                value = _python_similarity(metric, retrieval.vector, _decode(bytes(blob)))
                _keep(best, value, chunk_id, limit)
        if position is None:
            break
    ordered = sorted(best, key=lambda item: (-item[0], item[2].hex))
    return [(chunk_id, value) for value, _, chunk_id in ordered]


def _keep(
    best: list[tuple[float, str, uuid.UUID]], value: float, chunk_id: uuid.UUID, limit: int
) -> None:
    """Keep the ``limit`` highest scores in the min-heap ``best`` (ties: the smaller id)."""
    item = (value, _tiebreak(chunk_id), chunk_id)
    if len(best) < limit:
        heapq.heappush(best, item)
    elif (value, item[1]) > best[0][:2]:
        heapq.heapreplace(best, item)


def _tiebreak(chunk_id: uuid.UUID) -> str:
    # Inverted hex, so the min-heap evicts the larger id first on equal scores.
    return chunk_id.hex.translate(_INVERT)


_INVERT: Final = str.maketrans("0123456789abcdef", "fedcba9876543210")


def retrieve(conn: Connection, retrieval: Retrieval) -> list[ChunkHit]:
    """The top ``k`` chunks: by full text, by vector, or both fused by reciprocal rank."""
    metric = None
    if retrieval.vector is not None:
        settings = [source_of(conn, source) for source in retrieval.sources]
        for settings_of in settings:
            if settings_of.dimension != len(retrieval.vector):
                raise ValidationError(
                    "vector",
                    f"has {len(retrieval.vector)} numbers; {settings_of.source!r} has "
                    f"dimension {settings_of.dimension}",
                    limit=settings_of.dimension,
                )
        metrics = {settings_of.metric for settings_of in settings}
        if len(metrics) > 1:
            raise ValidationError("sources", "mix metrics: search one metric at a time")
        (metric,) = metrics
    hybrid = retrieval.query is not None and retrieval.vector is not None
    depth = min(TOP_K_MAX, retrieval.k * 4) if hybrid else retrieval.k
    text = _text_ranking(conn, retrieval, depth) if retrieval.query is not None else []
    vector = (
        _vector_ranking(conn, retrieval, metric, depth)
        if retrieval.vector is not None and metric is not None
        else []
    )
    text_ranks = {chunk_id: rank for rank, (chunk_id, _) in enumerate(text, 1)}
    vector_ranks = {chunk_id: rank for rank, (chunk_id, _) in enumerate(vector, 1)}
    if hybrid:
        fused: dict[uuid.UUID, float] = {}
        for ranks in (text_ranks, vector_ranks):
            for chunk_id, rank in ranks.items():
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
        scored = sorted(fused.items(), key=lambda item: (-item[1], str(item[0])))
    else:
        scored = text or vector
    scored = scored[: retrieval.k]
    chunks = _chunks(conn, [chunk_id for chunk_id, _ in scored])
    return [
        ChunkHit(
            chunks[chunk_id],
            rank,
            value,
            text_ranks.get(chunk_id),
            vector_ranks.get(chunk_id),
        )
        for rank, (chunk_id, value) in enumerate(scored, 1)
        if chunk_id in chunks
    ]


def _chunks(conn: Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, KnowledgeChunk]:
    if not ids:
        return {}
    rows = conn.execute(select(*_COLUMNS).where(_k.id.in_(ids)))
    return {row[0]: from_row(KnowledgeChunk, row) for row in rows}


def engine(conn: Connection) -> VectorEngine:
    """The engine that scores vectors on this connection, and the vector extensions the
    database offers."""
    vectors = backend_of(conn).vectors
    found = vectors.engine(conn)
    if found is None:
        found = ("python", None) if numpy is None else ("numpy", numpy.__version__)
    name, version = found
    return VectorEngine(name, version, True, vectors.extensions(conn))


def check_metric(value: object) -> str:
    """A metric name: cosine, l2 or dot."""
    return check.choice("metric", value, METRICS)
