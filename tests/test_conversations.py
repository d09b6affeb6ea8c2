"""Conversations: create, update, the status life cycle, deletes, the sidebar listing."""

from __future__ import annotations

import uuid

import pytest

from chatledger import ANONYMOUS_USER_ID, ConflictError, NotFoundError, ValidationError
from chatledger._ops.conversations import TRANSITIONS


def test_create_starts_active_and_empty(store, user):
    chat = store.conversations.create(user.id, title="Trip", intent="travel", metadata={"a": 1})
    assert chat.owner_id == user.id
    assert (chat.status, chat.message_count, chat.last_message_at) == ("active", 0, None)
    assert chat.last_activity_at == chat.created_at
    assert store.conversations.get(chat.id) == chat


def test_create_for_a_missing_owner_is_not_found(store):
    with pytest.raises(NotFoundError):
        store.conversations.create(uuid.uuid4())


def test_create_needs_an_owner_outside_a_user_scope(store):
    with pytest.raises(ValidationError) as caught:
        store.conversations.create()
    assert caught.value.field == "owner_id"


def test_update_title_intent_and_metadata(store, chat):
    updated = store.conversations.update(chat.id, title="Renamed", metadata={"pinned": True})
    assert (updated.title, updated.metadata, updated.intent) == ("Renamed", {"pinned": True}, None)
    assert store.conversations.get(chat.id) == updated
    cleared = store.conversations.update(chat.id, title=None)
    assert cleared.title is None
    assert cleared.metadata == {"pinned": True}


def test_title_limit(store, chat):
    with pytest.raises(ValidationError) as caught:
        store.conversations.update(chat.id, title="x" * 501)
    assert (caught.value.field, caught.value.limit) == ("title", 500)


ACTIONS = {
    "archive": "archive",
    "unarchive": "unarchive",
    "close": "close",
    "delete": "delete",
    "restore": "restore",
}


def _reach(store, chat_id, status):
    """Drive a fresh conversation to ``status``."""
    path = {
        "active": [],
        "archived": ["archive"],
        "closed": ["close"],
        "deleted": ["delete"],
    }[status]
    for action in path:
        getattr(store.conversations, action)(chat_id)


@pytest.mark.parametrize("start", ["active", "archived", "closed", "deleted"])
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_life_cycle_follows_the_transition_table(store, user, start, action):
    chat = store.conversations.create(user.id)
    _reach(store, chat.id, start)
    sources, target = TRANSITIONS[action]
    if start == target or start in sources:
        result = (
            store.conversations.delete(chat.id)
            if action == "delete"
            else getattr(store.conversations, action)(chat.id)
        )
        assert store.conversations.get(chat.id).status == target
        if action != "delete":
            assert result.status == target
        archived_at = store.conversations.get(chat.id).archived_at
        assert (archived_at is not None) == (
            target == "archived" or (target in ("closed", "deleted") and start == "archived")
        )
    else:
        with pytest.raises(ConflictError):
            getattr(store.conversations, action)(chat.id)
        assert store.conversations.get(chat.id).status == start


def test_hard_delete_removes_the_conversation_and_its_messages(store, chat):
    store.messages.append(chat.id, "user", "x")
    store.conversations.delete(chat.id, hard=True)
    with pytest.raises(NotFoundError):
        store.conversations.get(chat.id)
    with pytest.raises(NotFoundError):
        store.messages.count(chat.id)
    with pytest.raises(NotFoundError):
        store.conversations.delete(chat.id, hard=True)


def test_listing_orders_by_last_activity_and_pages_both_ways(store, user):
    chats = [store.conversations.create(user.id, title=f"c{i}") for i in range(9)]
    # Activity reorders them: a message moves a conversation to the top.
    for chat in (chats[2], chats[0]):
        store.messages.append(chat.id, "user", "bump")
    expected = [chats[0], chats[2]] + [c for c in reversed(chats) if c not in (chats[0], chats[2])]

    first = store.conversations.list(user.id, limit=4)
    assert [c.id for c in first] == [c.id for c in expected[:4]]
    assert first.has_more
    second = store.conversations.list(user.id, limit=4, after=first.last_cursor)
    third = store.conversations.list(user.id, limit=4, after=second.last_cursor)
    assert [c.id for c in second] == [c.id for c in expected[4:8]]
    assert [c.id for c in third] == [expected[8].id]
    assert not third.has_more
    back = store.conversations.list(user.id, limit=4, before=third.first_cursor)
    assert [c.id for c in back] == [c.id for c in expected[4:8]]
    assert back.has_more
    oldest_first = store.conversations.list(user.id, limit=20, order="asc")
    assert [c.id for c in oldest_first] == [c.id for c in reversed(expected)]


def test_listing_hides_soft_deleted_and_filters_by_status(store, user):
    active = store.conversations.create(user.id)
    archived = store.conversations.create(user.id)
    store.conversations.archive(archived.id)
    deleted = store.conversations.create(user.id)
    store.conversations.delete(deleted.id)

    default = {c.id for c in store.conversations.list(user.id)}
    assert default == {active.id, archived.id}
    assert [c.id for c in store.conversations.list(user.id, status="deleted")] == [deleted.id]
    both = store.conversations.list(user.id, status=["archived", "deleted"])
    assert {c.id for c in both} == {archived.id, deleted.id}
    assert store.conversations.count(user.id) == 2
    assert store.conversations.count(user.id, status="active") == 1
    with pytest.raises(ValidationError):
        store.conversations.list(user.id, status="gone")


def test_listing_is_per_owner(store, user):
    other = store.users.create()
    store.conversations.create(other.id)
    mine = store.conversations.create(user.id)
    assert [c.id for c in store.conversations.list(user.id)] == [mine.id]
    assert store.conversations.count(other.id) == 1


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_page_size_limits(store, user, limit):
    with pytest.raises(ValidationError) as caught:
        store.conversations.list(user.id, limit=limit)
    assert caught.value.field == "limit"


def test_after_and_before_together_are_rejected(store, user):
    store.conversations.create(user.id)
    page = store.conversations.list(user.id)
    with pytest.raises(ValidationError):
        store.conversations.list(user.id, after=page.last_cursor, before=page.first_cursor)


def test_list_all_pages_every_owner_in_creation_order(store, user):
    other = store.users.create()
    made = []
    for i in range(5):
        made.append(store.conversations.create((user if i % 2 else other).id, title=f"c{i}"))
    anonymous = store.conversations.create(ANONYMOUS_USER_ID, title="no one")
    store.conversations.archive(made[1].id)
    store.conversations.delete(made[3].id)
    newest_first = [anonymous, *reversed(made)]
    shown = [c for c in newest_first if c.id != made[3].id]

    first = store.conversations.list_all(limit=3)
    assert [c.id for c in first] == [c.id for c in shown[:3]]
    assert first.has_more
    rest = store.conversations.list_all(limit=3, after=first.last_cursor)
    assert [c.id for c in rest] == [c.id for c in shown[3:]]
    assert not rest.has_more
    back = store.conversations.list_all(limit=3, before=rest.first_cursor)
    assert [c.id for c in back] == [c.id for c in first]
    oldest_first = store.conversations.list_all(order="asc")
    assert [c.id for c in oldest_first] == [c.id for c in reversed(shown)]
    assert [c.id for c in store.conversations.list_all(status="archived")] == [made[1].id]
    assert [c.id for c in store.conversations.list_all(status="deleted")] == [made[3].id]
    assert store.conversations.count_all() == 5
    assert store.conversations.count_all(status=["archived", "deleted"]) == 2
    # In a user scope, list_all is that user's conversations only.
    mine = store.as_user(user.id).conversations
    assert {c.id for c in mine.list_all(status=["active", "archived", "deleted"])} == {
        made[1].id,
        made[3].id,
    }
    assert mine.count_all() == 1
    with pytest.raises(ValidationError) as caught:
        store.conversations.list_all(after=store.conversations.list(user.id).last_cursor)
    assert caught.value.field == "after"


def test_anonymous_conversations_are_for_the_unscoped_ledger_only(store, user):
    anonymous = store.conversations.create(ANONYMOUS_USER_ID, title="session")
    again = store.conversations.create(str(ANONYMOUS_USER_ID))
    assert anonymous.owner_id == again.owner_id == ANONYMOUS_USER_ID
    owner = store.users.get(ANONYMOUS_USER_ID)
    assert (owner.role, owner.display_name) == ("anonymous", "Anonymous")
    reply = store.messages.append(anonymous.id, "user", "hello, without signing in")
    assert store.messages.last(anonymous.id) == [reply]
    assert {c.id for c in store.conversations.list(ANONYMOUS_USER_ID)} == {
        anonymous.id,
        again.id,
    }

    # No user scope sees them, and none can be made for the anonymous owner.
    scope = store.as_user(user.id)
    denied = {
        "get": lambda: scope.conversations.get(anonymous.id),
        "update": lambda: scope.conversations.update(anonymous.id, title="mine"),
        "archive": lambda: scope.conversations.archive(anonymous.id),
        "delete": lambda: scope.conversations.delete(anonymous.id, hard=True),
        "append": lambda: scope.messages.append(anonymous.id, "user", "hijack"),
        "read": lambda: scope.messages.last(anonymous.id),
        "message": lambda: scope.messages.get(reply.id),
        "list": lambda: scope.conversations.list(ANONYMOUS_USER_ID),
    }
    for name, call in denied.items():
        with pytest.raises(NotFoundError):
            call()
        assert name
    assert scope.conversations.list_all().items == []
    for acting in (ANONYMOUS_USER_ID, str(ANONYMOUS_USER_ID)):
        with pytest.raises(ValidationError) as caught:
            store.as_user(acting)
        assert caught.value.field == "user_id"
        with pytest.raises(ValidationError) as no_key:
            store.api_keys.create(acting)
        assert no_key.value.field == "user_id"
    assert store.conversations.get(anonymous.id).message_count == 1
