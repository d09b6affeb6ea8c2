"""Hiding and erasing one message (issue 20, docs/apps.md): the row stays, history reads
leave it out, counts, the tree and usage hold."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chatledger import ConflictError, NotFoundError, ValidationError


def _turns(store, chat):
    made = []
    for i, (role, text) in enumerate(
        [
            ("user", "plan lisbon"),
            ("assistant", "alfama castle"),
            ("user", "and porto"),
            ("assistant", "ribeira tram"),
        ]
    ):
        made.append(
            store.messages.append(
                chat.id,
                role,
                text,
                metadata={"i": i},
                input_tokens=10,
                output_tokens=5,
                cost=Decimal("0.01"),
                intent="trip",
                request_id=f"r{i}",
            )
        )
    return made


def test_a_user_hides_a_message_in_the_middle_of_the_path(store, user, chat):
    made = _turns(store, chat)
    scope = store.as_user(user.id)
    usage_before = store.usage.overall(conversation_id=chat.id)

    hidden = scope.messages.hide(made[1].id)
    assert hidden.hidden_by == user.id
    assert hidden.hidden_at is not None
    assert hidden.erased_at is None
    assert hidden.content == "alfama castle"
    assert scope.messages.hide(made[1].id) == hidden  # again: the first record stays
    shown = [made[0].id, made[2].id, made[3].id]
    assert [m.id for m in scope.messages.list(chat.id)] == shown
    assert [m.id for m in scope.messages.last(chat.id)] == shown
    assert [m.id for m in scope.messages.last(chat.id, 2)] == shown[1:]
    assert [m.id for m in scope.trees.path(chat.id)] == shown
    assert [m.id for m in scope.trees.path(chat.id, made[3].id)] == shown
    everything = scope.messages.list(chat.id, include_hidden=True)
    assert [m.id for m in everything] == [m.id for m in made]
    assert everything.items[1] == hidden
    assert [m.id for m in scope.messages.last(chat.id, include_hidden=True)] == [m.id for m in made]
    assert len(scope.trees.path(chat.id, include_hidden=True)) == 4
    assert store.search.messages("alfama").items == []
    assert [h.message.id for h in store.search.messages("ribeira").items] == [made[3].id]
    # Counts, the tree and usage do not move; the path continues past the hidden message.
    conversation = store.conversations.get(chat.id)
    assert (conversation.message_count, conversation.path_length) == (4, 4)
    assert len(store.trees.tree(chat.id)) == 4
    assert store.usage.overall(conversation_id=chat.id) == usage_before
    after = scope.messages.append(chat.id, "user", "thanks")
    assert (after.seq, after.parent_seq) == (5, 4)
    assert [m.id for m in scope.messages.last(chat.id, 3)] == [made[2].id, made[3].id, after.id]

    shown_again = scope.messages.unhide(made[1].id)
    assert (shown_again.hidden_at, shown_again.hidden_by) == (None, None)
    assert len(scope.messages.last(chat.id)) == 5
    assert store.messages.get(made[1].id) == shown_again


def test_only_the_owner_hides_and_only_the_ledger_erases(store, user, chat):
    made = _turns(store, chat)
    other = store.users.create()
    theirs = store.as_user(other.id)
    for call in (theirs.messages.hide, theirs.messages.unhide):
        with pytest.raises(NotFoundError):
            call(made[0].id)
    mine = store.as_user(user.id)
    with pytest.raises(ValidationError) as caught:
        mine.messages.hide(made[0].id, by=other.id)
    assert caught.value.field == "by"
    with pytest.raises(ValidationError) as not_scoped:
        mine.messages.erase(made[0].id)
    assert not_scoped.value.field == "message_id"
    by_admin = store.messages.hide(made[0].id, by=other.id)
    assert by_admin.hidden_by == other.id
    assert store.messages.hide(made[2].id).hidden_by is None
    with pytest.raises(ValidationError) as bad_flag:
        store.messages.list(chat.id, include_hidden="yes")
    assert bad_flag.value.field == "include_hidden"


def test_an_admin_erases_a_message_for_good(store, user, chat):
    made = _turns(store, chat)
    admin = store.users.create(role="admin")
    usage_before = store.usage.overall(conversation_id=chat.id)
    erased = store.messages.erase(made[2].id, by=admin.id)
    assert (erased.content, erased.metadata, erased.intent, erased.request_id) == (
        "",
        None,
        None,
        None,
    )
    assert erased.erased_at is not None
    assert erased.hidden_by == admin.id
    assert (erased.seq, erased.input_tokens, erased.cost) == (3, 10, Decimal("0.01"))
    assert store.messages.get(made[2].id) == erased
    assert store.messages.erase(made[2].id) == erased  # again: nothing changes
    assert store.search.messages("porto").items == []
    assert [m.id for m in store.messages.list(chat.id)] == [made[0].id, made[1].id, made[3].id]
    assert store.messages.list(chat.id, include_hidden=True).items[2] == erased
    assert store.conversations.get(chat.id).message_count == 4
    assert store.usage.overall(conversation_id=chat.id) == usage_before
    with pytest.raises(ConflictError) as stays:
        store.messages.unhide(made[2].id)
    assert stays.value.field == "message_id"
    with pytest.raises(NotFoundError):
        store.messages.erase(store.conversations.create(user.id).id)


def test_a_fork_keeps_hidden_messages_hidden(store, user, chat):
    made = _turns(store, chat)
    store.messages.hide(made[1].id, by=user.id)
    fork = store.trees.fork(chat.id, made[3].id, owner_id=user.id)
    assert [m.content for m in store.messages.last(fork.id)] == [
        "plan lisbon",
        "and porto",
        "ribeira tram",
    ]
    copied = store.messages.list(fork.id, include_hidden=True).items[1]
    assert (copied.content, copied.hidden_by) == ("alfama castle", user.id)


def test_exports_leave_hidden_messages_out_unless_asked(ledger):
    import io
    import json

    from chatledger import transfer

    user = ledger.users.create()
    chat = ledger.conversations.create(user.id, title="Trip")
    made = _turns(ledger, chat)
    ledger.messages.hide(made[1].id, by=user.id)

    def export(**options):
        out = io.StringIO()
        transfer.export_data(ledger, out, conversation=chat.id, **options)
        return out.getvalue()

    transcript = export(format="markdown")
    assert "alfama castle" not in transcript
    assert "## 3. user" in transcript
    assert "## 2. assistant" not in transcript
    everything = export(format="markdown", include_hidden=True)
    assert "alfama castle" in everything
    assert "hidden" in everything
    rows = json.loads(export(format="json"))["tables"]["messages"]
    assert [row["content"] for row in rows][:2] == ["plan lisbon", ""]
    assert rows[1]["hidden_by"] == str(user.id)
    full = json.loads(export(format="json", include_hidden=True))["tables"]["messages"]
    assert full[1]["content"] == "alfama castle"


def test_integrations_never_see_hidden_messages(ledger):
    pytest.importorskip("langchain_core")
    from chatledger.integrations.langchain import ChatledgerChatMessageHistory

    user = ledger.users.create()
    chat = ledger.conversations.create(user.id)
    made = _turns(ledger, chat)
    ledger.messages.hide(made[2].id)
    history = ChatledgerChatMessageHistory(ledger.as_user(user.id), chat.id)
    assert [m.content for m in history.messages] == [
        "plan lisbon",
        "alfama castle",
        "ribeira tram",
    ]


def test_the_apps_page_runs(tmp_path):
    from pathlib import Path

    from .test_readme import run_docs_page

    run_docs_page(Path(__file__).resolve().parent.parent / "docs" / "apps.md", tmp_path)
