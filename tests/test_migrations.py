"""Migrations on every backend: up, down, up again; models agree with migrations; the first
open initialises an empty database, once, even when several processes open it at once."""

from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa

from chatledger import ConfigurationError, Ledger, SchemaOutOfDateError, migrate
from chatledger._schema import Base
from chatledger.migrate import VERSION_TABLE


def _tables(url) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def empty_url(backend, make_database, request):
    return make_database(backend, f"migr_{request.node.name[-12:].strip('[]-')}")


def test_upgrade_downgrade_upgrade(empty_url):
    ours = set(Base.metadata.tables)
    assert migrate.current(empty_url) is None

    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()
    assert ours <= _tables(empty_url)
    assert migrate.check(empty_url) == []

    migrate.downgrade(empty_url, "base")
    assert migrate.current(empty_url) is None
    assert not ours & _tables(empty_url)

    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()
    assert migrate.check(empty_url) == []


def test_history_lists_every_revision_newest_first():
    revisions = migrate.history()
    assert revisions[0].is_head
    assert revisions[0].revision == migrate.head()
    assert revisions[-1].down_revision is None
    assert all(r.message for r in revisions)


def test_first_open_initialises_an_empty_database(empty_url):
    with Ledger(empty_url) as ledger:
        assert ledger.users.count() == 0
    assert migrate.current(empty_url) == migrate.head()


def test_a_database_migrated_by_a_newer_chatledger_is_refused(empty_url):
    migrate.upgrade(empty_url)
    engine = sa.create_engine(empty_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'fffffffff'"))
    engine.dispose()
    ledger = Ledger(empty_url)
    with pytest.raises(SchemaOutOfDateError) as caught:
        ledger.open()
    ledger.close()
    assert caught.value.current == "fffffffff"
    assert "newer" in str(caught.value)


def test_tables_of_another_application_with_our_names_are_not_touched(empty_url):
    engine = sa.create_engine(empty_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (name VARCHAR(10))"))
        conn.execute(sa.text("INSERT INTO users (name) VALUES ('theirs')"))
    ledger = Ledger(empty_url)
    with pytest.raises(ConfigurationError) as caught:
        ledger.open()
    ledger.close()
    assert "users" in str(caught.value)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM users")).scalar() == "theirs"
    engine.dispose()


def _open_and_count(url: str, start) -> int:
    start.wait(30)
    with Ledger(url) as ledger:
        return ledger.users.count()


@pytest.mark.slow
def test_concurrent_first_opens_from_processes_do_not_race(empty_url):
    context = multiprocessing.get_context("spawn")
    url = empty_url.render_as_string(hide_password=False)
    with context.Manager() as manager:
        start = manager.Barrier(4)
        with context.Pool(4) as pool:
            results = pool.starmap(_open_and_count, [(url, start)] * 4)
    assert results == [0, 0, 0, 0]
    assert migrate.current(empty_url) == migrate.head()
    assert migrate.check(empty_url) == []


def test_an_older_schema_is_refused_unless_auto_upgrade(empty_url):
    history = migrate.history()
    older = history[1].revision
    migrate.upgrade(empty_url, older)
    ledger = Ledger(empty_url)
    with pytest.raises(SchemaOutOfDateError) as caught:
        ledger.open()
    ledger.close()
    assert (caught.value.current, caught.value.head) == (older, migrate.head())
    assert "chatledger db upgrade" in str(caught.value)
    with Ledger(empty_url, auto_upgrade=True) as upgraded:
        assert upgraded.users.count() == 0
    assert migrate.current(empty_url) == migrate.head()


def test_data_survives_the_upgrade_path(empty_url):
    migrate.upgrade(empty_url, migrate.history()[-1].revision)
    with Ledger(empty_url, auto_upgrade=True) as ledger:
        user = ledger.users.create(email="keep@example.com")
        chat = ledger.conversations.create(user.id)
        ledger.messages.append(chat.id, "user", "still here")
    migrate.downgrade(empty_url, migrate.history()[-1].revision)
    migrate.upgrade(empty_url)
    with Ledger(empty_url) as ledger:
        assert [m.content for m in ledger.messages.last(chat.id)] == ["still here"]
        assert ledger.users.get(user.id).email == "keep@example.com"


def test_conversations_written_before_trees_become_one_branch_trees(empty_url):
    """A database written with the 0004 schema (the release before trees): upgrading makes
    each conversation a chain in seq order whose active leaf is its last message."""
    migrate.upgrade(empty_url, "0004")
    engine = sa.create_engine(empty_url, poolclass=sa.pool.NullPool)
    assert "parent_seq" not in {c["name"] for c in sa.inspect(engine).get_columns("messages")}
    # The models' tables bind the values with their types; only 0004's columns are given.
    import uuid
    from datetime import UTC, datetime

    from chatledger._schema import conversations, messages, users

    now = datetime(2026, 1, 1, tzinfo=UTC)
    owner, chat, empty = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        with engine.begin() as conn:
            conn.execute(
                users.insert(),
                [{"id": owner, "role": "user", "created_at": now, "updated_at": now}],
            )
            for key, count in ((chat, 3), (empty, 0)):
                conn.execute(
                    conversations.insert(),
                    [
                        {
                            "id": key,
                            "owner_id": owner,
                            "status": "active",
                            "message_count": count,
                            "last_activity_at": now,
                            "created_at": now,
                            "updated_at": now,
                        }
                    ],
                )
            conn.execute(
                messages.insert(),
                [
                    {
                        "conversation_id": chat,
                        "seq": seq,
                        "id": uuid.uuid4(),
                        "role": "user" if seq % 2 else "assistant",
                        "content": f"m{seq}",
                        "created_at": now,
                    }
                    for seq in (1, 2, 3)
                ],
            )
    finally:
        engine.dispose()

    migrate.upgrade(empty_url)
    assert migrate.check(empty_url) == []
    with Ledger(empty_url) as ledger:
        tree = ledger.trees.tree(chat)
        assert [
            (m.seq, m.parent_seq, m.depth, m.sibling_index, m.on_active_path) for m in tree
        ] == [
            (1, None, 0, 0, True),
            (2, 1, 1, 0, True),
            (3, 2, 2, 0, True),
        ]
        moved = ledger.conversations.get(chat)
        assert (moved.active_leaf_seq, moved.path_length) == (3, 3)
        untouched = ledger.conversations.get(empty)
        assert (untouched.active_leaf_seq, untouched.path_length) == (None, 0)
        assert [m.content for m in ledger.messages.last(chat)] == ["m1", "m2", "m3"]
        regenerated = ledger.trees.regenerate(tree[1].id, "m2 again")
        assert (regenerated.parent_seq, regenerated.sibling_index) == (1, 1)
        assert ledger.messages.append(empty, "user", "first").parent_seq is None
    migrate.downgrade(empty_url, "0004")
    assert migrate.current(empty_url) == "0004"
    older = Ledger(empty_url)
    with pytest.raises(SchemaOutOfDateError):
        older.open()
    older.close()
