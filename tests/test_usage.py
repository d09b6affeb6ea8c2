"""Usage: token and cost totals per conversation, user, model and UTC day, exact on every
backend, filtered, and scoped to the acting user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from chatledger import NotFoundError, UsageTotals, ValidationError

DAY1 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DAY2 = datetime(2024, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def usage(store):
    return store.usage


def _totals(key: str, messages: int, tokens_in: int, tokens_out: int, cost: str) -> UsageTotals:
    return UsageTotals(key, messages, tokens_in, tokens_out, Decimal(cost))


@pytest.fixture
def world(store):
    """Two users, three conversations, messages on two days with and without usage."""
    ann = store.users.create(username="ann")
    ben = store.users.create(username="ben")
    a1 = store.conversations.create(ann.id)
    a2 = store.conversations.create(ann.id)
    b1 = store.conversations.create(ben.id)
    store.messages.append_many(
        a1.id,
        [
            {"role": "user", "content": "q", "created_at": DAY1},
            {
                "role": "assistant",
                "content": "a",
                "model": "m-large",
                "input_tokens": 100,
                "output_tokens": 20,
                "cost": "0.1",
                "created_at": DAY1,
            },
            {
                "role": "assistant",
                "content": "b",
                "model": "m-small",
                "input_tokens": 50,
                "output_tokens": 5,
                "cost": "0.2",
                "created_at": DAY2,
            },
        ],
    )
    store.messages.append_many(
        a2.id,
        [
            {
                "role": "assistant",
                "content": "c",
                "model": "m-large",
                "input_tokens": 7,
                "cost": "0.000000001",
                "created_at": DAY2,
            },
        ],
    )
    store.messages.append_many(
        b1.id,
        [
            {
                "role": "assistant",
                "content": "d",
                "model": "m-small",
                "output_tokens": 3,
                "created_at": DAY1,
            },
        ],
    )
    return {"ann": ann, "ben": ben, "a1": a1, "a2": a2, "b1": b1}


def test_totals_per_conversation(usage, world):
    expected = {
        str(world["a1"].id): _totals(str(world["a1"].id), 3, 150, 25, "0.3"),
        str(world["a2"].id): _totals(str(world["a2"].id), 1, 7, 0, "0.000000001"),
        str(world["b1"].id): _totals(str(world["b1"].id), 1, 0, 3, "0"),
    }
    result = usage.totals("conversation")
    assert result == [expected[key] for key in sorted(expected)]
    # 0.1 + 0.2 is exactly 0.3, a Decimal, on every backend.
    a1 = next(t for t in result if t.key == str(world["a1"].id))
    assert isinstance(a1.cost, Decimal)
    assert str(a1.cost) == "0.3"


def test_totals_per_user(usage, world):
    expected = {
        str(world["ann"].id): _totals(str(world["ann"].id), 4, 157, 25, "0.300000001"),
        str(world["ben"].id): _totals(str(world["ben"].id), 1, 0, 3, "0"),
    }
    assert usage.totals("user") == [expected[key] for key in sorted(expected)]


def test_totals_per_model_key_messages_without_a_model_as_empty(usage, world):
    assert usage.totals("model") == [
        _totals("", 1, 0, 0, "0"),
        _totals("m-large", 2, 107, 20, "0.100000001"),
        _totals("m-small", 2, 50, 8, "0.2"),
    ]


def test_totals_per_utc_day(store, usage, world):
    # 01:30 at UTC+02:00 is 23:30 UTC the day before.
    late = datetime(2024, 3, 3, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    store.messages.append_many(
        world["b1"].id, [{"role": "user", "content": "late", "created_at": late}]
    )
    assert usage.totals("day") == [
        _totals("2024-03-01", 3, 100, 23, "0.1"),
        _totals("2024-03-02", 3, 57, 5, "0.200000001"),
    ]


def test_day_boundaries_are_utc_midnight(store, usage, chat):
    midnight = datetime(2024, 5, 2, tzinfo=UTC)
    store.messages.append_many(
        chat.id,
        [
            {
                "role": "assistant",
                "content": "x",
                "cost": 1,
                "created_at": midnight - timedelta(microseconds=1),
            },
            {"role": "assistant", "content": "y", "cost": 2, "created_at": midnight},
        ],
    )
    assert [(t.key, t.cost) for t in usage.totals("day")] == [
        ("2024-05-01", Decimal(1)),
        ("2024-05-02", Decimal(2)),
    ]
    assert usage.overall(since=midnight).cost == Decimal(2)
    assert usage.overall(until=midnight).cost == Decimal(1)


def test_overall(usage, world):
    assert usage.overall() == _totals("", 5, 157, 28, "0.300000001")
    assert usage.overall(user_id=world["ben"].id) == _totals("", 1, 0, 3, "0")


def test_overall_of_nothing_is_zero(usage, user):
    assert usage.overall() == _totals("", 0, 0, 0, "0")
    assert usage.overall(user_id=user.id) == _totals("", 0, 0, 0, "0")
    assert usage.totals("model") == []


def test_filters_combine(usage, world):
    ann = str(world["ann"].id)
    assert usage.totals("model", user_id=ann) == [
        _totals("", 1, 0, 0, "0"),
        _totals("m-large", 2, 107, 20, "0.100000001"),
        _totals("m-small", 1, 50, 5, "0.2"),
    ]
    assert usage.totals("day", conversation_id=world["a1"].id) == [
        _totals("2024-03-01", 2, 100, 20, "0.1"),
        _totals("2024-03-02", 1, 50, 5, "0.2"),
    ]
    assert usage.overall(model="m-small") == _totals("", 2, 50, 8, "0.2")
    assert usage.overall(model="") == _totals("", 1, 0, 0, "0")
    assert usage.overall(model="unknown") == _totals("", 0, 0, 0, "0")
    assert usage.overall(since=DAY2) == _totals("", 2, 57, 5, "0.200000001")
    assert usage.overall(until=DAY2) == _totals("", 3, 100, 23, "0.1")
    assert usage.overall(since=DAY1, until=DAY1) == _totals("", 0, 0, 0, "0")
    assert usage.totals("user", model="m-small", since=DAY1, until=DAY2) == [
        _totals(str(world["ben"].id), 1, 0, 3, "0")
    ]


def test_large_sums_stay_exact(store, usage, chat):
    biggest = Decimal("999999999.999999999")
    store.messages.append_many(
        chat.id,
        [
            {"role": "assistant", "content": str(i), "cost": biggest, "input_tokens": 2**31 - 1}
            for i in range(3)
        ],
    )
    total = usage.overall()
    assert total.cost == Decimal("2999999999.999999997")
    assert total.input_tokens == 3 * (2**31 - 1)


def test_unknown_user_or_conversation_is_not_found(usage, world):
    with pytest.raises(NotFoundError) as caught:
        usage.totals("model", user_id=uuid.uuid4())
    assert caught.value.kind == "user"
    with pytest.raises(NotFoundError) as caught:
        usage.overall(conversation_id=uuid.uuid4())
    assert caught.value.kind == "conversation"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda u: u.totals("session"), "by"),
        (lambda u: u.totals("day", since=datetime(2024, 1, 1)), "since"),
        (lambda u: u.overall(until=datetime(2024, 1, 1)), "until"),
        (lambda u: u.overall(since=DAY2, until=DAY1), "until"),
        (lambda u: u.overall(user_id="nobody"), "user_id"),
        (lambda u: u.overall(conversation_id=42), "conversation_id"),
        (lambda u: u.overall(model="m" * 201), "model"),
    ],
)
def test_bad_arguments_are_rejected(usage, call, field):
    with pytest.raises(ValidationError) as caught:
        call(usage)
    assert caught.value.field == field


def test_a_user_scope_counts_only_its_conversations(store, world):
    ann, ben = world["ann"], world["ben"]
    scoped = store.as_user(ann.id).usage
    assert scoped.overall() == _totals("", 4, 157, 25, "0.300000001")
    assert scoped.overall(user_id=ann.id) == scoped.overall()
    assert [t.key for t in scoped.totals("user")] == [str(ann.id)]
    assert {t.key for t in scoped.totals("conversation")} == {
        str(world["a1"].id),
        str(world["a2"].id),
    }
    assert scoped.totals("model", conversation_id=world["a2"].id) == [
        _totals("m-large", 1, 7, 0, "0.000000001")
    ]
    with pytest.raises(NotFoundError) as caught:
        scoped.totals("model", user_id=ben.id)
    assert caught.value.kind == "user"
    with pytest.raises(NotFoundError):
        scoped.overall(conversation_id=world["b1"].id)
    with pytest.raises(NotFoundError):
        scoped.totals("day", conversation_id=world["b1"].id)
