"""Retrieval over knowledge chunks: embeddings checked against their source's dimension, exact
vector search (checked against a brute-force ranking), full-text over chunks, hybrid fusion,
metadata filters, citations from a retrieval, and bad vectors."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from chatledger import ConflictError, HashingEmbedder, NotFoundError, ValidationError
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


def test_the_exact_scan_reads_in_batches(store, handbook, monkeypatch):
    monkeypatch.setattr(retrieval, "SCAN_BATCH", 2)
    query = [0.3, -0.2, 0.9, 0.1, -0.5, 0.4, 0.0, 0.7]
    hits = store.knowledge.retrieve(sources=SOURCE, vector=query, k=6)
    assert [hit.chunk.external_id for hit in hits] == _brute_force(handbook, query, "cosine")
