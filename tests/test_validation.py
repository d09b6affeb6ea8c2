"""Bad input: one policy on every backend, a typed error naming the field and the limit, and
nothing written."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from chatledger import Limits, ValidationError

BAD_MESSAGES = [
    ({"role": "robot"}, "role"),
    ({"role": None}, "role"),
    ({"content": b"bytes are not text"}, "content"),
    ({"content": None}, "content"),
    ({"content": "nul \x00 byte"}, "content"),
    ({"content": "lone surrogate \ud800"}, "content"),
    ({"intent": "x" * 101}, "intent"),
    ({"model": "m" * 201}, "model"),
    ({"request_id": "r" * 201}, "request_id"),
    ({"idempotency_key": "k" * 201}, "idempotency_key"),
    ({"idempotency_key": "nul\x00"}, "idempotency_key"),
    ({"input_tokens": -1}, "input_tokens"),
    ({"input_tokens": 2**31}, "input_tokens"),
    ({"output_tokens": True}, "output_tokens"),
    ({"output_tokens": 1.5}, "output_tokens"),
    ({"latency_ms": -5}, "latency_ms"),
    ({"cost": -0.01}, "cost"),
    ({"cost": "1e-10"}, "cost"),
    ({"cost": "abc"}, "cost"),
    ({"cost": math.nan}, "cost"),
    ({"cost": Decimal("Infinity")}, "cost"),
    ({"cost": Decimal("1000000000")}, "cost"),
    ({"metadata": ["not", "a", "mapping"]}, "metadata"),
    ({"metadata": {"when": object()}}, "metadata"),
    ({"metadata": {"x": math.inf}}, "metadata"),
    ({"metadata": {"deep": [{"nul": "a\x00b"}]}}, "metadata"),
    ({"metadata": {"key\x00": 1}}, "metadata"),
    ({"metadata": {"s": "\udc80"}}, "metadata"),
]


@pytest.mark.parametrize(("override", "field"), BAD_MESSAGES, ids=[f for _, f in BAD_MESSAGES])
def test_bad_message_is_rejected_and_nothing_is_written(store, chat, override, field):
    arguments = {"role": "user", "content": "hello", **override}
    role, content = arguments.pop("role"), arguments.pop("content")
    with pytest.raises(ValidationError) as caught:
        store.messages.append(chat.id, role, content, **arguments)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert store.messages.count(chat.id) == 0
    assert store.conversations.get(chat.id).message_count == 0


def test_limits_are_configurable_and_named(database_url, open_store):
    store = open_store(database_url, limits=Limits(max_content_chars=10, max_metadata_bytes=20))
    owner = store.users.create()
    chat = store.conversations.create(owner.id)
    store.messages.append(chat.id, "user", "x" * 10)
    with pytest.raises(ValidationError) as caught:
        store.messages.append(chat.id, "user", "x" * 11)
    assert (caught.value.field, caught.value.limit) == ("content", 10)
    assert "11 characters exceeds the limit of 10" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        store.messages.append(chat.id, "user", "ok", metadata={"k": "v" * 30})
    assert (caught.value.field, caught.value.limit) == ("metadata", 20)
    assert store.messages.count(chat.id) == 1


def test_text_at_the_limit_is_accepted_on_every_backend(store, user):
    chat = store.conversations.create(user.id, title="t" * 500, intent="i" * 100)
    sent = store.messages.append(
        chat.id,
        "tool",
        "🙂" * 1000,
        model="m" * 200,
        request_id="r" * 200,
        idempotency_key="k" * 200,
        cost="999999999.999999999",
        input_tokens=2**31 - 1,
    )
    (stored,) = store.messages.last(chat.id, 1)
    assert stored == sent
    assert stored.cost == Decimal("999999999.999999999")


def test_unicode_and_control_characters_other_than_nul_round_trip(store, chat):
    text = "tab\tnew\nline \x01\x1f é 中文 👩‍💻 \u200b"
    store.messages.append(chat.id, "user", text, metadata={"k": text})
    (stored,) = store.messages.last(chat.id, 1)
    assert (stored.content, stored.metadata) == (text, {"k": text})


@pytest.mark.parametrize("bad_id", ["not-a-uuid", 42, None])
def test_bad_ids_are_validation_errors(store, bad_id):
    with pytest.raises(ValidationError) as caught:
        store.conversations.get(bad_id)
    assert caught.value.field == "conversation_id"


def test_bad_order_and_role_filters(store, chat):
    with pytest.raises(ValidationError):
        store.messages.list(chat.id, order="sideways")
    with pytest.raises(ValidationError):
        store.messages.last(chat.id, role="robot")
    with pytest.raises(ValidationError):
        store.messages.last(chat.id, 0)
