"""Message trees: appends with a parent, edit, regenerate, switch, the active path (what
``last`` reads), paths, siblings, children, leaves, the whole tree, forks; bad input."""

from __future__ import annotations

import itertools
import uuid

import pytest

from chatledger import ConflictError, NotFoundError, ValidationError

from ._threads import run_threads


def _contents(messages):
    return [message.content for message in messages]


def _chat(store, chat):
    """u1 -> a1 -> u2 -> a2, linear."""
    return [
        store.messages.append(chat.id, role, content)
        for role, content in [
            ("user", "u1"),
            ("assistant", "a1"),
            ("user", "u2"),
            ("assistant", "a2"),
        ]
    ]


def test_a_linear_chat_is_a_one_branch_tree(store, chat):
    u1, a1, u2, a2 = _chat(store, chat)
    assert [(m.seq, m.parent_seq, m.depth, m.sibling_index) for m in (u1, a1, u2, a2)] == [
        (1, None, 0, 0),
        (2, 1, 1, 0),
        (3, 2, 2, 0),
        (4, 3, 3, 0),
    ]
    assert store.trees.tree(chat.id) == [u1, a1, u2, a2]
    conversation = store.conversations.get(chat.id)
    assert (conversation.active_leaf_seq, conversation.path_length) == (4, 4)
    assert store.trees.leaves(chat.id) == [a2]


def test_regenerate_adds_a_sibling_and_last_follows_the_new_path(store, chat):
    _u1, _a1, u2, a2 = _chat(store, chat)
    b2 = store.trees.regenerate(a2.id, "a2 again", model="m")

    assert (b2.seq, b2.parent_seq, b2.depth, b2.sibling_index) == (5, 3, 3, 1)
    assert _contents(store.messages.last(chat.id, 10)) == ["u1", "a1", "u2", "a2 again"]
    assert _contents(store.messages.last(chat.id, 2)) == ["u2", "a2 again"]
    assert store.trees.siblings(a2.id) == store.trees.siblings(b2.id)
    assert [m.id for m in store.trees.siblings(b2.id)] == [a2.id, b2.id]
    assert [m.id for m in store.trees.children(u2.id)] == [a2.id, b2.id]
    conversation = store.conversations.get(chat.id)
    assert conversation.message_count == 5  # every branch counts
    assert (conversation.active_leaf_seq, conversation.path_length) == (5, 4)
    assert store.messages.count(chat.id) == 5

    # The next append continues the new leaf.
    u3 = store.messages.append(chat.id, "user", "u3")
    assert (u3.parent_seq, u3.depth) == (5, 4)
    assert _contents(store.trees.path(chat.id)) == ["u1", "a1", "u2", "a2 again", "u3"]


def test_edit_of_a_middle_message_branches_at_its_parent(store, chat):
    _u1, a1, u2, a2 = _chat(store, chat)
    e2 = store.trees.edit(u2.id, "u2 edited")
    assert (e2.parent_seq, e2.depth, e2.sibling_index) == (a1.seq, 2, 1)
    assert _contents(store.messages.last(chat.id)) == ["u1", "a1", "u2 edited"]
    assert store.conversations.get(chat.id).path_length == 3
    assert {m.id for m in store.trees.leaves(chat.id)} == {a2.id, e2.id}


def test_edit_of_the_first_message_makes_a_new_root(store, chat):
    u1, *_ = _chat(store, chat)
    root = store.trees.edit(u1.id, "u1 edited")
    assert (root.parent_seq, root.depth, root.sibling_index) == (None, 0, 1)
    assert _contents(store.messages.last(chat.id)) == ["u1 edited"]
    assert [m.id for m in store.trees.siblings(root.id)] == [u1.id, root.id]
    answer = store.messages.append(chat.id, "assistant", "fresh")
    assert answer.parent_seq == root.seq
    assert _contents(store.messages.last(chat.id)) == ["u1 edited", "fresh"]


def test_switch_goes_to_the_newest_leaf_under_the_chosen_sibling(store, chat):
    _u1, _a1, _u2, a2 = _chat(store, chat)
    u3 = store.messages.append(chat.id, "user", "u3")
    b2 = store.trees.regenerate(a2.id, "b2")
    leaf = store.trees.switch(chat.id, a2.id)
    assert leaf.id == u3.id
    assert _contents(store.messages.last(chat.id)) == ["u1", "a1", "u2", "a2", "u3"]
    conversation = store.conversations.get(chat.id)
    assert (conversation.active_leaf_seq, conversation.path_length) == (u3.seq, 5)

    # Appending continues the switched-to branch, not the newest message.
    a3 = store.messages.append(chat.id, "assistant", "a3")
    assert (a3.parent_seq, a3.depth, a3.sibling_index) == (u3.seq, 5, 0)
    assert _contents(store.messages.last(chat.id, 3)) == ["a2", "u3", "a3"]

    # And back: the other sibling's subtree is just b2.
    assert store.trees.switch(chat.id, b2.id).id == b2.id
    assert _contents(store.messages.last(chat.id)) == ["u1", "a1", "u2", "b2"]
    assert [m.on_active_path for m in store.trees.tree(chat.id)] == [
        True,
        True,
        True,
        False,
        False,
        True,
        False,
    ]


def test_append_with_a_parent_in_another_branch_switches_to_it(store, chat):
    _u1, _a1, _u2, a2 = _chat(store, chat)
    b2 = store.trees.regenerate(a2.id, "b2")
    follow = store.messages.append(chat.id, "user", "after a2", parent_id=a2.id)
    assert (follow.parent_seq, follow.depth) == (a2.seq, 4)
    assert _contents(store.messages.last(chat.id)) == ["u1", "a1", "u2", "a2", "after a2"]
    assert not any(m.on_active_path for m in store.trees.tree(chat.id) if m.id == b2.id)


def test_path_to_any_message(store, chat):
    _u1, a1, _u2, a2 = _chat(store, chat)
    store.trees.regenerate(a2.id, "b2")
    assert _contents(store.trees.path(chat.id, a2.id)) == ["u1", "a1", "u2", "a2"]
    assert _contents(store.trees.path(chat.id, a1.id)) == ["u1", "a1"]
    assert _contents(store.trees.path(chat.id)) == ["u1", "a1", "u2", "b2"]


def test_role_filtered_last_reads_the_active_path(store, chat):
    _u1, _a1, _u2, a2 = _chat(store, chat)
    store.trees.regenerate(a2.id, "b2")
    assert _contents(store.messages.last(chat.id, 5, role="assistant")) == ["a1", "b2"]


def test_fork_copies_the_path_with_provenance(store, chat, user):
    u1, a1, u2, a2 = _chat(store, chat)
    store.trees.regenerate(a2.id, "b2")
    fork = store.trees.fork(chat.id, a2.id, title="forked")
    assert fork.id != chat.id
    assert (fork.forked_from_conversation_id, fork.forked_from_message_id) == (chat.id, a2.id)
    assert (fork.owner_id, fork.title, fork.message_count, fork.path_length) == (
        user.id,
        "forked",
        4,
        4,
    )
    copied = store.messages.last(fork.id)
    assert _contents(copied) == ["u1", "a1", "u2", "a2"]
    assert {m.id for m in copied}.isdisjoint({u1.id, a1.id, u2.id, a2.id})
    assert store.conversations.get(fork.id) == fork
    # The source is untouched.
    assert store.messages.count(chat.id) == 5


def test_fork_to_another_owner_outside_a_scope(ledger):
    alice = ledger.users.create(email="alice@example.com")
    bob = ledger.users.create(email="bob@example.com")
    chat = ledger.conversations.create(alice.id)
    first = ledger.messages.append(chat.id, "user", "hi")
    fork = ledger.trees.fork(chat.id, first.id, owner_id=bob.id)
    assert fork.owner_id == bob.id
    assert _contents(ledger.as_user(bob.id).messages.last(fork.id)) == ["hi"]
    with pytest.raises(NotFoundError) as caught:
        ledger.trees.fork(chat.id, first.id, owner_id=uuid.uuid4())
    assert caught.value.field == "owner_id"


def test_bad_input_names_the_field_and_writes_nothing(store, chat, user):
    _u1, _a1, u2, a2 = _chat(store, chat)
    other = store.conversations.create(user.id if store._owner is None else None)
    elsewhere = store.messages.append(other.id, "user", "elsewhere")
    before = store.trees.tree(chat.id)

    with pytest.raises(NotFoundError) as caught:
        store.messages.append(chat.id, "user", "x", parent_id=elsewhere.id)
    assert caught.value.field == "parent_id"
    with pytest.raises(NotFoundError) as caught:
        store.messages.append(chat.id, "user", "x", parent_id=uuid.uuid4())
    assert caught.value.field == "parent_id"
    with pytest.raises(NotFoundError) as caught:
        store.trees.switch(chat.id, elsewhere.id)
    assert caught.value.field == "message_id"
    with pytest.raises(NotFoundError) as caught:
        store.trees.fork(chat.id, elsewhere.id)
    assert caught.value.field == "message_id"
    with pytest.raises(ConflictError) as conflict:
        store.trees.regenerate(u2.id, "not an answer")
    assert conflict.value.field == "message_id"
    with pytest.raises(ConflictError):
        store.trees.edit(a2.id, "not a question")

    assert store.trees.tree(chat.id) == before
    assert store.conversations.get(chat.id).message_count == 4
    assert store.messages.count(other.id) == 1


def test_another_owners_tree_is_not_found(ledger):
    alice = ledger.users.create(email="alice@example.com")
    bob = ledger.users.create(email="bob@example.com")
    chat = ledger.conversations.create(alice.id)
    first = ledger.messages.append(chat.id, "user", "hi")
    mine = ledger.conversations.create(bob.id)
    as_bob = ledger.as_user(bob.id)
    attempts = [
        lambda: as_bob.messages.append(mine.id, "user", "x", parent_id=first.id),
        lambda: as_bob.messages.append(chat.id, "user", "x", parent_id=first.id),
        lambda: as_bob.trees.edit(first.id, "x"),
        lambda: as_bob.trees.switch(chat.id, first.id),
        lambda: as_bob.trees.path(chat.id),
        lambda: as_bob.trees.path(chat.id, first.id),
        lambda: as_bob.trees.siblings(first.id),
        lambda: as_bob.trees.children(first.id),
        lambda: as_bob.trees.tree(chat.id),
        lambda: as_bob.trees.leaves(chat.id),
        lambda: as_bob.trees.fork(chat.id, first.id),
        lambda: as_bob.trees.fork(mine.id, first.id, owner_id=alice.id),
    ]
    for attempt in attempts:
        with pytest.raises(NotFoundError):
            attempt()
    assert ledger.messages.count(chat.id) == 1
    assert ledger.messages.count(mine.id) == 0
    assert ledger.conversations.count(owner_id=bob.id) == 1


def test_idempotent_regenerate_writes_once(store, chat):
    *_, a2 = _chat(store, chat)
    first = store.trees.regenerate(a2.id, "again", idempotency_key="regen-1")
    second = store.trees.regenerate(a2.id, "again", idempotency_key="regen-1")
    assert first == second
    assert store.messages.count(chat.id) == 5


def test_append_many_continues_the_active_leaf(store, chat):
    _u1, a1, _u2, a2 = _chat(store, chat)
    store.trees.switch(chat.id, a1.id)  # a1's newest leaf is a2: no change
    b2 = store.trees.regenerate(a2.id, "b2")
    store.trees.switch(chat.id, a2.id)
    batch = store.messages.append_many(
        chat.id, [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    )
    assert [(m.parent_seq, m.depth) for m in batch] == [(a2.seq, 4), (batch[0].seq, 5)]
    assert _contents(store.messages.last(chat.id, 3)) == ["a2", "x", "y"]
    assert b2.seq not in {m.seq for m in store.messages.last(chat.id, 10)}
    assert store.conversations.get(chat.id).path_length == 6


def test_concurrent_regenerates_all_land_as_siblings(ledger):
    user = ledger.users.create(email="racer@example.com")
    chat = ledger.conversations.create(user.id)
    ledger.messages.append(chat.id, "user", "q")
    answer = ledger.messages.append(chat.id, "assistant", "a")

    made = run_threads(6, lambda i: ledger.trees.regenerate(answer.id, f"a{i}"))

    siblings = ledger.trees.siblings(answer.id)
    assert len(siblings) == 7
    assert [m.sibling_index for m in siblings] == list(range(7))
    assert sorted(m.seq for m in ledger.trees.tree(chat.id)) == list(range(1, 9))
    newest = max(made, key=lambda m: m.seq)
    conversation = ledger.conversations.get(chat.id)
    assert (conversation.active_leaf_seq, conversation.message_count) == (newest.seq, 8)
    assert _contents(ledger.messages.last(chat.id)) == ["q", newest.content]
    assert [m.seq for m in ledger.trees.path(chat.id)] == [1, newest.seq]


def test_concurrent_appends_after_a_switch_stay_one_chain(ledger):
    user = ledger.users.create(email="chain@example.com")
    chat = ledger.conversations.create(user.id)
    ledger.messages.append(chat.id, "user", "q")
    answer = ledger.messages.append(chat.id, "assistant", "a")
    ledger.trees.regenerate(answer.id, "b")
    ledger.trees.switch(chat.id, answer.id)

    run_threads(6, lambda i: ledger.messages.append(chat.id, "user", f"m{i}"))

    path = ledger.trees.path(chat.id)
    assert [m.depth for m in path] == list(range(8))
    assert path[1].id == answer.id
    assert all(m.parent_seq == p.seq for p, m in itertools.pairwise(path))
    assert ledger.conversations.get(chat.id).path_length == 8


def test_memory_and_integrations_read_the_active_path(ledger):
    from chatledger import ConversationMemory

    user = ledger.users.create(email="mem@example.com")
    chat = ledger.conversations.create(user.id)
    memory = ConversationMemory(ledger, max_age=0)
    memory.append(chat.id, "user", "q")
    answer = memory.append(chat.id, "assistant", "first answer")
    assert _contents(memory.fit(chat.id, 1000)) == ["q", "first answer"]
    ledger.trees.regenerate(answer.id, "second answer")
    assert _contents(memory.fit(chat.id, 1000)) == ["q", "second answer"]
    ledger.trees.switch(chat.id, answer.id)
    assert _contents(memory.last(chat.id, 5)) == ["q", "first answer"]
    follow = memory.append(chat.id, "user", "more")
    assert follow.parent_seq == answer.seq
    assert _contents(memory.last(chat.id, 5)) == ["q", "first answer", "more"]

    from chatledger._ops import message_views

    visible = ledger._call(message_views.visible, None, chat.id, None)
    assert _contents(visible) == ["q", "first answer", "more"]


def _branched(ledger):
    user = ledger.users.create(email="tree@example.com")
    chat = ledger.conversations.create(user.id)
    q = ledger.messages.append(chat.id, "user", "q")
    a = ledger.messages.append(chat.id, "assistant", "a")
    ledger.trees.regenerate(a.id, "b")
    ledger.trees.edit(q.id, "q2")
    ledger.messages.append(chat.id, "assistant", "a2")
    ledger.trees.switch(chat.id, a.id)
    return chat.id


def test_copy_and_export_keep_trees(database_url, tmp_path):
    import io

    import sqlalchemy as sa

    from chatledger import Ledger, transfer

    source = sa.make_url(f"sqlite:///{tmp_path / 'source.db'}")
    with Ledger(source) as ledger:
        chat_id = _branched(ledger)
        tree = ledger.trees.tree(chat_id)
        conversation = ledger.conversations.get(chat_id)
    report = transfer.copy_database(source, database_url, backup=False)
    assert report.ok, report.tables
    with Ledger(database_url) as copied:
        assert copied.trees.tree(chat_id) == tree
        assert copied.conversations.get(chat_id) == conversation
        assert _contents(copied.messages.last(chat_id)) == ["q", "a"]
        out = io.StringIO()
        transfer.export_data(copied, out, conversation=chat_id)
    exported = tmp_path / "tree.json"
    exported.write_text(out.getvalue())
    with Ledger(sa.make_url(f"sqlite:///{tmp_path / 'imported.db'}")) as imported:
        transfer.import_data(imported, exported)
        assert imported.trees.tree(chat_id) == tree
        assert imported.messages.append(chat_id, "user", "next").parent_seq == tree[1].seq


def test_markdown_export_shows_the_active_path_and_marks_branches(ledger):
    import io

    from chatledger import transfer

    chat_id = _branched(ledger)
    out = io.StringIO()
    transfer.export_data(ledger, out, format="markdown", conversation=chat_id)
    text = out.getvalue()
    assert "- active path: 2 messages; 3 more on other branches" in text
    assert "## 1. user (" in text
    assert "version 1 / 2" in text
    assert "## 2. assistant (" in text
    assert "q2" not in text
    assert "\nb\n" not in text


def test_the_docs_examples_run(tmp_path):
    from pathlib import Path

    from .test_readme import run_docs_page

    page = Path(__file__).resolve().parent.parent / "docs" / "trees.md"
    assert "2 / 2" in run_docs_page(page, tmp_path)


def test_edit_and_regenerate_take_the_usage_details_of_append(store, chat):
    """``cached_input_tokens`` / ``reasoning_tokens`` (and the other usage fields) as on
    ``messages.append``: stored, summed in usage, validated the same way."""
    u1, a1, *_ = _chat(store, chat)
    again = store.trees.regenerate(
        a1.id, "a1'", input_tokens=100, cached_input_tokens=60, reasoning_tokens=7
    )
    assert (again.input_tokens, again.cached_input_tokens, again.reasoning_tokens) == (100, 60, 7)
    edited = store.trees.edit(u1.id, "u1'", input_tokens=9, cached_input_tokens=3, model="m")
    assert (edited.cached_input_tokens, edited.reasoning_tokens, edited.model) == (3, None, "m")
    assert store.messages.get(again.id).reasoning_tokens == 7
    calls = [
        (store.trees.regenerate, (a1.id, "x")),
        (store.trees.edit, (u1.id, "x")),
        (store.messages.append, (chat.id, "assistant", "x")),
    ]
    for call, args in calls:
        for field in ("cached_input_tokens", "reasoning_tokens"):
            with pytest.raises(ValidationError) as caught:
                call(*args, **{field: -1})
            assert caught.value.field == field
    with pytest.raises(ValidationError) as caught:
        store.trees.edit(u1.id, "x", reasoning_tokens=True)
    assert caught.value.field == "reasoning_tokens"
