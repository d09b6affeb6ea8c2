"""Owner scoping: a store acting for user B cannot see or touch user A's data."""

from __future__ import annotations

import pytest

from chatledger import NotFoundError


@pytest.fixture
def alice_and_bob(store):
    alice = store.users.create(username="alice")
    bob = store.users.create(username="bob")
    chat = store.conversations.create(alice.id, title="alice's")
    message = store.messages.append(chat.id, "user", "secret")
    return store.as_user(alice.id), store.as_user(bob.id), chat, message


def test_owner_sees_own_data(alice_and_bob):
    alice, _, chat, message = alice_and_bob
    assert alice.conversations.get(chat.id).id == chat.id
    assert alice.messages.get(message.id) == message
    assert [c.id for c in alice.conversations.list()] == [chat.id]
    assert alice.conversations.count() == 1
    created = alice.conversations.create(title="another")
    assert created.owner_id == alice.user_id


EVERY_OPERATION = {
    "conversations.get": lambda s, c, m: s.conversations.get(c.id),
    "conversations.update": lambda s, c, m: s.conversations.update(c.id, title="pwned"),
    "conversations.archive": lambda s, c, m: s.conversations.archive(c.id),
    "conversations.unarchive": lambda s, c, m: s.conversations.unarchive(c.id),
    "conversations.close": lambda s, c, m: s.conversations.close(c.id),
    "conversations.restore": lambda s, c, m: s.conversations.restore(c.id),
    "conversations.delete": lambda s, c, m: s.conversations.delete(c.id),
    "conversations.delete_hard": lambda s, c, m: s.conversations.delete(c.id, hard=True),
    "conversations.list_of_owner": lambda s, c, m: s.conversations.list(c.owner_id),
    "conversations.count_of_owner": lambda s, c, m: s.conversations.count(c.owner_id),
    "conversations.create_for_owner": lambda s, c, m: s.conversations.create(c.owner_id),
    "messages.append": lambda s, c, m: s.messages.append(c.id, "user", "injected"),
    "messages.append_replay": lambda s, c, m: s.messages.append(
        c.id, "user", "x", idempotency_key="k"
    ),
    "messages.append_many": lambda s, c, m: s.messages.append_many(
        c.id, [{"role": "user", "content": "injected"}]
    ),
    "messages.get": lambda s, c, m: s.messages.get(m.id),
    "messages.last": lambda s, c, m: s.messages.last(c.id),
    "messages.list": lambda s, c, m: s.messages.list(c.id),
    "messages.count": lambda s, c, m: s.messages.count(c.id),
    "messages.count_role": lambda s, c, m: s.messages.count(c.id, role="user"),
}


@pytest.mark.parametrize("operation", sorted(EVERY_OPERATION))
def test_another_users_objects_are_not_found(store, alice_and_bob, operation):
    _, bob, chat, message = alice_and_bob
    with pytest.raises(NotFoundError):
        EVERY_OPERATION[operation](bob, chat, message)
    # ... and nothing changed.
    unchanged = store.conversations.get(chat.id)
    assert (unchanged.title, unchanged.status, unchanged.message_count) == ("alice's", "active", 1)
    assert store.messages.last(chat.id) == [message]


def test_scope_and_ledger_share_one_transaction(store, alice_and_bob):
    alice, _, chat, _ = alice_and_bob
    with pytest.raises(RuntimeError), store.transaction():
        alice.messages.append(chat.id, "user", "rolled back")
        raise RuntimeError("boom")
    assert store.messages.count(chat.id) == 1
