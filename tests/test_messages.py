"""Messages: append, sequence numbers, counters, idempotency, reads and pages."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from chatledger import ConflictError, NotFoundError, ValidationError


def test_append_numbers_messages_from_one_and_moves_the_counters(store, chat):
    first = store.messages.append(chat.id, "user", "hello")
    second = store.messages.append(chat.id, "assistant", "hi!")

    assert (first.seq, second.seq) == (1, 2)
    conversation = store.conversations.get(chat.id)
    assert conversation.message_count == 2
    assert conversation.last_message_at == second.created_at
    assert conversation.last_activity_at == second.created_at


def test_append_stores_usage_in_typed_columns(store, chat):
    sent = store.messages.append(
        chat.id,
        "assistant",
        "answer",
        intent="faq",
        metadata={"sources": ["a", "b"], "nested": {"x": 1}},
        model="gpt-4o-mini",
        input_tokens=1200,
        output_tokens=345,
        cost=Decimal("0.000123456"),
        latency_ms=812,
        request_id="req-1",
    )

    (stored,) = store.messages.last(chat.id, 1)
    assert stored == sent
    assert stored.cost == Decimal("0.000123456")
    assert isinstance(stored.cost, Decimal)
    assert stored.metadata == {"sources": ["a", "b"], "nested": {"x": 1}}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0.1, Decimal("0.1")),
        ("12.5", Decimal("12.5")),
        (3, Decimal(3)),
        (Decimal("100"), Decimal(100)),
    ],
)
def test_cost_is_exact_whatever_number_type_is_given(store, chat, given, expected):
    store.messages.append(chat.id, "assistant", "x", cost=given)
    (stored,) = store.messages.last(chat.id, 1)
    assert stored.cost == expected
    assert str(stored.cost) == str(expected)


def test_long_llm_output_is_stored_whole(store, chat):
    content = "Ünïcødé 🙂 " * 20_000  # 220,000 characters: beyond MariaDB TEXT's 64 KB
    store.messages.append(chat.id, "assistant", content)
    assert store.messages.last(chat.id, 1)[0].content == content


def test_same_idempotency_key_returns_the_first_message_and_writes_nothing(store, chat):
    first = store.messages.append(chat.id, "user", "hello", idempotency_key="req-42")
    again = store.messages.append(chat.id, "user", "hello (retried)", idempotency_key="req-42")

    assert again == first
    assert store.messages.count(chat.id) == 1
    assert store.conversations.get(chat.id).message_count == 1


def test_idempotency_keys_are_per_conversation(store, user, chat):
    other = store.conversations.create(user.id)
    a = store.messages.append(chat.id, "user", "a", idempotency_key="k")
    b = store.messages.append(other.id, "user", "b", idempotency_key="k")
    assert a.id != b.id


def test_last_returns_the_newest_in_chronological_order(store, chat):
    for i in range(30):
        store.messages.append(chat.id, "user" if i % 2 == 0 else "assistant", f"m{i}")

    last = store.messages.last(chat.id, 5)
    assert [m.content for m in last] == ["m25", "m26", "m27", "m28", "m29"]
    assert [m.seq for m in last] == [26, 27, 28, 29, 30]
    only_users = store.messages.last(chat.id, 3, role="user")
    assert [m.content for m in only_users] == ["m24", "m26", "m28"]


def test_last_of_an_empty_conversation_is_empty(store, chat):
    assert store.messages.last(chat.id) == []


def test_reading_a_missing_conversation_is_not_found(store):
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError):
        store.messages.last(missing)
    with pytest.raises(NotFoundError):
        store.messages.list(missing)
    with pytest.raises(NotFoundError):
        store.messages.count(missing)
    with pytest.raises(NotFoundError):
        store.messages.append(missing, "user", "hi")


def test_get_by_id(store, chat):
    sent = store.messages.append(chat.id, "user", "hello")
    assert store.messages.get(sent.id) == sent
    assert store.messages.get(str(sent.id)) == sent
    with pytest.raises(NotFoundError):
        store.messages.get(uuid.uuid4())


def test_pages_forward_and_backward_visit_every_message_once(store, chat):
    for i in range(23):
        store.messages.append(chat.id, "user", f"m{i}")

    seen, after = [], None
    while True:
        page = store.messages.list(chat.id, limit=5, after=after)
        seen += [m.seq for m in page]
        if not page.has_more:
            break
        after = page.last_cursor
    assert seen == list(range(1, 24))

    newest = store.messages.list(chat.id, limit=5, order="desc")
    assert [m.seq for m in newest] == [23, 22, 21, 20, 19]
    older = store.messages.list(chat.id, limit=5, order="desc", after=newest.last_cursor)
    assert [m.seq for m in older] == [18, 17, 16, 15, 14]
    back = store.messages.list(chat.id, limit=5, order="desc", before=older.first_cursor)
    assert [m.seq for m in back] == [23, 22, 21, 20, 19]
    assert back.has_more is False


def test_pages_filter_by_role(store, chat):
    for i in range(10):
        store.messages.append(chat.id, "user" if i % 2 == 0 else "assistant", f"m{i}")
    page = store.messages.list(chat.id, role="assistant", limit=3)
    assert [m.content for m in page] == ["m1", "m3", "m5"]
    assert page.has_more
    assert store.messages.count(chat.id, role="assistant") == 5
    assert store.messages.count(chat.id) == 10


def test_cursor_from_another_listing_is_rejected(store, user, chat):
    store.messages.append(chat.id, "user", "x")
    conversations_page = store.conversations.list(user.id)
    with pytest.raises(ValidationError) as caught:
        store.messages.list(chat.id, after=conversations_page.last_cursor)
    assert caught.value.field == "after"
    with pytest.raises(ValidationError):
        store.messages.list(chat.id, after="not a cursor!")


@pytest.mark.parametrize("status", ["closed", "deleted"])
def test_cannot_append_to_a_closed_or_deleted_conversation(store, chat, status):
    if status == "closed":
        store.conversations.close(chat.id)
    else:
        store.conversations.delete(chat.id)
    with pytest.raises(ConflictError):
        store.messages.append(chat.id, "user", "hello?")
    assert store.messages.count(chat.id) == 0


def test_append_to_a_missing_conversation_writes_nothing(store, user, chat):
    """Refused before anything is written, whether the database numbers the message itself
    (MariaDB's trigger, unscoped) or the code bumps first (scoped)."""
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError) as caught:
        store.messages.append(missing, "user", "anyone?")
    assert caught.value.kind == "conversation"
    with pytest.raises(NotFoundError):
        store.as_user(user.id).messages.append(missing, "user", "anyone?")
    first = store.messages.append(chat.id, "user", "one")
    second = store.as_user(user.id).messages.append(chat.id, "assistant", "two")
    assert (first.seq, first.parent_seq, first.depth) == (1, None, 0)
    assert (second.seq, second.parent_seq, second.depth) == (2, 1, 1)
    conversation = store.conversations.get(chat.id)
    assert (conversation.message_count, conversation.active_leaf_seq) == (2, 2)
    assert conversation.path_length == 2
    assert conversation.last_message_at == second.created_at


def test_archived_conversation_still_takes_messages(store, chat):
    store.conversations.archive(chat.id)
    assert store.messages.append(chat.id, "user", "back again").seq == 1


def test_append_many_writes_a_batch_with_gap_free_seq_and_counters(store, chat):
    from datetime import UTC, datetime, timedelta

    store.messages.append(chat.id, "system", "be brief")
    then = datetime(2024, 1, 1, tzinfo=UTC)
    batch = [
        {"role": "user", "content": f"q{i}", "created_at": then + timedelta(minutes=i)}
        for i in range(5)
    ] + [{"role": "assistant", "content": "a", "model": "m", "cost": "0.5", "input_tokens": 3}]
    stored = store.messages.append_many(chat.id, batch)

    assert [m.seq for m in stored] == [2, 3, 4, 5, 6, 7]
    assert stored[0].created_at == then
    conversation = store.conversations.get(chat.id)
    assert conversation.message_count == 7
    assert conversation.last_message_at == max(m.created_at for m in stored)
    assert [m.content for m in store.messages.last(chat.id, 7)] == [
        "be brief",
        "q0",
        "q1",
        "q2",
        "q3",
        "q4",
        "a",
    ]


def test_append_many_is_idempotent_by_key(store, chat):
    batch = [{"role": "user", "content": f"m{i}", "idempotency_key": f"k{i}"} for i in range(4)]
    first = store.messages.append_many(chat.id, batch)
    again = store.messages.append_many(chat.id, [*batch, {"role": "user", "content": "new"}])
    assert again[:4] == first
    assert again[4].seq == 5
    assert store.messages.count(chat.id) == 5


def test_append_many_rejects_a_bad_item_and_writes_nothing(store, chat):
    batch = [{"role": "user", "content": "ok"}, {"role": "user", "content": "nul\x00"}]
    with pytest.raises(ValidationError) as caught:
        store.messages.append_many(chat.id, batch)
    assert caught.value.field == "messages[1].content"
    with pytest.raises(ValidationError) as caught:
        store.messages.append_many(chat.id, [{"role": "user", "content": "x", "colour": 1}])
    assert caught.value.field == "messages[0]"
    dup = [{"role": "user", "content": "x", "idempotency_key": "k"}] * 2
    with pytest.raises(ValidationError):
        store.messages.append_many(chat.id, dup)
    assert store.messages.count(chat.id) == 0


def test_append_many_to_a_missing_or_closed_conversation(store, chat):
    with pytest.raises(NotFoundError):
        store.messages.append_many(uuid.uuid4(), [{"role": "user", "content": "x"}])
    store.conversations.close(chat.id)
    with pytest.raises(ConflictError):
        store.messages.append_many(chat.id, [{"role": "user", "content": "x"}])
    assert store.messages.append_many(chat.id, []) == []


def test_append_with_charge_debits_the_owner_in_the_same_transaction(store, user, chat):
    from chatledger import InsufficientBalanceError

    store.tokens.credit(10, user_id=user.id, reason="top-up")
    answer = store.messages.append(
        chat.id, "assistant", "paid", output_tokens=4, charge=4, idempotency_key="r1"
    )
    assert store.tokens.balance(user.id) == 6
    (entry, _) = store.tokens.history(user_id=user.id, limit=2).items
    assert (entry.delta, entry.message_id, entry.reason) == (-4, answer.id, "message")

    again = store.messages.append(chat.id, "assistant", "paid", charge=4, idempotency_key="r1")
    assert again == answer
    assert store.tokens.balance(user.id) == 6

    with pytest.raises(InsufficientBalanceError) as caught:
        store.messages.append(chat.id, "assistant", "too dear", charge=7)
    assert (caught.value.balance, caught.value.requested) == (6, 7)
    assert store.messages.count(chat.id) == 1
    assert store.tokens.balance(user.id) == 6
    assert store.tokens.verify(user.id)

    scoped = store.as_user(user.id)
    scoped.messages.append(chat.id, "assistant", "scoped", charge=1, charge_reason="gpt-4o")
    assert store.tokens.balance(user.id) == 5
    with pytest.raises(ValidationError) as caught_charge:
        store.messages.append(chat.id, "assistant", "x", charge=0)
    assert caught_charge.value.field == "charge"


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_last_20_is_one_short_range_of_the_clustered_index(database_url):
    """InnoDB stores rows in primary-key order: messages' key is (conversation_id, seq), so
    the last 20 messages of a conversation sit on a few adjacent pages however many other
    conversations were written in between (a time-ordered id as the key would scatter them
    over about one page per message). Counted by the server (ANALYZE's r_engine_stats)."""
    import json

    from chatledger import Ledger
    from chatledger._ops.messages import _LAST

    conversations, turns = 16, 25
    with Ledger(database_url) as ledger:
        user = ledger.users.create()
        chats = [ledger.conversations.create(user.id).id for _ in range(conversations)]
        for turn in range(turns):  # every conversation live at once: arrivals interleave
            for chat in chats:
                ledger.messages.append(chat, "user", f"turn {turn} " + "x" * 2_000)
        with ledger._core.db.engine.connect() as conn:
            compiled = _LAST[False, False, False].compiled(conn.dialect)
            params = compiled.parameters({"b_cid": chats[5], "b_n": 20})
            plan = conn.exec_driver_sql(f"EXPLAIN {compiled.sql}", params).one()
            analyzed = conn.exec_driver_sql(f"ANALYZE FORMAT=JSON {compiled.sql}", params).one()
    assert plan.key in ("PRIMARY", "ix_messages_active_path")
    assert plan.type in ("ref", "range")
    table: dict[str, Any] = _first_table(json.loads(analyzed[0]))
    stats = table.get("r_engine_stats")
    if stats is None:
        pytest.skip("this MariaDB does not report pages per statement (r_engine_stats: 10.9+)")
    assert table["r_rows"] >= 20
    # B-tree levels plus the two or three leaf pages holding ~40 KB of rows; interleaved
    # arrivals under an id key would take 20 leaf pages or more.
    assert stats["pages_accessed"] <= 10, stats


def _first_table(plan: object) -> dict[str, Any]:
    """The first table of an ``ANALYZE FORMAT=JSON`` plan (inside its nested_loop, filesort
    or other wrappers)."""
    if isinstance(plan, dict):
        found = plan.get("table")
        if isinstance(found, dict):
            return found
        values = list(plan.values())
    elif isinstance(plan, list):
        values = plan
    else:
        values = []
    for value in values:
        if isinstance(value, dict | list):
            try:
                return _first_table(value)
            except LookupError:
                continue
    raise LookupError("no table in the plan")
