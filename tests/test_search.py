"""Full-text search: the same queries give the same ids on every backend and surface; owner
scoping inside the SQL; filters, orders, cursors both ways, counts; the index follows every
write (append, batch, hard delete, erase, title update); bad input is a typed error or an
empty result."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from chatledger import Ledger, NotFoundError, ValidationError, _fulltext, migrate, transfer
from chatledger import _schema as schema
from chatledger._ops import search_syntax

CORPUS = [
    ("user", "What should I see in Lisbon? The e-mail mentioned trams.", None),
    ("assistant", "Ride tram 28 through Alfama and eat pastéis de nata in Belém.", "gpt-x"),
    ("user", "Is the Lisboa card worth it for museums?", None),
    ("assistant", "The Lisboa card covers trams, the Santa Justa lift and many museums.", "gpt-x"),
    ("user", "Draft an email to my landlord about the broken heater", None),
    ("assistant", "Dear landlord, the heater in my flat is broken since Monday.", "gpt-y"),
    ("user", "lisbon LISBON Lisbon-based startups and their funding", None),
    ("tool", "weather: Lisbon 21C sunny", None),
]

#: query -> the seqs of CORPUS it must find, on every backend.
EXPECTED: dict[str, set[int]] = {
    "lisbon": {1, 7, 8},
    "LISBON": {1, 7, 8},
    "lisb*": {1, 3, 4, 7, 8},
    "lisbo*": {1, 3, 4, 7, 8},
    "trams": {1, 4},
    "tram": {2},
    '"tram 28"': {2},
    '"28 tram"': set(),
    "museums card": {3, 4},
    "museums -trams": {3},
    'card -"santa justa"': {3},
    "landlord heater": {5, 6},
    "landlord -draft": {6},
    "e-mail": {1},
    "email": {5},
    "pastéis": {2},
    "pasteis": set(),
    "the lisbon": {1, 7, 8},
    "Alfama nata": {2},
    "NEAR(landlord": set(),
    "startups OR funding": {7},
    '"broken heater': {5},
    "heater*": {5, 6},
    "unrelated": set(),
}


@pytest.fixture
def corpus(store: Any, user: Any) -> Any:
    chat = store.conversations.create(user.id, title="Trip to Lisbon")
    for role, content, model in CORPUS:
        store.messages.append(chat.id, role, content, model=model)
    return chat


def _seqs(page: Any) -> set[int]:
    return {hit.message.seq for hit in page}


@pytest.mark.parametrize("query", sorted(EXPECTED))
def test_the_same_queries_find_the_same_messages_on_every_backend(store, user, corpus, query):
    scope = store.as_user(user.id)
    page = scope.messages.search(query, limit=50)
    assert _seqs(page) == EXPECTED[query]
    assert scope.search.count(query) == len(EXPECTED[query])
    for hit in page:
        assert hit.message.conversation_id == corpus.id
        assert hit.conversation_title == "Trip to Lisbon"
        assert hit.snippet
        assert all(0 <= a < b <= len(hit.snippet) for a, b in hit.highlights)


def test_snippets_mark_the_matched_words(store, user, corpus):
    page = store.as_user(user.id).search.messages('"tram 28"')
    (hit,) = page.items
    assert hit.marked("[", "]").startswith("Ride [tram] [28] through")


def test_a_search_never_sees_another_users_messages(store, user, corpus):
    other = store.users.create(external_id="other")
    theirs = store.conversations.create(other.id, title="Lisbon too")
    store.messages.append(theirs.id, "user", "Lisbon secrets of another user")
    mine = store.as_user(user.id)
    assert _seqs(mine.search.messages("lisbon", limit=50)) == {1, 7, 8}
    assert mine.search.count("secrets") == 0
    assert mine.search.messages("secrets").items == []
    assert [h.conversation.id for h in mine.search.conversations("lisbon")] == [corpus.id]
    with pytest.raises(NotFoundError):
        mine.search.messages("lisbon", conversation_id=theirs.id)
    # The ledger (an admin) searches across users.
    assert store.search.count("lisbon") == 4
    assert {h.conversation.id for h in store.search.conversations("lisbon")} == {
        corpus.id,
        theirs.id,
    }


def test_filters(store, user, corpus):
    scope = store.as_user(user.id)
    assert _seqs(scope.search.messages("lisbon", role="tool")) == {8}
    assert _seqs(scope.search.messages("trams", role=["assistant", "tool"])) == {4}
    assert _seqs(scope.search.messages("landlord", model="gpt-y")) == {6}
    assert _seqs(scope.search.messages("lisbon", conversation_id=corpus.id)) == {1, 7, 8}
    now = datetime.now(UTC)
    assert scope.search.count("lisbon", since=now + timedelta(hours=1)) == 0
    assert scope.search.count("lisbon", until=now + timedelta(hours=1)) == 3
    scope.conversations.delete(corpus.id)
    assert scope.search.count("lisbon") == 0
    assert scope.search.count("lisbon", status="deleted") == 3
    with pytest.raises(ValidationError) as caught:
        scope.search.messages("lisbon", role="robot")
    assert caught.value.field == "role"
    with pytest.raises(ValidationError) as caught:
        scope.search.messages("lisbon", since=datetime(2026, 1, 1))  # naive
    assert caught.value.field == "since"


@pytest.mark.parametrize("order", ["relevance", "newest", "oldest"])
def test_cursors_walk_every_hit_once_in_both_directions(store, user, order):
    chat = store.conversations.create(user.id)
    store.messages.append_many(
        chat.id,
        [{"role": "user", "content": f"report number {n} about budgets"} for n in range(23)],
    )
    scope = store.as_user(user.id)
    seen: list[int] = []
    pages = []
    after = None
    while True:
        page = scope.search.messages("budgets", order=order, limit=5, after=after)
        pages.append(page)
        seen += [hit.message.seq for hit in page]
        if not page.has_more:
            break
        after = page.last_cursor
    assert sorted(seen) == list(range(1, 24))
    assert len(set(seen)) == 23
    if order == "oldest":
        assert seen == sorted(seen)
    if order == "newest":
        times = [hit.message.created_at for page in pages for hit in page]
        assert times == sorted(times, reverse=True)
    back = scope.search.messages("budgets", order=order, limit=5, before=pages[-1].first_cursor)
    assert [hit.message.seq for hit in back] == [hit.message.seq for hit in pages[-2]]
    with pytest.raises(ValidationError) as caught:
        scope.search.messages(
            "budgets", order="newest" if order != "newest" else "oldest", after=after
        )
    assert caught.value.field == "after"


def test_the_index_follows_every_write(store, user):
    scope = store.as_user(user.id)
    chat = store.conversations.create(user.id, title="Kept title")
    store.messages.append(chat.id, "user", "zeppelin one")
    store.messages.append_many(chat.id, [{"role": "user", "content": "zeppelin two"}])
    assert scope.search.count("zeppelin") == 2
    with pytest.raises(RuntimeError), store.transaction():
        store.messages.append(chat.id, "user", "zeppelin rolled back")
        raise RuntimeError
    assert scope.search.count("zeppelin") == 2
    store.conversations.update(chat.id, title="Airship plans")
    assert [h.conversation.id for h in scope.search.conversations("airship")] == [chat.id]
    assert scope.search.conversations("kept").items == []
    store.conversations.delete(chat.id, hard=True)
    assert store.search.count("zeppelin") == 0
    assert store.search.conversations("airship").items == []
    other = store.users.create(external_id="erased")
    theirs = store.conversations.create(other.id, title="Erased title")
    store.messages.append(theirs.id, "user", "zeppelin three")
    assert store.search.count("zeppelin") == 1
    store.users.erase(other.id)
    assert store.search.count("zeppelin") == 0
    assert store.search.conversations("erased").items == []


NASTY = [
    "the",
    "a an of",
    '"',
    '"unbalanced',
    "*",
    "-",
    "NEAR(",
    "NEAR(a b, 2)",
    "title:lisbon",
    "^lisbon",
    "lisbon AND OR NOT",
    "'; DROP TABLE messages; --",
    "\\",
    "%_",
    "(((",
    "日本語",
    "\u200b",
    "+-+-",
    "lisbon*" * 20,
]


@pytest.mark.parametrize("query", NASTY)
def test_odd_queries_give_results_or_nothing_never_a_driver_error(store, user, corpus, query):
    page = store.as_user(user.id).search.messages(query)
    assert isinstance(page.items, list)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 10_000, "1,000"),
        ("lisbon\x00", "NUL"),
        ("-lisbon -trams", "excluded"),
        (42, "string"),
        (" ".join(f"word{n}" for n in range(40)), "terms"),
    ],
)
def test_bad_queries_are_validation_errors_naming_the_query(store, user, query, problem):
    with pytest.raises(ValidationError) as caught:
        store.as_user(user.id).search.messages(query)
    assert caught.value.field == "query"
    assert problem.lower() in str(caught.value).lower()


def test_a_query_of_stop_words_finds_nothing_and_says_why(store, user, corpus):
    page = store.as_user(user.id).search.messages("the of it")
    assert page.items == []
    assert page.ignored == ("the", "of", "it")
    assert store.as_user(user.id).search.count("the of it") == 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_to_a_query_or_a_validation_error(text):
    try:
        parsed = search_syntax.parse(text)
    except ValidationError as exc:
        field = exc.field
        assert field == "query"
        return
    for render in (search_syntax.fts5, search_syntax.tsquery, search_syntax.boolean_mode):
        if not parsed.empty:
            rendered = render(parsed)
            assert "\x00" not in rendered
    for term in (*parsed.required, *parsed.excluded):
        assert all(token.isalnum() for token in term.tokens)


# -- the index follows bulk paths and the migration -------------------------------------------


def _raw_history(url: Any, messages: int) -> tuple[uuid.UUID, uuid.UUID]:
    """A user, a conversation and ``messages`` messages written with plain inserts (at a
    revision before search)."""
    now = datetime.now(UTC)
    user_id, chat_id = uuid.uuid4(), uuid.uuid4()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            schema.users.insert().values(id=user_id, role="user", created_at=now, updated_at=now)
        )
        conn.execute(
            schema.conversations.insert().values(
                id=chat_id,
                owner_id=user_id,
                title="Old Lisbon notes",
                status="active",
                message_count=messages,
                last_activity_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            schema.messages.insert(),
            [
                {
                    "conversation_id": chat_id,
                    "seq": seq,
                    "id": uuid.uuid4(),
                    "role": "user",
                    "content": f"archived note {seq} about {'lisbon' if seq % 2 else 'porto'}",
                    "created_at": now,
                }
                for seq in range(1, messages + 1)
            ],
        )
    engine.dispose()
    return user_id, chat_id


def test_the_migration_indexes_existing_rows_in_batches(backend, make_database, monkeypatch):
    monkeypatch.setattr(_fulltext, "BUILD_BATCH", 4)
    url = make_database(backend, "search_migr")
    migrate.upgrade(url, "0004")
    user_id, chat_id = _raw_history(url, 11)
    migrate.upgrade(url)
    with Ledger(url) as ledger:
        scope = ledger.as_user(user_id)
        assert _seqs(scope.search.messages("lisbon", limit=50)) == {1, 3, 5, 7, 9, 11}
        assert scope.search.count("archived") == 11
        assert [h.conversation.id for h in scope.search.conversations("lisbon")] == [chat_id]
        ledger.messages.append(chat_id, "user", "lisbon after the upgrade")
        assert scope.search.count("lisbon") == 7
    migrate.downgrade(url, "0004")
    migrate.upgrade(url)
    with Ledger(url) as ledger:
        assert ledger.search.count("lisbon") == 7
    migrate.downgrade(url, "base")


def test_a_copy_is_searchable(backend, database_url, tmp_path):
    source = make_url(f"sqlite:///{tmp_path / 'source.db'}")
    with Ledger(source) as ledger:
        user = ledger.users.create(external_id="copied")
        chat = ledger.conversations.create(user.id, title="Copied Lisbon chat")
        ledger.messages.append_many(
            chat.id, [{"role": "user", "content": f"copied lisbon note {n}"} for n in range(5)]
        )
    assert transfer.copy_database(source, database_url, backup=False).ok
    with Ledger(database_url) as target:
        assert target.search.count("lisbon") == 5
        assert [h.conversation.id for h in target.search.conversations("copied")] == [chat.id]


# -- branches ---------------------------------------------------------------------------------


@pytest.fixture
def branched(store: Any, user: Any) -> Any:
    """A tree: a question, its answer regenerated (the first answer off the path), then the
    question edited (a new root, with a reply, is the active path)."""
    chat = store.conversations.create(user.id)
    question = store.messages.append(chat.id, "user", "Plan three days of zeppelin rides")
    answer = store.messages.append(chat.id, "assistant", "Day one: zeppelin over Alfama")
    store.trees.regenerate(answer.id, "Day one: zeppelin over Belém")
    store.trees.edit(question.id, "Plan four days of zeppelin rides")
    store.messages.append(chat.id, "assistant", "Day one: zeppelin over Sintra")
    return chat, question


def test_a_search_covers_every_branch_or_the_active_path_only(store, user, branched):
    chat, question = branched
    scope = store.as_user(user.id)
    assert _seqs(scope.search.messages("zeppelin", limit=50)) == {1, 2, 3, 4, 5}
    assert _seqs(scope.search.messages("zeppelin", branch="all")) == {1, 2, 3, 4, 5}
    active = scope.search.messages("zeppelin", branch="active", order="oldest")
    assert [hit.message.seq for hit in active] == [4, 5]
    assert all(hit.message.on_active_path for hit in active)
    assert scope.search.count("zeppelin", branch="active") == 2
    assert scope.search.count("zeppelin") == 5
    assert _seqs(scope.messages.search("alfama", branch="active")) == set()
    assert _seqs(scope.messages.search("alfama")) == {2}
    assert scope.search.count("zeppelin", conversation_id=chat.id, branch="active") == 2
    # Switching branches moves the filter with the path, in the same transaction.
    store.trees.switch(chat.id, question.id)
    assert _seqs(scope.search.messages("zeppelin", branch="active")) == {1, 3}
    first = scope.search.messages("zeppelin", branch="active", limit=1)
    rest = scope.search.messages("zeppelin", branch="active", limit=1, after=first.last_cursor)
    assert _seqs(first) | _seqs(rest) == {1, 3}
    assert not rest.has_more
    with pytest.raises(ValidationError) as caught:
        scope.search.messages("zeppelin", branch="sideways")
    assert caught.value.field == "branch"


# -- SQLite's contentless index ---------------------------------------------------------------


def _index_terms(conn: Any, document: _fulltext.Document) -> set[tuple[str, str, int]]:
    """(term, row key, offset) of every token in the FTS index, read back with fts5vocab."""
    name = document.index
    conn.exec_driver_sql(
        f"CREATE VIRTUAL TABLE temp.v_{name} USING fts5vocab(main, {name}, instance)"
    )
    if document.name == "messages":  # rowid: (conversation key << SEQ_BITS) | seq
        bits = _fulltext.SEQ_BITS
        keys, join = (
            f"k.id, v.doc & {(1 << bits) - 1}",
            f"search_titles_keys AS k ON k.rowid = v.doc >> {bits}",
        )
    else:
        keys = ", ".join(f"k.{key}" for key in document.keys)
        join = f"{name}_keys AS k ON k.rowid = v.doc"
    rows = conn.exec_driver_sql(
        f"SELECT v.term, {keys}, v.offset FROM temp.v_{name} AS v "
        f"LEFT JOIN {join}"  # a ghost has no key
    ).all()
    conn.exec_driver_sql(f"DROP TABLE temp.v_{name}")
    return {(row[0], "/".join(map(str, row[1:-1])), row[-1]) for row in rows}


def _expected_terms(conn: Any, document: _fulltext.Document) -> set[tuple[str, str, int]]:
    """The same, for the base table's current text indexed afresh (an FTS5 table that stores
    its text, with the same tokenizer)."""
    keys = document.keys
    conn.exec_driver_sql(
        "CREATE VIRTUAL TABLE temp.fresh USING fts5(body, key UNINDEXED, "
        "tokenize = 'unicode61 remove_diacritics 0')"
    )
    key = " || '/' || ".join(keys)
    conn.exec_driver_sql(
        f"INSERT INTO temp.fresh (body, key) SELECT {document.column}, {key} FROM {document.table}"
    )
    conn.exec_driver_sql("CREATE VIRTUAL TABLE temp.v_fresh USING fts5vocab(temp, fresh, instance)")
    rows = conn.exec_driver_sql(
        "SELECT v.term, f.key, v.offset FROM temp.v_fresh AS v JOIN temp.fresh AS f "
        "ON f.rowid = v.doc"
    ).all()
    conn.exec_driver_sql("DROP TABLE temp.v_fresh")
    conn.exec_driver_sql("DROP TABLE temp.fresh")
    return {(row[0], row[1], row[2]) for row in rows}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_contentless_index_holds_exactly_the_stored_text(store, database_url):
    """Every write path leaves SQLite's index equal to the base tables indexed afresh (a
    contentless index removes a row with its old text: a wrong one would leave ghosts)."""
    ada = store.users.create(external_id="ada")
    chat = store.conversations.create(ada.id)  # no title
    for n in range(30):
        store.messages.append(chat.id, "user", f"note {n} about lisbon trams and {n % 7} cats")
    reply = store.streams.begin(chat.id)
    store.streams.delta(reply.id, 0, "streamed words ")
    store.streams.finish(reply.id, text="about porto")
    store.conversations.update(chat.id, title="Lisbon notes")
    store.conversations.update(chat.id, title="Porto notes")
    other = store.conversations.create(ada.id, title="Doomed chat")
    store.messages.append(other.id, "user", "doomed words")
    store.conversations.update(other.id, title=None)
    store.conversations.delete(other.id, hard=True)
    bob = store.users.create(external_id="bob")
    theirs = store.conversations.create(bob.id, title="Bob's chat")
    store.messages.append(theirs.id, "user", "erased words")
    store.users.erase(bob.id)
    store.messages.append(chat.id, "user", "the last note")  # may reuse a freed key rowid
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for document in _fulltext.DOCUMENTS:
            assert _index_terms(conn, document) == _expected_terms(conn, document), document
        tables = set(sa.inspect(conn).get_table_names())
        assert "search_messages_content" not in tables  # no second copy of the text
    engine.dispose()
    assert store.search.count("doomed") == 0
    assert store.search.count("porto") == 1
    assert [h.conversation.id for h in store.search.conversations("porto")] == [chat.id]
