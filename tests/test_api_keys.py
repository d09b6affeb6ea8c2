"""API keys: the secret shown once, only a digest stored, one failure for every bad key."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from chatledger import AuthenticationError, NotFoundError, ValidationError
from chatledger._schema import api_keys

KEY_FORMAT = re.compile(r"clk_([A-Za-z0-9]{12})_[A-Za-z0-9_-]{43}")


@pytest.fixture
def keys(store):
    return store.api_keys


@pytest.fixture
def engine(database_url):
    created = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    yield created
    created.dispose()


def stored_row(engine, key_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()._asdict()


def set_columns(engine, key_id, **values):
    with engine.begin() as conn:
        conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(**values))


def test_create_returns_the_secret_once_and_stores_only_its_digest(keys, engine, user):
    created = keys.create(user.id, name="ci")

    match = KEY_FORMAT.fullmatch(created.secret)
    assert match is not None
    assert match.group(1) == created.key.prefix
    assert (created.key.user_id, created.key.name) == (user.id, "ci")
    assert created.key.revoked_at is created.key.last_used_at is created.key.expires_at is None

    row = stored_row(engine, created.key.id)
    assert row["secret_hash"] == hashlib.sha256(created.secret.encode()).hexdigest()
    secret_part = created.secret.rsplit("_", 1)[-1][-40:]
    for column, value in row.items():
        assert created.secret not in str(value), column
        assert secret_part not in str(value), column
    assert keys.get(created.key.id) == created.key


def test_the_secret_is_not_in_repr_or_str(keys, user):
    created = keys.create(user.id)
    for shown in (repr(created), str(created), repr(created.key), f"{created}"):
        assert created.secret not in shown
    assert "***" in repr(created)


def test_verify_returns_the_key_and_records_its_use(keys, engine, user):
    created = keys.create(user.id, name="app")
    verified = keys.verify(created.secret)
    assert verified.id == created.key.id
    assert verified.last_used_at is not None
    assert keys.get(created.key.id).last_used_at == verified.last_used_at

    # Within a minute of the last use: no write.
    again = keys.verify(created.secret)
    assert again.last_used_at == verified.last_used_at
    assert keys.get(created.key.id).last_used_at == verified.last_used_at

    # Over a minute later: the use is recorded again.
    old = verified.last_used_at - timedelta(seconds=61)
    set_columns(engine, created.key.id, last_used_at=old)
    later = keys.verify(created.secret)
    assert later.last_used_at > verified.last_used_at
    assert keys.get(created.key.id).last_used_at == later.last_used_at


def test_every_bad_key_fails_the_same_way(keys, engine, user):
    good = keys.create(user.id)
    revoked = keys.create(user.id)
    keys.revoke(revoked.key.id)
    expired = keys.create(user.id, expires_at=datetime.now(UTC) + timedelta(hours=1))
    set_columns(engine, expired.key.id, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    prefix_end = 4 + 12 + 1
    wrong_secret = good.secret[:prefix_end] + ("A" if good.secret[-1] != "A" else "B") * 43
    unknown = "clk_" + "Z" * 12 + "_" + good.secret[prefix_end:]

    bad = {
        "unknown prefix": unknown,
        "wrong secret": wrong_secret,
        "revoked": revoked.secret,
        "expired": expired.secret,
        "truncated": good.secret[:-1],
        "extended": good.secret + "A",
        "other scheme": "sk_" + good.secret[3:],
        "empty": "",
        "garbage": "not a key at all",
        "non-ascii": good.secret[:-1] + "é",
        "not a string": None,
    }
    outcomes = set()
    for cause, key in bad.items():
        with pytest.raises(AuthenticationError) as caught:
            keys.verify(key)
        outcomes.add((type(caught.value), str(caught.value), caught.value.args))
        assert caught.value.__cause__ is None, cause
    assert len(outcomes) == 1
    # Failed attempts record no use.
    assert keys.get(revoked.key.id).last_used_at is None
    assert keys.get(expired.key.id).last_used_at is None
    assert keys.verify(good.secret).id == good.key.id


def test_a_key_expires_at_its_time(keys, engine, user):
    created = keys.create(user.id, expires_at=datetime.now(UTC) + timedelta(days=30))
    assert keys.verify(created.secret).id == created.key.id
    set_columns(engine, created.key.id, expires_at=datetime.now(UTC) + timedelta(seconds=-1))
    with pytest.raises(AuthenticationError):
        keys.verify(created.secret)


def test_revoke_is_idempotent(keys, user):
    created = keys.create(user.id)
    revoked = keys.revoke(created.key.id)
    assert revoked.revoked_at is not None
    assert keys.revoke(created.key.id) == revoked
    assert keys.get(created.key.id) == revoked


def test_list_by_user_and_revocation(store, keys, user):
    other = store.users.create(username="other")
    first = keys.create(user.id, name="one").key
    second = keys.create(user.id, name="two").key
    theirs = keys.create(other.id).key
    keys.revoke(first.id)

    assert [k.id for k in keys.list(user_id=user.id)] == [second.id]
    assert [k.id for k in keys.list(user_id=user.id, include_revoked=True)] == [first.id, second.id]
    assert [k.id for k in keys.list()] == [second.id, theirs.id]
    assert {k.id for k in keys.list(include_revoked=True)} == {first.id, second.id, theirs.id}
    assert keys.list(user_id=uuid.uuid4()) == []


def test_keys_page_both_ways_in_creation_order(store, keys, user):
    other = store.users.create(username="paged")
    made = [keys.create(user.id, name=f"k{n}").key for n in range(5)]
    keys.create(other.id)
    keys.revoke(made[1].id)
    first = keys.page(user_id=user.id, limit=2)
    assert ([k.id for k in first.items], first.has_more) == ([made[0].id, made[2].id], True)
    second = keys.page(user_id=user.id, limit=2, after=first.last_cursor)
    assert ([k.id for k in second.items], second.has_more) == ([made[3].id, made[4].id], False)
    back = keys.page(user_id=user.id, limit=2, before=second.first_cursor)
    assert [k.id for k in back.items] == [made[0].id, made[2].id]
    everything = keys.page(user_id=user.id, include_revoked=True, order="desc", limit=10)
    assert [k.id for k in everything.items] == [k.id for k in reversed(made)]
    assert len(keys.page(limit=10).items) == 5  # every user's unrevoked keys
    with pytest.raises(ValidationError) as bad:
        keys.page(after="not a cursor")
    assert bad.value.field == "after"
    with pytest.raises(ValidationError) as huge:
        keys.page(limit=10**6)
    assert huge.value.field == "limit"


def test_unknown_ids(keys):
    with pytest.raises(NotFoundError):
        keys.get(uuid.uuid4())
    with pytest.raises(NotFoundError):
        keys.revoke(uuid.uuid4())
    with pytest.raises(NotFoundError):
        keys.create(uuid.uuid4())
    assert keys.list(include_revoked=True) == []


def test_name_limits(keys, user):
    assert keys.create(user.id, name="n" * 100).key.name == "n" * 100
    with pytest.raises(ValidationError) as caught:
        keys.create(user.id, name="n" * 101)
    assert (caught.value.field, caught.value.limit) == ("name", 100)
    with pytest.raises(ValidationError) as caught:
        keys.create(user.id, name="  ")
    assert caught.value.field == "name"
    assert len(keys.list(user_id=user.id)) == 1


@pytest.mark.parametrize(
    "expires_at",
    [datetime(2030, 1, 1), datetime.now(UTC) - timedelta(seconds=1), "tomorrow"],
    ids=["naive", "past", "not a datetime"],
)
def test_expiry_must_be_an_aware_future_time(keys, user, expires_at):
    with pytest.raises(ValidationError) as caught:
        keys.create(user.id, expires_at=expires_at)
    assert caught.value.field == "expires_at"
    assert keys.list(user_id=user.id) == []


def test_deleting_the_user_deletes_the_keys(store, keys, user):
    created = keys.create(user.id)
    store.users.delete(user.id)
    with pytest.raises(NotFoundError):
        keys.get(created.key.id)
    with pytest.raises(AuthenticationError):
        keys.verify(created.secret)


def test_concurrent_verifies_of_one_key(ledger):
    import threading

    user = ledger.users.create(username="busy")
    created = ledger.api_keys.create(user.id)
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(20):
                assert ledger.api_keys.verify(created.secret).id == created.key.id
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ledger.api_keys.get(created.key.id).last_used_at is not None
