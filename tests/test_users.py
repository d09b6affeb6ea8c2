"""Users: create, look up, get-or-create, list, update, delete with cascade."""

from __future__ import annotations

import uuid

import pytest

from chatledger import ConflictError, NotFoundError, ValidationError


def test_create_and_look_up_by_every_unique_key(store):
    created = store.users.create(
        external_id="auth0|1",
        email="  Ada.Lovelace@Example.COM ",
        username="ada",
        display_name="Ada Lovelace",
        role="admin",
        metadata={"plan": "pro"},
    )
    assert created.email == "ada.lovelace@example.com"
    assert created.role == "admin"
    assert store.users.get(created.id) == created
    assert store.users.get(str(created.id)) == created
    assert store.users.get_by_external_id("auth0|1") == created
    assert store.users.get_by_email("ADA.LOVELACE@example.com") == created
    assert store.users.get_by_username("ada") == created


def test_defaults(store):
    user = store.users.create()
    assert user.role == "user"
    assert (user.external_id, user.email, user.username, user.metadata) == (None, None, None, None)
    assert user.created_at == user.updated_at
    assert user.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("external_id", "x-1", "x-1"),
        ("email", "a@example.com", "A@EXAMPLE.com"),
        ("username", "bob", "bob"),
    ],
)
def test_unique_keys_conflict(store, field, first, second):
    store.users.create(**{field: first})
    with pytest.raises(ConflictError) as caught:
        store.users.create(**{field: second})
    assert caught.value.field == field
    assert store.users.count() == 1


def test_usernames_are_case_sensitive_on_every_backend(store):
    store.users.create(username="Bob")
    assert store.users.create(username="bob").username == "bob"


def test_get_or_create_returns_the_same_user(store):
    first = store.users.get_or_create("ext-7", email="seven@example.com", display_name="Seven")
    again = store.users.get_or_create("ext-7", display_name="ignored")
    assert again == first
    assert again.display_name == "Seven"
    assert store.users.count() == 1


def test_ensure_says_whether_it_created_the_user(store):
    user, created = store.users.ensure("ext-8", email="eight@example.com", display_name="Eight")
    assert created
    assert (user.external_id, user.email, user.display_name) == (
        "ext-8",
        "eight@example.com",
        "Eight",
    )
    again = store.users.ensure("ext-8", display_name="ignored")
    assert (again.user, again.created) == (user, False)
    assert store.users.get_or_create("ext-8") == user
    with pytest.raises(ValidationError) as caught:
        store.users.ensure(None)
    assert caught.value.field == "external_id"
    assert store.users.count() == 1


def test_missing_users_are_not_found(store):
    with pytest.raises(NotFoundError):
        store.users.get(uuid.uuid4())
    for lookup in (store.users.get_by_external_id, store.users.get_by_username):
        with pytest.raises(NotFoundError):
            lookup("nobody")
    with pytest.raises(NotFoundError):
        store.users.get_by_email("nobody@example.com")
    with pytest.raises(NotFoundError):
        store.users.update(uuid.uuid4(), display_name="x")
    with pytest.raises(NotFoundError):
        store.users.delete(uuid.uuid4())


def test_update_changes_only_what_is_given(store):
    user = store.users.create(email="a@example.com", display_name="A", metadata={"k": 1})
    updated = store.users.update(user.id, display_name="Alice", metadata=None)
    assert updated.display_name == "Alice"
    assert updated.metadata is None
    assert updated.email == "a@example.com"
    assert updated.updated_at >= user.updated_at
    assert store.users.get(user.id) == updated


def test_update_to_a_taken_email_conflicts_and_changes_nothing(store):
    store.users.create(email="taken@example.com")
    other = store.users.create(email="free@example.com")
    with pytest.raises(ConflictError):
        store.users.update(other.id, email="taken@example.com")
    assert store.users.get(other.id).email == "free@example.com"


def test_list_pages_in_creation_order(store):
    created = [store.users.create(username=f"u{i}") for i in range(7)]
    first = store.users.list(limit=3)
    assert [u.id for u in first] == [u.id for u in created[:3]]
    assert first.has_more
    second = store.users.list(limit=3, after=first.last_cursor)
    third = store.users.list(limit=3, after=second.last_cursor)
    assert [u.id for u in second] + [u.id for u in third] == [u.id for u in created[3:]]
    assert not third.has_more
    newest = store.users.list(limit=2, order="desc")
    assert [u.id for u in newest] == [created[6].id, created[5].id]
    assert store.users.count() == 7


def test_delete_cascades_to_conversations_and_messages(store):
    doomed = store.users.create(username="doomed")
    kept = store.users.create(username="kept")
    chat = store.conversations.create(doomed.id)
    store.messages.append(chat.id, "user", "bye")
    survivor = store.conversations.create(kept.id)
    store.messages.append(survivor.id, "user", "hi")

    store.users.delete(doomed.id)

    with pytest.raises(NotFoundError):
        store.conversations.get(chat.id)
    with pytest.raises(NotFoundError):
        store.messages.last(chat.id)
    assert store.messages.count(survivor.id) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "not an email"}, "email"),
        ({"username": "   "}, "username"),
        ({"username": "x" * 101}, "username"),
        ({"external_id": "x" * 256}, "external_id"),
        ({"display_name": "x" * 201}, "display_name"),
        ({"role": ""}, "role"),
        ({"metadata": ["not", "a", "mapping"]}, "metadata"),
    ],
)
def test_bad_user_fields_are_rejected_naming_the_field(store, kwargs, field):
    with pytest.raises(ValidationError) as caught:
        store.users.create(**kwargs)
    assert caught.value.field == field
    assert store.users.count() == 0
