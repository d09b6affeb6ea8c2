"""A user's data: export, erasure (with audit redaction), and retention of old conversations."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from chatledger import NotFoundError, ValidationError
from chatledger._ops import privacy
from chatledger._schema import Base, conversations, messages

#: Every table holding a user's data, and why: kept by hand, so a new table with a user column
#: (or a foreign key into such a table) fails test_every_table_is_classified until it is added
#: here and to chatledger._ops.privacy.
USER_TABLES = {
    "users": "the user",
    "conversations": "owner_id",
    "messages": "conversation_id -> their conversations",
    "message_feedback": "rater_id, and conversation_id -> their conversations",
    "citations": "conversation_id -> their conversations",
    "survey_responses": "user_id",
    "token_balances": "user_id",
    "token_ledger": "user_id",
    "api_keys": "user_id",
    "idempotent_requests": "api_key_id -> their API keys",
    "audit_events": "user_id (no foreign key: redacted, not deleted)",
    "graph_threads": "conversation_id -> their conversations",
    "graph_checkpoints": "thread_key -> their checkpoint threads",
    "graph_blobs": "thread_key -> their checkpoint threads",
    "graph_writes": "thread_key -> their checkpoint threads",
    "hidden_messages": "conversation_id -> their conversations",
    "message_streams": "conversation_id -> their conversations",
    "stream_chunks": "message_id -> their streams",
    "tool_calls": "conversation_id -> their conversations",
}
USER_COLUMN_NAMES = {"user_id", "owner_id", "rater_id"}


@pytest.fixture
def engine(database_url):
    created = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    yield created
    created.dispose()


# -- classification ---------------------------------------------------------------------------


def user_bearing_tables():
    """Tables with a user column, or a foreign key into a table that holds user data."""
    found = {"users"}
    changed = True
    while changed:
        changed = False
        for table in Base.metadata.sorted_tables:
            if table.name in found:
                continue
            named = any(column.name in USER_COLUMN_NAMES for column in table.columns)
            linked = any(fk.column.table.name in found for fk in table.foreign_keys)
            if named or linked:
                found.add(table.name)
                changed = True
    return found


def test_every_table_is_classified():
    every = {table.name for table in Base.metadata.sorted_tables}
    assert user_bearing_tables() == set(USER_TABLES)
    assert set(privacy.USER_ROWS) == set(USER_TABLES)
    assert set(privacy.NOT_USER_DATA) == every - set(USER_TABLES)
    assert set(privacy.ERASE_ORDER) | {"audit_events"} == set(USER_TABLES)


def test_erasure_deletes_children_first():
    order = list(privacy.ERASE_ORDER)
    for position, name in enumerate(order):
        for fk in Base.metadata.tables[name].foreign_keys:
            parent = fk.column.table.name
            if parent in order and parent != name:
                assert order.index(parent) > position, f"{name} before {parent}"


def test_an_unclassified_table_fails_loudly(store, user, monkeypatch):
    monkeypatch.delitem(privacy.NOT_USER_DATA, "visitors")
    with pytest.raises(RuntimeError, match="visitors"):
        store.users.export(user.id)
    with pytest.raises(RuntimeError, match="visitors"):
        store.users.erase(user.id)
    assert store.users.get(user.id) == user


# -- data in every table ----------------------------------------------------------------------


def populate(store, name):
    """A user with data in every table that can hold a user's data."""
    tag = uuid.uuid4().hex[:6]
    user = store.users.create(
        external_id=f"ext-{name}-{tag}",
        email=f"{name}-{tag}@example.com",
        username=f"{name}-{tag}",
        display_name=name.title(),
    )
    store.users.set_password(user.id, f"{name} password")
    chat = store.conversations.create(user.id, title=f"{name}'s chat")
    question = store.messages.append(chat.id, "user", f"question of {name}")
    answer = store.messages.append(
        chat.id,
        "assistant",
        f"answer to {name}",
        model="m",
        input_tokens=5,
        output_tokens=7,
        cost=Decimal("0.000000123"),
        metadata={"k": [1, 2]},
    )
    feedback = store.feedback
    feedback.rate(answer.id, rater_id=user.id, thumb="up", comment="mine")
    store.citations.add(answer.id, url="https://example.com/doc", title="doc")
    store.surveys.submit("onboarding", {"q": "a"}, user_id=user.id, grant=10)
    tokens = store.tokens
    tokens.credit(5, user_id=user.id, reason="bonus")
    tokens.debit(2, user_id=user.id, reason="usage", message_id=answer.id)
    key = store.api_keys.create(user.id, name=f"{name} key")
    audit = store.audit
    audit.record("user.login", user_id=user.id, category="access")
    audit.record("note", description=f"support ticket about {user.id}")
    audit.record("note", metadata={"subject": str(user.id)})
    return {"user": user, "chat": chat, "question": question, "answer": answer, "key": key}


@pytest.fixture
def alice_and_bob(store):
    alice, bob = populate(store, "alice"), populate(store, "bob")
    feedback = store.feedback
    feedback.rate(bob["answer"].id, rater_id=alice["user"].id, thumb="down")  # alice rates bob
    feedback.rate(alice["answer"].id, rater_id=bob["user"].id, score=4)  # bob rates alice
    store.audit.record("system.start", category="system")
    return alice, bob


def identifiers(user):
    found = [str(user.id), user.id.hex, user.email, user.username, user.external_id]
    return [value for value in found if value is not None]


def mentions(engine, user):
    """(table, column, value) of every stored value that names ``user``."""
    wanted = [needle.lower() for needle in identifiers(user)]
    found = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for column, value in row._mapping.items():
                    if value == user.id:
                        found.append((table.name, column, value))
                        continue
                    text = (
                        json.dumps(value) if isinstance(value, dict | list) else str(value)
                    ).lower()
                    if any(needle in text for needle in wanted):
                        found.append((table.name, column, value))
    return found


# -- export -----------------------------------------------------------------------------------


def test_export_holds_everything_of_the_user_as_json(store, alice_and_bob):
    alice, bob = alice_and_bob
    document = store.users.export(alice["user"].id)

    assert json.loads(json.dumps(document)) == document  # plain JSON, nothing to convert
    assert document["format"] == privacy.EXPORT_FORMAT == 1
    assert document["user_id"] == str(alice["user"].id)
    tables = document["tables"]
    assert set(tables) == set(USER_TABLES)

    (person,) = tables["users"]
    assert person["email"] == alice["user"].email
    assert person["id"] == str(alice["user"].id)
    assert "password_hash" not in person
    assert [m["content"] for m in tables["messages"]] == ["question of alice", "answer to alice"]
    assert Decimal(tables["messages"][1]["cost"]) == Decimal("0.000000123")
    assert [c["id"] for c in tables["conversations"]] == [str(alice["chat"].id)]
    raters = sorted((f["rater_id"], f["message_id"]) for f in tables["message_feedback"])
    assert raters == sorted(
        [
            (str(alice["user"].id), str(alice["answer"].id)),  # her rating of her answer
            (str(alice["user"].id), str(bob["answer"].id)),  # her rating of bob's
            (str(bob["user"].id), str(alice["answer"].id)),  # bob's rating of hers
        ]
    )
    assert [c["message_id"] for c in tables["citations"]] == [str(alice["answer"].id)]
    assert [s["tokens_granted"] for s in tables["survey_responses"]] == [10]
    assert [b["balance"] for b in tables["token_balances"]] == [13]
    assert sorted(e["delta"] for e in tables["token_ledger"]) == [-2, 5, 10]
    (key,) = tables["api_keys"]
    assert key["prefix"] == alice["key"].key.prefix
    assert "secret_hash" not in key
    assert alice["key"].secret not in json.dumps(document)
    assert [e["event_type"] for e in tables["audit_events"]] == ["user.login"]
    # Of bob, only the ratings exchanged with her (which name his message and conversation).
    exported = json.dumps(document)
    assert "bob" not in exported
    assert bob["user"].email not in exported


def test_export_of_an_unknown_user(store):
    with pytest.raises(NotFoundError):
        store.users.export(uuid.uuid4())


# -- erasure ----------------------------------------------------------------------------------


def test_erase_leaves_nothing_of_the_user_in_any_table(store, engine, alice_and_bob):
    alice, bob = alice_and_bob
    audit = store.audit
    assert mentions(engine, alice["user"])  # the scan does find her before
    bob_before = store.users.export(bob["user"].id)["tables"]

    report = store.users.erase(alice["user"].id)

    assert report.user_id == alice["user"].id
    assert report.deleted == {
        "message_feedback": 3,
        "citations": 1,
        "token_ledger": 3,
        "idempotent_requests": 0,
        "api_keys": 1,
        "survey_responses": 1,
        # Checkpoints and hidden ranges: tests/test_integrations_langgraph.py erases those.
        "graph_writes": 0,
        "graph_blobs": 0,
        "graph_checkpoints": 0,
        "graph_threads": 0,
        "hidden_messages": 0,
        # Streams: tests/test_streams.py erases those.
        "stream_chunks": 0,
        "message_streams": 0,
        # Tool calls: tests/test_tools.py erases those.
        "tool_calls": 0,
        "messages": 2,
        "conversations": 1,
        "token_balances": 1,
        "users": 1,
    }
    assert report.redacted_audit_events == 3
    assert mentions(engine, alice["user"]) == []
    assert audit.verify().ok

    # Bob keeps everything, but the ratings exchanged with her (they were on or by her).
    bob_after = store.users.export(bob["user"].id)["tables"]
    assert bob_after["message_feedback"] == [
        f
        for f in bob_before["message_feedback"]
        if f["rater_id"] == str(bob["user"].id) and f["message_id"] == str(bob["answer"].id)
    ]
    for table in set(USER_TABLES) - {"message_feedback"}:
        assert bob_after[table] == bob_before[table], table
    assert store.users.verify_password(bob["user"].username, "bob password").id == bob["user"].id
    assert store.api_keys.verify(bob["key"].secret).id == bob["key"].key.id

    # The erasure is on record, without naming her.
    newest = audit.list(limit=1, order="desc").items[0]
    assert (newest.event_type, newest.category, newest.user_id) == (
        "user.erased",
        "compliance",
        None,
    )
    assert newest.metadata["deleted"] == report.deleted
    with pytest.raises(NotFoundError):
        store.users.get(alice["user"].id)


def test_erase_of_an_unknown_user_changes_nothing(store, alice_and_bob):
    alice, _ = alice_and_bob
    before = store.users.get(alice["user"].id)
    with pytest.raises(NotFoundError):
        store.users.erase(uuid.uuid4())
    assert store.users.get(alice["user"].id) == before
    assert store.messages.count(alice["chat"].id) == 2


def test_erase_is_one_transaction(store, alice_and_bob):
    alice, _ = alice_and_bob
    before = store.users.get(alice["user"].id)
    with pytest.raises(RuntimeError), store.transaction():
        store.users.erase(alice["user"].id)
        raise RuntimeError("changed my mind")
    assert store.users.get(alice["user"].id) == before
    assert store.messages.count(alice["chat"].id) == 2
    assert store.audit.verify().ok


def test_erase_a_user_with_no_data(store):
    lonely = store.users.create(username="lonely")
    report = store.users.erase(lonely.id)
    assert report.deleted["users"] == 1
    assert sum(report.deleted.values()) == 1
    assert report.redacted_audit_events == 0


# -- retention --------------------------------------------------------------------------------


def backdate(engine, conversation_id, days, *, minutes=0):
    when = datetime.now(UTC) - timedelta(days=days, minutes=minutes)
    with engine.begin() as conn:
        conn.execute(
            sa.update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(last_activity_at=when)
        )


def states(store, chats):
    return {name: store.conversations.get(chat.id).status for name, chat in chats.items()}


@pytest.fixture
def aged(store, engine, user):
    """Conversations of every status, most inactive for 40 days, one recent."""
    chats = {
        name: store.conversations.create(user.id, title=name)
        for name in ("active", "closed", "archived", "deleted", "recent", "edge")
    }
    for name, chat in chats.items():
        count = {"active": 3, "closed": 2, "archived": 1, "deleted": 4, "recent": 5, "edge": 1}[
            name
        ]
        store.messages.append_many(
            chat.id, [{"role": "user", "content": f"{name} {i}"} for i in range(count)]
        )
    store.conversations.close(chats["closed"].id)
    store.conversations.archive(chats["archived"].id)
    store.conversations.delete(chats["deleted"].id)
    for name in ("active", "closed", "archived", "deleted"):
        backdate(engine, chats[name].id, 40)
    backdate(engine, chats["edge"].id, 30, minutes=-1)  # a minute short of 30 days
    return chats


def test_retention_dry_run_reports_and_changes_nothing(store, aged):
    before = states(store, aged)
    archive = store.conversations.apply_retention(inactive_days=30, dry_run=True)
    assert (archive.dry_run, archive.action, archive.conversations, archive.messages) == (
        True,
        "archive",
        2,
        5,
    )
    delete = store.conversations.apply_retention(inactive_days=30, action="delete", dry_run=True)
    assert (delete.conversations, delete.messages) == (4, 10)
    assert states(store, aged) == before
    assert abs(archive.cutoff - (datetime.now(UTC) - timedelta(days=30))) < timedelta(minutes=1)


def test_retention_archives_inactive_active_and_closed(store, aged):
    archived_at = store.conversations.get(aged["archived"].id).archived_at
    report = store.conversations.apply_retention(inactive_days=30)
    assert (report.dry_run, report.conversations, report.messages) == (False, 2, 5)
    assert states(store, aged) == {
        "active": "archived",
        "closed": "archived",
        "archived": "archived",
        "deleted": "deleted",
        "recent": "active",
        "edge": "active",
    }
    assert store.conversations.get(aged["active"].id).archived_at is not None
    assert store.conversations.get(aged["archived"].id).archived_at == archived_at
    assert store.messages.count(aged["active"].id) == 3
    again = store.conversations.apply_retention(inactive_days=30)
    assert (again.conversations, again.messages) == (0, 0)


def test_retention_deletes_inactive_conversations_with_their_messages(store, engine, aged):
    report = store.conversations.apply_retention(inactive_days=30, action="delete")
    assert (report.action, report.conversations, report.messages) == ("delete", 4, 10)
    for name in ("active", "closed", "archived", "deleted"):
        with pytest.raises(NotFoundError):
            store.conversations.get(aged[name].id)
    assert states(store, {k: aged[k] for k in ("recent", "edge")}) == {
        "recent": "active",
        "edge": "active",
    }
    with engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
    assert left == 6


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 8])
def test_retention_works_in_batches(store, engine, user, batch_size):
    chats = [store.conversations.create(user.id) for _ in range(7)]
    for chat in chats:
        store.messages.append(chat.id, "user", "old")
        backdate(engine, chat.id, 100)
    report = store.conversations.apply_retention(inactive_days=90, batch_size=batch_size)
    assert (report.conversations, report.messages) == (7, 7)
    assert {store.conversations.get(chat.id).status for chat in chats} == {"archived"}


def test_retention_in_a_user_scope_touches_only_that_user(store, engine):
    alice = store.users.create(username="alice")
    bob = store.users.create(username="bob")
    mine = store.conversations.create(alice.id)
    theirs = store.conversations.create(bob.id)
    for chat in (mine, theirs):
        backdate(engine, chat.id, 60)
    scope = store.as_user(alice.id)
    assert scope.conversations.apply_retention(inactive_days=30, dry_run=True).conversations == 1
    report = scope.conversations.apply_retention(inactive_days=30, action="delete")
    assert report.conversations == 1
    with pytest.raises(NotFoundError):
        store.conversations.get(mine.id)
    assert store.conversations.get(theirs.id).status == "active"


@pytest.mark.parametrize(
    ("arguments", "field", "limit"),
    [
        ({"inactive_days": 0}, "inactive_days", 36_500),
        ({"inactive_days": 36_501}, "inactive_days", 36_500),
        ({"inactive_days": 1.5}, "inactive_days", None),
        ({"inactive_days": 30, "action": "purge"}, "action", ("archive", "delete")),
        ({"inactive_days": 30, "batch_size": 0}, "batch_size", 10_000),
        ({"inactive_days": 30, "batch_size": 10_001}, "batch_size", 10_000),
        ({"inactive_days": 30, "dry_run": "yes"}, "dry_run", None),
    ],
)
def test_retention_arguments_are_validated(store, aged, arguments, field, limit):
    before = states(store, aged)
    with pytest.raises(ValidationError) as caught:
        store.conversations.apply_retention(**arguments)
    assert (caught.value.field, caught.value.limit) == (field, limit)
    assert states(store, aged) == before


def test_retention_limits_are_accepted(store, aged):
    assert (
        store.conversations.apply_retention(inactive_days=36_500, batch_size=10_000).conversations
        == 0
    )
    # A day: "edge" (inactive for almost 30 days) too.
    assert store.conversations.apply_retention(inactive_days=1, dry_run=True).conversations == 3


def test_erase_racing_appends_leaves_nothing_behind(ledger, engine):
    alice = ledger.users.create(username="alice-racing", email="alice@racing.example")
    chat = ledger.conversations.create(alice.id)
    landed: list[int] = []
    errors: list[BaseException] = []
    started = threading.Barrier(5)

    def append_until_gone():
        started.wait()
        try:
            while True:
                landed.append(ledger.messages.append(chat.id, "user", "racing").seq)
        except NotFoundError:
            return
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append_until_gone) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    while len(landed) < 20:
        time.sleep(0.001)
    report = ledger.users.erase(alice.id)
    for thread in threads:
        thread.join()

    assert errors == []
    assert report.deleted["messages"] == len(landed)
    assert sorted(landed) == list(range(1, len(landed) + 1))
    assert mentions(engine, alice) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one() == 0


def test_two_erasures_of_one_user(ledger):
    alice = ledger.users.create(username="alice")
    chat = ledger.conversations.create(alice.id)
    ledger.messages.append(chat.id, "user", "hello")
    outcomes: list[Any] = []
    started = threading.Barrier(2)

    def erase():
        started.wait()
        try:
            outcomes.append(ledger.users.erase(alice.id))
        except NotFoundError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=erase) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reports = [o for o in outcomes if not isinstance(o, NotFoundError)]
    assert len(reports) == 1
    assert len(outcomes) == 2
    assert reports[0].deleted["messages"] == 1
    assert ledger.audit.verify().ok


def test_erase_redacts_audit_events_naming_the_user_by_email_or_long_names(ledger):
    gone = ledger.users.create(email="gone.user@example.com", username="gone_user_42")
    kept = ledger.users.create(email="kept@example.com", username="ann")
    by_email = ledger.audit.record(
        "login.failed", description="bad password for gone.user@example.com"
    )
    by_name = ledger.audit.record("note", metadata={"who": "GONE_USER_42"})
    unrelated = ledger.audit.record("note", description="ann logged in; 100% sure")
    ledger.users.erase(gone.id)
    redacted = {e.id for e in ledger.audit.list(limit=100) if e.redacted}
    assert {by_email.id, by_name.id} <= redacted
    assert unrelated.id not in redacted
    assert ledger.audit.verify().ok
    assert ledger.users.get(kept.id).username == "ann"
