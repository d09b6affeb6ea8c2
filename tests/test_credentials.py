"""Passwords (argon2id: set, verify by email/username/external id, rehash) and roles."""

from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from chatledger import AuthenticationError, NotFoundError, ValidationError
from chatledger._schema import users

PASSWORD = "correct horse battery staple"


@pytest.fixture
def engine(database_url):
    """A plain engine on the test database, to look at and tamper with stored rows."""
    created = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    yield created
    created.dispose()


def stored_hash(engine, user_id):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(users.c.password_hash).where(users.c.id == user_id)
        ).scalar_one()


@pytest.fixture
def alice(store):
    user = store.users.create(external_id="ext-alice", email="Alice@Example.com", username="alice")
    store.users.set_password(user.id, PASSWORD)
    return user


def test_set_password_stores_an_argon2id_hash_and_never_the_password(store, engine, alice):
    hashed = stored_hash(engine, alice.id)
    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed
    assert PasswordHasher().verify(hashed, PASSWORD)
    assert not hasattr(store.users.get(alice.id), "password_hash")


def test_verify_password_by_email_username_or_external_id(store, alice):
    current = store.users.get(alice.id)
    for login in ("alice@example.com", "  ALICE@example.com ", "alice", "ext-alice"):
        assert store.users.verify_password(login, PASSWORD) == current, login


def test_every_failure_is_the_same_error(store, alice):
    nobody = store.users.create(username="nopassword")
    failures = {
        "wrong password": lambda: store.users.verify_password("alice", PASSWORD + "!"),
        "unknown login": lambda: store.users.verify_password("mallory", PASSWORD),
        "no password set": lambda: store.users.verify_password(nobody.username, PASSWORD),
        "empty login": lambda: store.users.verify_password("", PASSWORD),
        "NUL in login": lambda: store.users.verify_password("ali\x00ce", PASSWORD),
        "overlong login": lambda: store.users.verify_password("a" * 10_000, PASSWORD),
        "short password": lambda: store.users.verify_password("alice", "x"),
        "lone surrogate": lambda: store.users.verify_password("alice", "\ud800" * 9),
    }
    messages = set()
    for cause, attempt in failures.items():
        with pytest.raises(AuthenticationError) as caught:
            attempt()
        messages.add((type(caught.value), str(caught.value), caught.value.args))
        assert PASSWORD not in str(caught.value), cause
    assert len(messages) == 1


def test_logins_are_tried_as_email_then_username_then_external_id(store):
    by_email = store.users.create(email="shared@example.com")
    by_username = store.users.create(username="shared@example.com")
    by_external = store.users.create(external_id="shared@example.com")
    for user, secret in (
        (by_email, "email-pw1"),
        (by_username, "user-pw12"),
        (by_external, "ext-pw12"),
    ):
        store.users.set_password(user.id, secret)

    assert store.users.verify_password("shared@example.com", "email-pw1").id == by_email.id
    # The email matched first: the others' passwords are checked against that user only.
    with pytest.raises(AuthenticationError):
        store.users.verify_password("shared@example.com", "user-pw12")
    store.users.update(by_email.id, email=None)
    assert store.users.verify_password("shared@example.com", "user-pw12").id == by_username.id
    store.users.update(by_username.id, username="someone")
    assert store.users.verify_password("shared@example.com", "ext-pw12").id == by_external.id


@pytest.mark.parametrize(
    ("password", "limit"),
    [("1234567", 8), ("x" * 1025, 1024)],
    ids=["one under the minimum", "one over the maximum"],
)
def test_password_length_limits(store, engine, alice, password, limit):
    before = stored_hash(engine, alice.id)
    with pytest.raises(ValidationError) as caught:
        store.users.set_password(alice.id, password)
    assert (caught.value.field, caught.value.limit) == ("password", limit)
    assert password not in str(caught.value)
    assert stored_hash(engine, alice.id) == before


@pytest.mark.parametrize("password", ["12345678", "é" * 1024, " " * 8])
def test_passwords_at_the_limits_are_accepted(store, alice, password):
    store.users.set_password(alice.id, password)
    assert store.users.verify_password("alice", password).id == alice.id
    with pytest.raises(AuthenticationError):
        store.users.verify_password("alice", PASSWORD)


@pytest.mark.parametrize("password", ["secret\x00password", "\ud800" * 8, b"bytes-password", None])
def test_bad_passwords_are_rejected_without_echo(store, engine, alice, password):
    before = stored_hash(engine, alice.id)
    with pytest.raises(ValidationError) as caught:
        store.users.set_password(alice.id, password)
    assert caught.value.field == "password"
    assert "secret" not in str(caught.value)
    assert "bytes-password" not in str(caught.value)
    assert stored_hash(engine, alice.id) == before


def test_set_password_of_unknown_user(store):
    with pytest.raises(NotFoundError):
        store.users.set_password(uuid.uuid4(), PASSWORD)


def test_changing_the_password_replaces_the_old_one(store, alice):
    store.users.set_password(alice.id, "a new password")
    assert store.users.verify_password("alice", "a new password").id == alice.id
    with pytest.raises(AuthenticationError):
        store.users.verify_password("alice", PASSWORD)


def test_a_weak_hash_is_replaced_after_a_successful_verify(store, engine, alice):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with engine.begin() as conn:
        conn.execute(sa.update(users).where(users.c.id == alice.id).values(password_hash=weak))

    with pytest.raises(AuthenticationError):
        store.users.verify_password("alice", "not the password")
    assert stored_hash(engine, alice.id) == weak  # a failure rehashes nothing

    assert store.users.verify_password("alice", PASSWORD).id == alice.id
    fresh = stored_hash(engine, alice.id)
    assert fresh != weak
    assert not PasswordHasher().check_needs_rehash(fresh)
    assert store.users.verify_password("alice", PASSWORD).id == alice.id
    assert stored_hash(engine, alice.id) == fresh  # current parameters: left alone


def test_the_password_never_reaches_the_log(store, alice, caplog):
    with caplog.at_level(logging.DEBUG):
        store.users.set_password(alice.id, PASSWORD)
        store.users.verify_password("alice", PASSWORD)
        with pytest.raises(AuthenticationError):
            store.users.verify_password("alice", PASSWORD + "x")
        with pytest.raises(ValidationError):
            store.users.set_password(alice.id, PASSWORD + "\x00")
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


def test_an_unknown_login_does_the_same_hashing_work_as_a_wrong_password(store, monkeypatch):
    """Timing must not reveal whether a login exists: both paths run one argon2 verify (the
    unknown one against a dummy hash). Counted, not timed: the suite has no timing asserts."""
    from chatledger._ops import credentials

    user = store.users.create(username="counted")
    store.users.set_password(user.id, PASSWORD)
    calls: list[str] = []
    real = credentials.HASHER

    class CountingHasher:
        def __getattr__(self, name):
            return getattr(real, name)

        def verify(self, hashed, candidate):
            calls.append(hashed)
            return real.verify(hashed, candidate)

    monkeypatch.setattr(credentials, "HASHER", CountingHasher())
    for login in ("nobody-at-all", "counted", "x" * 5000):
        with pytest.raises(AuthenticationError):
            store.users.verify_password(login, "wrong password")
    assert len(calls) == 3
    assert all(hashed.startswith("$argon2") for hashed in calls)


def test_login_and_password_must_be_strings(store):
    with pytest.raises(ValidationError) as caught:
        store.users.verify_password(42, PASSWORD)
    assert caught.value.field == "login"
    with pytest.raises(ValidationError) as caught:
        store.users.verify_password("alice", None)
    assert caught.value.field == "password"


def test_users_with_a_role(store):
    admins = [store.users.create(username=f"admin{i}", role="admin") for i in range(3)]
    store.users.create(username="plain")
    editor = store.users.create(username="ed", role="editor")

    first = store.users.with_role("admin", limit=2)
    assert [u.id for u in first] == [a.id for a in admins[:2]]
    assert first.has_more
    rest = store.users.with_role("admin", limit=2, after=first.last_cursor)
    assert [u.id for u in rest] == [admins[2].id]
    assert not rest.has_more
    assert [u.id for u in store.users.with_role("editor")] == [editor.id]
    assert [u.username for u in store.users.with_role("user")] == ["plain"]
    assert list(store.users.with_role("nobody-has-this")) == []
    newest = store.users.with_role("admin", order="desc", limit=1)
    assert [u.id for u in newest] == [admins[2].id]


@pytest.mark.parametrize(("role", "limit"), [(" ", None), ("r" * 51, 50)])
def test_with_role_validates_the_role(store, role, limit):
    with pytest.raises(ValidationError) as caught:
        store.users.with_role(role)
    assert (caught.value.field, caught.value.limit) == ("role", limit)
