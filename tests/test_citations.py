"""Citations: attaching sources to assistant messages, limits, order, scoping, cascades, and
the messages that cite a knowledge chunk."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from chatledger import ConflictError, NotFoundError, ValidationError
from chatledger._schema import citations as citations_table
from chatledger._schema import knowledge_chunks


@pytest.fixture
def cites(store):
    return store.citations


@pytest.fixture
def answer(store, chat):
    store.messages.append(chat.id, "user", "question")
    return store.messages.append(chat.id, "assistant", "answer")


@pytest.fixture
def engine(database_url) -> Iterator[sa.Engine]:
    """A plain engine on the test database, for what the public API does not do (yet)."""
    created = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    if created.dialect.name == "sqlite":

        @sa.event.listens_for(created, "connect")
        def foreign_keys_on(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

    yield created
    created.dispose()


@pytest.fixture
def make_chunk(engine):
    def make(external_id: str = "doc-1#0", content: str = "chunk text") -> uuid.UUID:
        now = datetime.now(UTC)
        chunk_id = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(
                knowledge_chunks.insert(),
                {
                    "id": chunk_id,
                    "source": "handbook",
                    "external_id": external_id,
                    "title": "A chunk",
                    "content": content,
                    "metadata": None,
                    "content_hash": hashlib.sha256(content.encode()).hexdigest(),
                    "created_at": now,
                    "updated_at": now,
                },
            )
        return chunk_id

    return make


def _stored_rows(engine) -> list[Any]:
    with engine.connect() as conn:
        query = sa.select(citations_table.c.id, citations_table.c.chunk_id)
        return list(conn.execute(query).all())


# --- adding and reading -----------------------------------------------------------------------


def test_add_a_url_citation_and_read_it_back(cites, chat, answer):
    cited = cites.add(
        answer.id,
        url="https://example.com/docs?q=1#part",
        title="Docs",
        snippet="the quoted part",
        start_char=4,
        end_char=19,
        score=0.875,
        rank=0,
    )
    assert (cited.message_id, cited.conversation_id, cited.chunk_id) == (answer.id, chat.id, None)
    assert (cited.url, cited.title, cited.snippet) == (
        "https://example.com/docs?q=1#part",
        "Docs",
        "the quoted part",
    )
    assert (cited.start_char, cited.end_char, cited.score, cited.rank) == (4, 19, 0.875, 0)
    assert cites.for_message(answer.id) == [cited]
    assert cites.for_message(str(answer.id)) == [cited]


def test_add_a_chunk_citation_or_both(cites, answer, make_chunk):
    chunk = make_chunk()
    by_chunk = cites.add(answer.id, chunk_id=chunk, rank=1)
    both = cites.add(answer.id, chunk_id=str(chunk), url="http://example.org", rank=2)
    assert by_chunk.chunk_id == chunk
    assert (both.chunk_id, both.url) == (chunk, "http://example.org")
    assert cites.for_message(answer.id) == [by_chunk, both]


def test_citations_are_ordered_by_rank_then_as_added(cites, answer):
    unranked_first = cites.add(answer.id, url="https://a.example")
    third = cites.add(answer.id, url="https://b.example", rank=2)
    first = cites.add(answer.id, url="https://c.example", rank=0)
    unranked_second = cites.add(answer.id, url="https://d.example")
    second = cites.add(answer.id, url="https://e.example", rank=1)
    tied = cites.add(answer.id, url="https://f.example", rank=1)

    assert cites.for_message(answer.id) == [
        first,
        second,
        tied,
        third,
        unranked_first,
        unranked_second,
    ]


def test_a_message_without_citations_has_none(cites, answer):
    assert cites.for_message(answer.id) == []
    with pytest.raises(NotFoundError):
        cites.for_message(uuid.uuid4())


def test_only_assistant_messages_cite(store, cites, chat, engine):
    question = store.messages.append(chat.id, "user", "q")
    with pytest.raises(ConflictError) as caught:
        cites.add(question.id, url="https://example.com")
    assert caught.value.field == "role"
    with pytest.raises(NotFoundError) as missing:
        cites.add(uuid.uuid4(), url="https://example.com")
    assert missing.value.kind == "message"
    assert _stored_rows(engine) == []


def test_a_missing_chunk_is_not_found_and_nothing_is_written(cites, answer, engine):
    with pytest.raises(NotFoundError) as caught:
        cites.add(answer.id, chunk_id=uuid.uuid4())
    assert caught.value.kind == "knowledge chunk"
    assert cites.for_message(answer.id) == []
    assert _stored_rows(engine) == []


# --- limits -----------------------------------------------------------------------------------


def test_limits_at_the_boundary_are_accepted(cites, answer):
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    cited = cites.add(
        answer.id,
        url=url,
        title="t" * 500,
        snippet="ß" * 20_000,
        start_char=0,
        end_char=0,
        rank=2**31 - 1,
        score=-1.5,
    )
    assert len(cited.url or "") == 2048
    assert cites.for_message(answer.id) == [cited]


@pytest.mark.parametrize(
    ("arguments", "field", "limit"),
    [
        ({"url": "https://example.com/" + "a" * 2029}, "url", 2048),
        ({"url": "https://example.com", "title": "t" * 501}, "title", 500),
        ({"url": "https://example.com", "snippet": "ß" * 20_001}, "snippet", 20_000),
    ],
)
def test_one_over_a_length_limit_is_rejected(cites, answer, arguments, field, limit):
    with pytest.raises(ValidationError) as caught:
        cites.add(answer.id, **arguments)
    assert (caught.value.field, caught.value.limit) == (field, limit)
    assert cites.for_message(answer.id) == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "chunk_id"),
        ({"title": "no source"}, "chunk_id"),
        ({"chunk_id": "not-a-uuid"}, "chunk_id"),
        ({"url": "ftp://example.com/file"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "example.com/page"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "https://exa mple.com"}, "url"),
        ({"url": "https://example.com/\n"}, "url"),
        ({"url": "https://[::1"}, "url"),
        ({"url": "https://example.com", "start_char": -1, "end_char": 3}, "start_char"),
        ({"url": "https://example.com", "start_char": 5, "end_char": 4}, "end_char"),
        ({"url": "https://example.com", "start_char": 5}, "end_char"),
        ({"url": "https://example.com", "end_char": 5}, "start_char"),
        ({"url": "https://example.com", "start_char": 1.5, "end_char": 4}, "start_char"),
        ({"url": "https://example.com", "score": math.nan}, "score"),
        ({"url": "https://example.com", "score": -math.inf}, "score"),
        ({"url": "https://example.com", "score": "high"}, "score"),
        ({"url": "https://example.com", "rank": -1}, "rank"),
        ({"url": "https://example.com", "rank": True}, "rank"),
        ({"url": "https://example.com", "title": "nul\x00"}, "title"),
    ],
)
def test_bad_citations_are_rejected(cites, answer, arguments, field):
    with pytest.raises(ValidationError) as caught:
        cites.add(answer.id, **arguments)
    assert caught.value.field == field
    assert cites.for_message(answer.id) == []


def test_http_and_https_in_any_case_are_accepted(cites, answer):
    assert cites.add(answer.id, url="HTTPS://Example.com/A").url == "HTTPS://Example.com/A"
    assert cites.add(answer.id, url="http://127.0.0.1:8080/x").url == "http://127.0.0.1:8080/x"


# --- batches ----------------------------------------------------------------------------------


def test_add_many_stores_a_batch_in_order(cites, answer, make_chunk):
    chunk = make_chunk()
    stored = cites.add_many(
        answer.id,
        [
            {"chunk_id": chunk, "snippet": "one"},
            {"url": "https://example.com/two", "title": "two"},
            {"chunk_id": chunk, "url": "https://example.com/three"},
        ],
    )
    assert [c.snippet or c.title or c.url for c in stored] == [
        "one",
        "two",
        "https://example.com/three",
    ]
    assert cites.for_message(answer.id) == stored
    assert cites.add_many(answer.id, []) == []


def test_add_many_is_all_or_nothing(cites, answer, make_chunk, engine):
    chunk = make_chunk()
    with pytest.raises(ValidationError) as caught:
        cites.add_many(answer.id, [{"url": "https://ok.example"}, {"url": "ftp://bad"}])
    assert caught.value.field == "citations[1].url"
    with pytest.raises(ValidationError) as caught:
        cites.add_many(answer.id, [{"url": "https://ok.example", "colour": "red"}])
    assert caught.value.field == "citations[0]"
    with pytest.raises(ValidationError):
        cites.add_many(answer.id, "https://not-a-list.example")
    with pytest.raises(NotFoundError) as missing:
        cites.add_many(answer.id, [{"chunk_id": chunk}, {"chunk_id": uuid.uuid4()}])
    assert missing.value.kind == "knowledge chunk"
    assert _stored_rows(engine) == []


def test_add_many_batch_size_limit(open_store, database_url, chat, answer):
    from chatledger import Limits

    small = open_store(database_url, limits=Limits(max_batch_size=3))
    batch = [{"url": f"https://example.com/{i}"} for i in range(3)]
    assert len(small.citations.add_many(answer.id, batch)) == 3
    with pytest.raises(ValidationError) as caught:
        small.citations.add_many(answer.id, [*batch, {"url": "https://x.example"}])
    assert (caught.value.field, caught.value.limit) == ("citations", 3)


# --- chunks -----------------------------------------------------------------------------------


def test_citing_chunk_lists_each_citing_message_once_newest_first(store, cites, chat, make_chunk):
    chunk, unrelated = make_chunk("doc#0"), make_chunk("doc#1")
    answers = [store.messages.append(chat.id, "assistant", f"a{i}") for i in range(4)]
    cites.add(answers[0].id, chunk_id=chunk)
    cites.add(answers[2].id, chunk_id=chunk, rank=0)
    cites.add(answers[2].id, chunk_id=chunk, rank=1)
    cites.add(answers[3].id, chunk_id=unrelated)

    assert cites.citing_chunk(chunk) == [answers[2], answers[0]]
    assert cites.citing_chunk(str(chunk), limit=1) == [answers[2]]
    assert cites.citing_chunk(make_chunk("doc#2")) == []
    with pytest.raises(NotFoundError) as caught:
        cites.citing_chunk(uuid.uuid4())
    assert caught.value.kind == "knowledge chunk"
    with pytest.raises(ValidationError) as limit:
        cites.citing_chunk(chunk, limit=0)
    assert limit.value.field == "limit"


def test_deleting_a_chunk_keeps_its_citations_without_it(cites, answer, make_chunk, engine):
    chunk = make_chunk()
    cited = cites.add(answer.id, chunk_id=chunk, url="https://example.com", snippet="quoted")
    with engine.begin() as conn:
        conn.execute(knowledge_chunks.delete().where(knowledge_chunks.c.id == chunk))

    (kept,) = cites.for_message(answer.id)
    assert kept.chunk_id is None
    assert (kept.id, kept.url, kept.snippet) == (cited.id, cited.url, "quoted")


def test_deleting_the_conversation_deletes_its_citations(store, cites, chat, answer, engine):
    cites.add(answer.id, url="https://example.com")
    other = store.conversations.create(chat.owner_id)
    elsewhere = store.messages.append(other.id, "assistant", "kept")
    kept = cites.add(elsewhere.id, url="https://example.org")

    store.conversations.delete(chat.id, hard=True)
    assert [row.id for row in _stored_rows(engine)] == [kept.id]
    with pytest.raises(NotFoundError):
        cites.for_message(answer.id)


def test_get_detail_includes_the_citations(store, cites, answer):
    second = cites.add(answer.id, url="https://b.example", rank=1)
    first = cites.add(answer.id, url="https://a.example", rank=0)
    assert store.messages.get_detail(answer.id).citations == [first, second]


def test_citations_roll_back_with_the_callers_transaction(store, answer):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.citations.add(answer.id, url="https://example.com")
        raise RuntimeError("boom")
    assert store.citations.for_message(answer.id) == []


# --- scoping ----------------------------------------------------------------------------------


@pytest.fixture
def alice_and_bob(store):
    alice = store.users.create(username="alice")
    bob = store.users.create(username="bob")
    chat = store.conversations.create(alice.id, title="alice's")
    message = store.messages.append(chat.id, "assistant", "secret answer")
    return alice, bob, chat, message


EVERY_OPERATION = {
    "add": lambda c, m: c.add(m.id, url="https://evil.example"),
    "add_many": lambda c, m: c.add_many(m.id, [{"url": "https://evil.example"}]),
    "for_message": lambda c, m: c.for_message(m.id),
}


@pytest.mark.parametrize("operation", sorted(EVERY_OPERATION))
def test_another_users_messages_are_not_found(store, cites, alice_and_bob, operation):
    _, bob, _, message = alice_and_bob
    cited = cites.add(message.id, url="https://example.com")
    with pytest.raises(NotFoundError):
        EVERY_OPERATION[operation](store.as_user(bob.id).citations, message)
    assert cites.for_message(message.id) == [cited]


def test_a_scope_sees_only_its_own_citing_messages(store, cites, alice_and_bob, make_chunk):
    alice, bob, _, message = alice_and_bob
    chunk = make_chunk()
    bobs_chat = store.conversations.create(bob.id)
    bobs_message = store.messages.append(bobs_chat.id, "assistant", "bob's")
    cites.add(message.id, chunk_id=chunk)
    cites.add(bobs_message.id, chunk_id=chunk)

    mine = store.as_user(alice.id).citations
    assert mine.citing_chunk(chunk) == [message]
    assert store.as_user(bob.id).citations.citing_chunk(chunk) == [bobs_message]
    own = mine.add(message.id, url="https://mine.example")
    assert own in mine.for_message(message.id)
