"""Retrieval over knowledge chunks: embeddings checked against their source's dimension, exact
vector search (checked against a brute-force ranking), full-text over chunks, hybrid fusion,
metadata filters, citations from a retrieval, and bad vectors. The engines in the database
(sqlite-vec) return what the exact scan returns; pgvector / MariaDB VECTOR are detected."""

from __future__ import annotations

import math
import random
import sqlite3
from types import SimpleNamespace
from typing import Any

import numpy
import pytest
import sqlalchemy as sa

from chatledger import (
    ConflictError,
    HashingEmbedder,
    Ledger,
    NotFoundError,
    ValidationError,
    _vectors,
)
from chatledger._backends import SQLITE_LIBRARY_VAR, sqlite_library
from chatledger._ops import retrieval

SOURCE = "handbook"
TEXTS = [
    "Reset your password from the account settings page",
    "Billing happens monthly and invoices are emailed",
    "Password rules: twelve characters and one digit",
    "The office is closed on public holidays",
    "Two-factor login protects your account",
    "Invoices can be downloaded as PDF from billing",
]


@pytest.fixture
def handbook(store: Any) -> list[Any]:
    kb = store.knowledge
    kb.configure(SOURCE, dimension=8, metric="cosine")
    chunks = [
        kb.upsert(SOURCE, f"c{i}", text, metadata={"team": "it" if i % 2 == 0 else "finance"})
        for i, text in enumerate(TEXTS)
    ]
    rng = random.Random(7)
    vectors = {chunk.id: [rng.uniform(-1, 1) for _ in range(8)] for chunk in chunks}
    assert kb.embed(vectors) == len(chunks)
    return [(chunk, vectors[chunk.id]) for chunk in chunks]


def _brute_force(pairs: list[Any], query: list[float], metric: str) -> list[str]:
    def score(vector: list[float]) -> float:
        return retrieval._python_similarity(metric, query, vector)

    ranked = sorted(pairs, key=lambda pair: (-score(pair[1]), pair[0].id.hex))
    return [chunk.external_id for chunk, _ in ranked]


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_vector_search_is_exact(store, handbook, metric):
    store.knowledge.configure(SOURCE, dimension=8, metric=metric)
    query = [0.3, -0.2, 0.9, 0.1, -0.5, 0.4, 0.0, 0.7]
    hits = store.knowledge.retrieve(sources=SOURCE, vector=query, k=4)
    assert [hit.chunk.external_id for hit in hits] == _brute_force(handbook, query, metric)[:4]
    assert [hit.rank for hit in hits] == [1, 2, 3, 4]
    assert all(hit.vector_rank == hit.rank and hit.text_rank is None for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_text_and_hybrid_search(store, handbook):
    kb = store.knowledge
    text = kb.retrieve("invoices", sources=SOURCE)
    assert {hit.chunk.external_id for hit in text} == {"c1", "c5"}
    query = handbook[0][1]  # c0's own vector: the vector part ranks c0 first
    hybrid = kb.retrieve("password", sources=SOURCE, vector=query, k=3)
    assert hybrid[0].chunk.external_id == "c0"
    assert hybrid[0].text_rank is not None
    assert hybrid[0].vector_rank == 1
    expected = 1 / (retrieval.RRF_K + hybrid[0].text_rank) + 1 / (retrieval.RRF_K + 1)
    assert math.isclose(hybrid[0].score, expected)
    finance = kb.retrieve("invoices billing", sources=SOURCE, metadata={"team": "finance"})
    assert {hit.chunk.external_id for hit in finance} == {"c1", "c5"}
    assert kb.retrieve("password", sources=SOURCE, metadata={"team": "finance"}) == []


def test_an_embedder_embeds_chunks_and_queries(store):
    embedder = HashingEmbedder(256)
    kb = store.knowledge
    kb.configure("faq", dimension=256)
    chunks = [kb.upsert("faq", f"q{i}", text) for i, text in enumerate(TEXTS)]
    assert kb.embed_chunks(chunks, embedder) == len(chunks)
    hits = kb.retrieve("password rules", sources="faq", embedder=embedder, k=2)
    assert hits[0].chunk.external_id == "q2"


def test_a_changed_chunk_loses_its_embedding(store, handbook):
    kb = store.knowledge
    _, vector = handbook[0]
    kb.upsert(SOURCE, "c0", "Reset your password from the profile page")
    hits = kb.retrieve(sources=SOURCE, vector=vector, k=10)
    assert "c0" not in {hit.chunk.external_id for hit in hits}


def test_a_retrieval_becomes_the_citations_of_the_answer(store, user, handbook):
    chat = store.conversations.create(user.id)
    answer = store.messages.append(chat.id, "assistant", "See the billing page.")
    hits = store.knowledge.retrieve("invoices", sources=SOURCE)
    stored = store.as_user(user.id).citations.cite(answer.id, hits)
    cited = store.citations.for_message(answer.id)
    assert [(c.chunk_id, c.rank, c.score) for c in cited] == [
        (hit.chunk.id, hit.rank, pytest.approx(hit.score)) for hit in hits
    ]
    assert len(stored) == len(hits)


@pytest.mark.parametrize(
    ("vector", "field"),
    [
        ([1.0] * 3, "vector"),
        ([float("nan")] * 8, "vector"),
        ([float("inf")] * 8, "vector"),
        (["a"] * 8, "vector"),
        ("12345678", "vector"),
        ([], "vector"),
    ],
)
def test_bad_vectors_are_validation_errors(store, handbook, vector, field):
    with pytest.raises(ValidationError) as caught:
        store.knowledge.retrieve(sources=SOURCE, vector=vector)
    assert caught.value.field == field


def test_bad_embeddings_and_settings(store, handbook):
    kb = store.knowledge
    chunk, _ = handbook[0]
    with pytest.raises(ValidationError) as caught:
        kb.embed({chunk.id: [1.0, 2.0]})
    assert caught.value.field == "embeddings[0]"
    with pytest.raises(ConflictError):
        kb.configure(SOURCE, dimension=16)
    with pytest.raises(ValidationError) as caught:
        kb.configure(SOURCE, dimension=8, metric="manhattan")
    assert caught.value.field == "metric"
    with pytest.raises(NotFoundError):
        kb.retrieve(sources="unknown", vector=[0.0] * 8)
    with pytest.raises(ValidationError) as caught:
        kb.retrieve(sources=SOURCE)
    assert caught.value.field == "query"
    with pytest.raises(ValidationError) as caught:
        kb.retrieve("password", sources=SOURCE, k=0)
    assert caught.value.field == "k"
    unconfigured = kb.upsert("loose", "x", "text")
    with pytest.raises(ConflictError):
        kb.embed({unconfigured.id: [0.0] * 8})


def _exact_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vector searches take the exact scan even where the database has an engine."""
    monkeypatch.setattr(_vectors.SQLiteVectors, "rank", _vectors.Vectors.rank)


def test_the_exact_scan_reads_in_batches(store, handbook, monkeypatch):
    _exact_only(monkeypatch)
    monkeypatch.setattr(retrieval, "SCAN_BATCH", 2)
    query = [0.3, -0.2, 0.9, 0.1, -0.5, 0.4, 0.0, 0.7]
    hits = store.knowledge.retrieve(sources=SOURCE, vector=query, k=6)
    assert [hit.chunk.external_id for hit in hits] == _brute_force(handbook, query, "cosine")


@pytest.fixture
def library(store: Any) -> list[Any]:
    """120 chunks of 16 dimensions in two sources, one embedding the zero vector."""
    kb = store.knowledge
    rng = random.Random(16)
    vectors = {}
    for source in ("lib-a", "lib-b"):
        kb.configure(source, dimension=16, metric="cosine")
        kb.bulk_upsert(
            {
                "source": source,
                "external_id": str(n),
                "content": f"volume {n} of {source}",
                "metadata": {"shelf": n % 3},
            }
            for n in range(60)
        )
        for n in range(60):
            chunk = kb.get_by_key(source, str(n))
            vectors[chunk.id] = [rng.gauss(0, 1) for _ in range(16)] if n else [0.0] * 16
    kb.embed(vectors)
    return [rng.gauss(0, 1) for _ in range(16)]


def _retrievals(store: Any, query: list[float]) -> list[list[tuple[str, float, int | None]]]:
    kb = store.knowledge
    found = []
    for metric in ("cosine", "l2", "dot"):
        for source in ("lib-a", "lib-b"):
            kb.configure(source, dimension=16, metric=metric)
        for vector in (query, [0.0] * 16):
            for options in ({}, {"metadata": {"shelf": 1}}, {"sources": "lib-b"}):
                hits = kb.retrieve(
                    **{"sources": ["lib-a", "lib-b"], "vector": vector, "k": 15, **options}
                )
                found.append([(h.chunk.external_id, h.score, h.vector_rank) for h in hits])
        hybrid = kb.retrieve("volume", sources=["lib-a", "lib-b"], vector=query, k=15)
        found.append([(h.chunk.external_id, h.score, h.vector_rank) for h in hybrid])
    return found


def _same(engine: list[Any], exact: list[Any]) -> None:
    for got, expected in zip(engine, exact, strict=True):
        assert [(key, rank) for key, _, rank in got] == [(key, rank) for key, _, rank in expected]
        assert [score for _, score, _ in got] == pytest.approx(
            [score for _, score, _ in expected], rel=1e-5, abs=1e-5
        )


def test_the_engine_in_the_database_returns_what_the_exact_scan_returns(
    store, library, monkeypatch
):
    engine = store.knowledge.vector_engine()
    assert engine.exact
    accelerated = _retrievals(store, library)
    _exact_only(monkeypatch)
    _same(accelerated, _retrievals(store, library))


def test_the_vector_engine_reports_what_the_database_offers(store, database_url):
    engine = store.knowledge.vector_engine()
    backend = database_url.get_backend_name()
    if backend == "sqlite":
        loadable = hasattr(sqlite_library().connect(":memory:"), "enable_load_extension")
        assert engine.name == ("sqlite-vec" if loadable else "numpy")
        assert engine.extensions == ((f"sqlite-vec {engine.version}",) if loadable else ())
        return
    assert (engine.name, engine.version) == ("numpy", numpy.__version__)
    probe = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with probe.connect() as conn:
        if backend == "postgresql":
            version = conn.exec_driver_sql(
                "SELECT installed_version FROM pg_available_extensions WHERE name = 'vector'"
            ).scalar()
            assert engine.extensions == ((f"pgvector {version}",) if version else ())
        else:
            server = conn.dialect.server_version_info or ()
            vector = tuple(server[:2]) >= (11, 7)
            assert engine.extensions == ((engine.extensions[0],) if vector else ())
    probe.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_pgvector_is_detected_from_the_catalog(database_url):
    # The CI servers cannot install pgvector: a catalog table of the same name, found first
    # on the search path, stands in for the extension's row.
    probe = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with probe.begin() as conn:
        assert _vectors.PostgresVectors().extensions(conn) == ()
        conn.exec_driver_sql("CREATE SCHEMA catalog_double")
        conn.exec_driver_sql(
            "CREATE TABLE catalog_double.pg_extension (extname name, extversion text)"
        )
        conn.exec_driver_sql("INSERT INTO catalog_double.pg_extension VALUES ('vector', '0.8.0')")
        conn.exec_driver_sql("SET LOCAL search_path = catalog_double, pg_catalog")
        assert _vectors.PostgresVectors().extensions(conn) == ("pgvector 0.8.0",)
        conn.exec_driver_sql("DROP SCHEMA catalog_double CASCADE")
    probe.dispose()


@pytest.mark.parametrize(
    ("version", "found"),
    [
        ((10, 11, 6, "MariaDB"), ()),
        ((11, 4, 2), ()),
        ((11, 7, 1), ("mariadb-vector 11.7.1",)),
        ((12, 0, 0), ("mariadb-vector 12.0.0",)),
    ],
)
def test_mariadb_vector_is_detected_from_the_server_version(version, found):
    conn: Any = SimpleNamespace(dialect=SimpleNamespace(server_version_info=version))
    assert _vectors.MariaDBVectors().extensions(conn) == found


def test_sqlite_vec_falls_back_when_the_library_cannot_load_it(tmp_path, monkeypatch):
    """Debian's sqlite3 module cannot load extensions: the same file opened with it scans
    exactly and returns what sqlite-vec returned."""
    system = sqlite3.connect(":memory:")
    loadable = hasattr(system, "enable_load_extension")
    if not loadable:
        assert _vectors.load_sqlite_vec(system) == ""
    system.close()
    url = f"sqlite:///{tmp_path / 'vectors.db'}"
    results = {}
    for choice in ("bundled", "system"):
        monkeypatch.setenv(SQLITE_LIBRARY_VAR, choice)
        with Ledger(url) as store:
            if choice == "bundled":
                kb = store.knowledge
                kb.configure("lib", dimension=4, metric="l2")
                chunks = [kb.upsert("lib", str(n), f"text {n}") for n in range(50)]
                rng = random.Random(4)
                kb.embed({c.id: [rng.uniform(-1, 1) for _ in range(4)] for c in chunks})
            engine = store.knowledge.vector_engine()
            hits = store.knowledge.retrieve(sources="lib", vector=[0.1, 0.2, -0.3, 0.4], k=10)
            results[choice] = (engine.name, [(h.chunk.external_id, h.score) for h in hits])
    assert results["bundled"][0] == "sqlite-vec"
    assert results["system"][0] == ("sqlite-vec" if loadable else "numpy")
    bundled, system_hits = results["bundled"][1], results["system"][1]
    assert [key for key, _ in bundled] == [key for key, _ in system_hits]
    assert [s for _, s in bundled] == pytest.approx([s for _, s in system_hits], rel=1e-5)
