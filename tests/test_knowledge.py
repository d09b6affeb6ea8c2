"""Knowledge chunks: upserts that skip unchanged chunks, bulk upserts, reads, pages, deletes."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import ConflictError, Limits, NotFoundError, UpsertReport, ValidationError
from chatledger._ops.knowledge import content_hash
from chatledger._schema import knowledge_chunks

from ._threads import run_threads

THREADS = 8


@pytest.fixture
def raw(database_url: URL) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def _count(raw: sa.Engine) -> int:
    with raw.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(knowledge_chunks)).scalar_one()
        )


def _all(kb: Any, source: str) -> list[Any]:
    chunks: list[Any] = []
    after = None
    while True:
        page = kb.list(source, limit=1000, after=after)
        chunks += page.items
        if not page.has_more:
            return chunks
        after = page.last_cursor


# -- upsert ---------------------------------------------------------------------------------


def test_upsert_inserts_then_reads_back(store):
    kb = store.knowledge
    chunk = kb.upsert(
        "handbook", "ch1#0", "Refunds take 5 days.", title="Refunds", metadata={"page": 3}
    )

    assert (chunk.source, chunk.external_id, chunk.title) == ("handbook", "ch1#0", "Refunds")
    assert chunk.content == "Refunds take 5 days."
    assert chunk.metadata == {"page": 3}
    assert chunk.content_hash == content_hash("Refunds", "Refunds take 5 days.", {"page": 3})
    assert chunk.created_at == chunk.updated_at
    assert kb.get(chunk.id) == chunk
    assert kb.get(str(chunk.id)) == chunk
    assert kb.get_by_key("handbook", "ch1#0") == chunk


def test_unchanged_upsert_writes_nothing(store):
    kb = store.knowledge
    first = kb.upsert("s", "e", "same", title="t", metadata={"a": 1, "b": [1, 2]})
    time.sleep(0.002)
    again = kb.upsert("s", "e", "same", title="t", metadata={"b": [1, 2], "a": 1})
    assert again == first
    assert kb.get(first.id).updated_at == first.updated_at


@pytest.mark.parametrize(
    "change",
    [
        {"content": "new content"},
        {"title": "new title"},
        {"title": None},
        {"metadata": {"a": 2}},
        {"metadata": None},
    ],
)
def test_a_change_of_content_title_or_metadata_updates(store, change):
    kb = store.knowledge
    fields: dict[str, Any] = {"content": "old", "title": "t", "metadata": {"a": 1}}
    first = kb.upsert("s", "e", **fields)
    time.sleep(0.002)
    fields.update(change)
    updated = kb.upsert("s", "e", **fields)

    assert updated.id == first.id
    assert updated.created_at == first.created_at
    assert updated.updated_at > first.updated_at
    assert (updated.content, updated.title, updated.metadata) == (
        fields["content"],
        fields["title"],
        fields["metadata"],
    )
    assert updated.content_hash != first.content_hash
    assert kb.get(first.id) == updated


def test_keys_are_exact(store):
    kb = store.knowledge
    a = kb.upsert("s", "k", "a")
    b = kb.upsert("s", "k ", "b")
    c = kb.upsert("S", "k", "c")
    d = kb.upsert("s", "K", "d")
    assert len({a.id, b.id, c.id, d.id}) == 4
    assert kb.get_by_key("s", "k ").content == "b"


@pytest.mark.parametrize(
    ("field", "call", "limit"),
    [
        ("source", lambda kb: kb.upsert("s" * 201, "e", "c"), 200),
        ("source", lambda kb: kb.upsert("  ", "e", "c"), None),
        ("source", lambda kb: kb.upsert(None, "e", "c"), None),
        ("external_id", lambda kb: kb.upsert("s", "e" * 256, "c"), 255),
        ("external_id", lambda kb: kb.upsert("s", "", "c"), None),
        ("title", lambda kb: kb.upsert("s", "e", "c", title="t" * 501), 500),
        ("content", lambda kb: kb.upsert("s", "e", "c" * 101), 100),
        ("content", lambda kb: kb.upsert("s", "e", "nul\x00"), None),
        ("metadata", lambda kb: kb.upsert("s", "e", "c", metadata={"x": {1, 2}}), None),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    database_url, open_store, raw, field, call, limit
):
    kb = open_store(database_url, limits=Limits(max_content_chars=100)).knowledge
    with pytest.raises(ValidationError) as caught:
        call(kb)
    assert caught.value.field == field
    if limit is not None:
        assert caught.value.limit == limit
    assert _count(raw) == 0


def test_sizes_at_the_limit_are_accepted(database_url, open_store):
    kb = open_store(database_url, limits=Limits(max_content_chars=100)).knowledge
    chunk = kb.upsert("s" * 200, "e" * 255, "c" * 100, title="t" * 500)
    assert kb.get_by_key("s" * 200, "e" * 255) == chunk


def test_long_content_is_stored_whole(store):
    content = "Ünïcødé 🙂 " * 20_000
    chunk = store.knowledge.upsert("big", "1", content)
    assert store.knowledge.get(chunk.id).content == content


def test_missing_chunks_are_not_found(store):
    kb = store.knowledge
    with pytest.raises(NotFoundError):
        kb.get(uuid.uuid4())
    with pytest.raises(NotFoundError):
        kb.get_by_key("nope", "nope")
    with pytest.raises(NotFoundError):
        kb.delete(uuid.uuid4())
    with pytest.raises(ValidationError) as caught:
        kb.get("not-an-id")
    assert caught.value.field == "chunk_id"


def test_knowledge_is_ledger_only(store, user):
    assert not hasattr(store.as_user(user.id), "knowledge")


# -- bulk upsert ----------------------------------------------------------------------------


def _chunk(i: int, *, source: str = "docs", version: int = 0) -> dict[str, Any]:
    return {
        "source": source,
        "external_id": f"doc-{i:05d}",
        "title": f"Document {i}",
        "content": f"content of document {i}, version {version}",
        "metadata": {"i": i, "version": version},
    }


def test_bulk_upsert_of_thousands_then_one_percent_changed(store):
    kb = store.knowledge
    first = [_chunk(i) for i in range(5000)]

    assert kb.bulk_upsert(first) == UpsertReport(inserted=5000, updated=0, unchanged=0)
    before = {c.external_id: c for c in _all(kb, "docs")}
    assert len(before) == 5000

    changed = set(range(0, 5000, 100))
    second = [_chunk(i, version=1 if i in changed else 0) for i in range(5000)]
    second += [_chunk(i) for i in range(5000, 5010)]
    time.sleep(0.002)
    assert kb.bulk_upsert(second, batch_size=333) == UpsertReport(
        inserted=10, updated=50, unchanged=4950
    )

    after = {c.external_id: c for c in _all(kb, "docs")}
    assert len(after) == 5010
    for i in range(5000):
        old, new = before[f"doc-{i:05d}"], after[f"doc-{i:05d}"]
        assert new.id == old.id
        assert new.created_at == old.created_at
        if i in changed:
            assert new.updated_at > old.updated_at
            assert new.content.endswith("version 1")
            assert new.metadata == {"i": i, "version": 1}
        else:
            assert new == old  # not rewritten: updated_at kept
    assert kb.bulk_upsert(second) == UpsertReport(inserted=0, updated=0, unchanged=5010)


def test_bulk_upsert_agrees_with_upsert(store):
    kb = store.knowledge
    kb.bulk_upsert([{"source": "s", "external_id": "a", "content": "x", "title": "T"}])
    single = kb.upsert("s", "a", "x", title="T")
    assert single.updated_at == single.created_at  # the same hash: unchanged
    report = kb.bulk_upsert(
        [
            {"source": "s", "external_id": "a", "content": "x", "title": "T"},
            {"source": "t", "external_id": "a", "content": "y"},
            {"source": "s", "external_id": "b", "content": "z", "metadata": {"k": 1}},
        ],
        batch_size=1,
    )
    assert report == UpsertReport(inserted=2, updated=0, unchanged=1)
    assert kb.get_by_key("t", "a").content == "y"
    assert kb.bulk_upsert([]) == UpsertReport(inserted=0, updated=0, unchanged=0)


@pytest.mark.parametrize(
    ("field", "items"),
    [
        ("chunks[2].content", [_chunk(0), _chunk(1), {**_chunk(2), "content": "c" * 101}]),
        ("chunks[1].external_id", [_chunk(0), {**_chunk(1), "external_id": "e" * 256}]),
        ("chunks[2].external_id", [_chunk(0), _chunk(1), _chunk(0, version=1)]),
        ("chunks[1].source", [_chunk(0), {**_chunk(1), "source": ""}]),
        ("chunks[0].metadata", [{**_chunk(0), "metadata": "text"}]),
        ("chunks[1].content", [_chunk(0), {"source": "s", "external_id": "x"}]),
        ("chunks[1]", [_chunk(0), {**_chunk(1), "colour": "red"}]),
        ("chunks[1]", [_chunk(0), "not a mapping"]),
        ("chunks", {"source": "s", "external_id": "x", "content": "c"}),
        ("chunks", "text"),
        ("chunks", [_chunk(i) for i in range(11)]),
    ],
)
def test_bulk_validates_everything_first_and_names_the_item(
    database_url, open_store, raw, field, items
):
    kb = open_store(database_url, limits=Limits(max_content_chars=100, max_batch_size=10)).knowledge
    with pytest.raises(ValidationError) as caught:
        kb.bulk_upsert(items)
    assert caught.value.field == field
    if field == "chunks" and isinstance(items, list):
        assert caught.value.limit == 10
    assert _count(raw) == 0


def test_bulk_at_the_item_limit_is_accepted(database_url, open_store):
    kb = open_store(database_url, limits=Limits(max_batch_size=10)).knowledge
    assert kb.bulk_upsert([_chunk(i) for i in range(10)], batch_size=10).inserted == 10


def test_bulk_batch_size_range(store):
    kb = store.knowledge
    for bad in (0, 10_001):
        with pytest.raises(ValidationError) as caught:
            kb.bulk_upsert([_chunk(0)], batch_size=bad)
        assert caught.value.field == "batch_size"
    assert caught.value.limit == 10_000
    assert kb.bulk_upsert([_chunk(0)], batch_size=10_000).inserted == 1


def test_bulk_in_a_rolled_back_transaction_leaves_nothing(store, raw):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert tx.knowledge.bulk_upsert([_chunk(i) for i in range(20)]).inserted == 20
        raise RuntimeError("abort")
    assert _count(raw) == 0


# -- pages and deletes ----------------------------------------------------------------------


def test_pages_by_external_id_forward_and_backward(store):
    kb = store.knowledge
    kb.bulk_upsert([_chunk(i) for i in range(25)])
    kb.bulk_upsert([_chunk(i, source="other") for i in range(3)])

    seen, after = [], None
    while True:
        page = kb.list("docs", limit=10, after=after)
        seen += [c.external_id for c in page]
        if not page.has_more:
            break
        after = page.last_cursor
    assert seen == [f"doc-{i:05d}" for i in range(25)]

    second = kb.list("docs", limit=10, after=kb.list("docs", limit=10).last_cursor)
    back = kb.list("docs", limit=10, before=second.first_cursor)
    assert [c.external_id for c in back] == [f"doc-{i:05d}" for i in range(10)]
    assert back.has_more is False
    assert len(kb.list("other")) == 3
    assert kb.list("nothing").items == []


def test_page_arguments_are_checked(store, user):
    kb = store.knowledge
    kb.upsert("s", "e", "c")
    with pytest.raises(ValidationError) as caught:
        kb.list("s", limit=0)
    assert caught.value.field == "limit"
    with pytest.raises(ValidationError) as caught:
        kb.list("s", after="garbage!")
    assert caught.value.field == "after"
    page = kb.list("s")
    with pytest.raises(ValidationError) as caught:
        kb.list("s", after=page.last_cursor, before=page.first_cursor)
    assert caught.value.field == "before"
    store.conversations.create(user.id)
    with pytest.raises(ValidationError):
        kb.list("s", after=store.conversations.list(user.id).last_cursor)


def test_delete_and_delete_source(store):
    kb = store.knowledge
    kb.bulk_upsert([_chunk(i) for i in range(5)] + [_chunk(i, source="keep") for i in range(2)])
    victim = kb.get_by_key("docs", "doc-00000")

    kb.delete(victim.id)
    with pytest.raises(NotFoundError):
        kb.get(victim.id)
    with pytest.raises(NotFoundError):
        kb.delete(victim.id)

    assert kb.delete_source("docs") == 4
    assert kb.delete_source("docs") == 0
    assert kb.list("docs").items == []
    assert len(kb.list("keep")) == 2
    with pytest.raises(ValidationError):
        kb.delete_source("")


# -- concurrency ----------------------------------------------------------------------------


@pytest.mark.slow
def test_racing_upserts_of_one_key_leave_one_chunk(ledger, raw):
    for round_ in range(10):
        key = f"race-{round_}"

        def work(index: int, key: str = key) -> Any:
            return ledger.knowledge.upsert("race", key, f"from thread {index}")

        results = run_threads(THREADS, work)
        assert len({chunk.id for chunk in results}) == 1, round_
        stored = ledger.knowledge.get_by_key("race", key)
        assert stored.content in {chunk.content for chunk in results}
    assert _count(raw) == 10


@pytest.mark.slow
def test_racing_upserts_of_one_document_neither_block_nor_retry(ledger, raw, caplog):
    caplog.set_level(logging.INFO, logger="chatledger")
    for round_ in range(10):
        key = f"same-{round_}"

        def work(index: int, key: str = key) -> Any:
            return ledger.knowledge.upsert("race", key, "the same text", title="t")

        results = run_threads(THREADS, work)
        assert len({(c.id, c.updated_at) for c in results}) == 1, round_
    assert _count(raw) == 10
    assert [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()] == []


@pytest.mark.slow
def test_racing_bulk_upserts_with_overlapping_keys(ledger, raw):
    def work(index: int) -> Any:
        # Every thread writes keys 0..199; thread i also its own 1000*i.. keys.
        items = [_chunk(i) for i in range(200)]
        items += [_chunk(1000 * (index + 1) + i) for i in range(50)]
        return ledger.knowledge.bulk_upsert(items, batch_size=64)

    reports = run_threads(THREADS, work)

    assert _count(raw) == 200 + THREADS * 50
    assert sum(r.inserted for r in reports) == 200 + THREADS * 50
    assert all(r.inserted + r.updated + r.unchanged == 250 for r in reports)
    assert sum(r.updated for r in reports) == 0


def test_chunks_without_a_key_and_look_ups_across_sources(store):
    knowledge = store.knowledge
    plain = knowledge.add("notes", "A plain insert.", title="Note", metadata={"k": 1})
    assert plain.external_id == plain.id.hex
    assert (plain.source, plain.title, plain.metadata) == ("notes", "Note", {"k": 1})
    again = knowledge.add("notes", "A plain insert.")  # no key: a second chunk, not a dedupe
    assert again.id != plain.id
    assert knowledge.get_by_external_id(plain.external_id) == plain
    assert knowledge.get_by_key("notes", plain.external_id) == plain
    replaced = knowledge.upsert("notes", plain.external_id, "Edited.")
    assert (replaced.id, replaced.content) == (plain.id, "Edited.")

    readme = knowledge.upsert("docs", "readme_section_1", "Install with pip.")
    assert knowledge.get_by_external_id("readme_section_1") == readme
    with pytest.raises(NotFoundError):
        knowledge.get_by_external_id("missing")
    knowledge.upsert("faq", "readme_section_1", "Another source, the same key.")
    with pytest.raises(ConflictError) as ambiguous:
        knowledge.get_by_external_id("readme_section_1")
    assert ambiguous.value.field == "external_id"
    assert "2 sources" in str(ambiguous.value)
    for bad in ("", " ", "x" * 501):
        with pytest.raises(ValidationError) as caught:
            knowledge.get_by_external_id(bad)
        assert caught.value.field == "external_id"
    with pytest.raises(ValidationError) as no_content:
        knowledge.add("notes", None)
    assert no_content.value.field == "content"


def test_list_all_pages_every_source_in_creation_order(store):
    knowledge = store.knowledge
    made = [knowledge.add(f"source-{i % 3}", f"chunk {i}") for i in range(5)]
    made.append(knowledge.upsert("docs", "keyed", "with a key"))
    first = knowledge.list_all(limit=4)
    assert [c.id for c in first] == [c.id for c in made[:4]]
    assert first.has_more
    rest = knowledge.list_all(limit=4, after=first.last_cursor)
    assert ([c.id for c in rest], rest.has_more) == ([c.id for c in made[4:]], False)
    back = knowledge.list_all(limit=4, before=rest.first_cursor)
    assert [c.id for c in back] == [c.id for c in made[:4]]
    newest = knowledge.list_all(order="desc", limit=2)
    assert [c.id for c in newest] == [made[5].id, made[4].id]
    with pytest.raises(ValidationError) as caught:
        knowledge.list_all(after=knowledge.list("docs").last_cursor)
    assert caught.value.field == "after"
