"""Property-based tests: a state machine drives a sync ``Ledger`` through random sequences of
operations and checks, after every step, that it agrees with a plain in-memory model.

The model holds, per conversation, its owner, status and the messages appended to it (the
``Message`` objects ``append`` returned, so comparisons cover every field, including the
stored round trip of unicode text and timestamps). Its rules are chatledger's documented ones:

- an append gets the next ``seq``; an idempotency key already used in the conversation returns
  the message first stored with it and writes nothing;
- appending to a closed or soft-deleted conversation raises ``ConflictError`` (a replay of a
  used key still returns its message: retries stay safe);
- life-cycle actions follow ``TRANSITIONS``: an action whose target is the current status is a
  no-op, one from a status outside its sources raises ``ConflictError``;
- after a hard delete every read of the conversation is ``NotFoundError``;
- the owner's listing hides soft-deleted conversations unless asked for by status, and is
  ordered by last activity (the creation time, or the newest message's).

Two smaller properties follow: idempotency keys and external ids are compared exactly (a
trailing space or a case change makes a different key), on every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import URL

from chatledger import ConflictError, Ledger, NotFoundError
from chatledger._ops.conversations import TRANSITIONS
from chatledger.records import Conversation, ConversationStatus, Message, Order, Role

ROLES: tuple[Role, ...] = ("user", "assistant", "system", "tool")
ORDERS: tuple[Order, ...] = ("asc", "desc")
STATUSES: tuple[ConversationStatus, ...] = ("active", "archived", "closed", "deleted")
#: A small set, so that keys repeat and appends get replayed. "k", "k " and "K" are three
#: different keys on every backend (MariaDB compares them with a NO PAD binary collation).
KEYS = ("k", "k ", "K", "ключ-🔑")
#: Any character a backend can store: every code point but NUL and lone surrogates.
CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")
TEXT = st.text(CHARACTERS, max_size=40)

#: Examples and steps per backend: SQLite is fast enough for more.
BUDGET = {"sqlite": (100, 40), "postgresql": (25, 30), "mariadb": (25, 30)}


@dataclass
class Model:
    """What one conversation should hold."""

    id: uuid.UUID
    owner: int
    created_at: datetime
    status: ConversationStatus = "active"
    messages: list[Message] = field(default_factory=list)
    gone: bool = False  # hard-deleted

    def by_key(self, key: str) -> Message | None:
        return next((m for m in self.messages if m.idempotency_key == key), None)

    def of_role(self, role: Role | None) -> list[Message]:
        return [m for m in self.messages if role is None or m.role == role]

    @property
    def last_activity(self) -> datetime:
        return max([self.created_at, *(m.created_at for m in self.messages)])


class LedgerMachine(RuleBasedStateMachine):
    """The ledger against the model. ``ledger`` is set by the test that runs the machine."""

    ledger: ClassVar[Ledger]
    conversations = Bundle("conversations")

    def __init__(self) -> None:
        super().__init__()
        # Fresh users per example: earlier examples' data in the database stays invisible.
        tag = uuid.uuid4().hex
        self.users = [self.ledger.users.create(external_id=f"prop-{tag}-{i}") for i in range(2)]
        self.model: dict[uuid.UUID, Model] = {}

    # -- helpers ------------------------------------------------------------------------------

    def _check_conversation(self, got: Conversation, conv: Model) -> None:
        assert got.id == conv.id
        assert got.owner_id == self.users[conv.owner].id
        assert got.status == conv.status
        assert got.message_count == len(conv.messages)
        assert got.created_at == conv.created_at
        assert got.last_activity_at == conv.last_activity
        assert got.last_message_at == max((m.created_at for m in conv.messages), default=None)
        if conv.status == "archived":
            assert got.archived_at is not None
        if conv.status == "active":
            assert got.archived_at is None

    def _assert_gone(self, cid: uuid.UUID) -> None:
        ledger = self.ledger
        reads = [
            lambda: ledger.conversations.get(cid),
            lambda: ledger.messages.last(cid),
            lambda: ledger.messages.list(cid),
            lambda: ledger.messages.count(cid),
            lambda: ledger.messages.count(cid, role="user"),
            lambda: ledger.messages.append(cid, "user", "anyone there?"),
        ]
        for read in reads:
            with pytest.raises(NotFoundError):
                read()

    # -- rules --------------------------------------------------------------------------------

    @initialize(target=conversations)
    def first_conversation(self) -> uuid.UUID:
        return self._create(0, None)

    @rule(target=conversations, owner=st.integers(0, 1), title=st.none() | TEXT)
    def create_conversation(self, owner: int, title: str | None) -> uuid.UUID:
        return self._create(owner, title)

    def _create(self, owner: int, title: str | None) -> uuid.UUID:
        created = self.ledger.conversations.create(self.users[owner].id, title=title)
        conv = Model(id=created.id, owner=owner, created_at=created.created_at)
        self.model[created.id] = conv
        assert created.title == title
        self._check_conversation(created, conv)
        assert self.ledger.conversations.get(created.id) == created
        return created.id

    @rule(cid=conversations, role=st.sampled_from(ROLES), content=TEXT)
    def append(self, cid: uuid.UUID, role: Role, content: str) -> None:
        self._append(cid, role, content, None)

    @rule(cid=conversations, role=st.sampled_from(ROLES), content=TEXT, key=st.sampled_from(KEYS))
    def append_with_key(self, cid: uuid.UUID, role: Role, content: str, key: str) -> None:
        self._append(cid, role, content, key)

    def _append(self, cid: uuid.UUID, role: Role, content: str, key: str | None) -> None:
        conv = self.model[cid]
        if conv.gone:
            with pytest.raises(NotFoundError):
                self.ledger.messages.append(cid, role, content, idempotency_key=key)
            return
        first = None if key is None else conv.by_key(key)
        if first is not None:
            # A replay: the first message comes back (whatever the status now), nothing is
            # written.
            again = self.ledger.messages.append(cid, role, content, idempotency_key=key)
            assert again == first
            return
        if conv.status in ("closed", "deleted"):
            with pytest.raises(ConflictError):
                self.ledger.messages.append(cid, role, content, idempotency_key=key)
            return
        sent = self.ledger.messages.append(cid, role, content, idempotency_key=key)
        assert sent.conversation_id == cid
        assert sent.seq == len(conv.messages) + 1
        assert (sent.role, sent.content, sent.idempotency_key) == (role, content, key)
        conv.messages.append(sent)

    @rule(cid=conversations, n=st.integers(1, 10), role=st.none() | st.sampled_from(ROLES))
    def last(self, cid: uuid.UUID, n: int, role: Role | None) -> None:
        conv = self.model[cid]
        if conv.gone:
            with pytest.raises(NotFoundError):
                self.ledger.messages.last(cid, n, role=role)
            return
        assert self.ledger.messages.last(cid, n, role=role) == conv.of_role(role)[-n:]

    @rule(
        cid=conversations,
        order=st.sampled_from(ORDERS),
        size=st.integers(1, 7),
        role=st.none() | st.sampled_from(ROLES),
    )
    def paginate(self, cid: uuid.UUID, order: Order, size: int, role: Role | None) -> None:
        conv = self.model[cid]
        if conv.gone:
            with pytest.raises(NotFoundError):
                self.ledger.messages.list(cid, limit=size, order=order, role=role)
            return
        expected = conv.of_role(role)
        if order == "desc":
            expected = expected[::-1]
        list_page = self.ledger.messages.list

        # Forward: the first page, then after=last_cursor while there is more.
        pages = [list_page(cid, limit=size, order=order, role=role)]
        while pages[-1].has_more:
            assert len(pages) <= len(expected), "forward paging does not end"
            pages.append(
                list_page(cid, limit=size, order=order, role=role, after=pages[-1].last_cursor)
            )
        forward = [m for page in pages for m in page]
        assert forward == expected
        assert all(len(page) == size for page in pages[:-1])
        if not expected:
            assert pages[-1].items == []
            assert pages[-1].first_cursor is None
            assert pages[-1].last_cursor is None
            return
        assert 1 <= len(pages[-1]) <= size

        # Backward from the last page: before=first_cursor while there is more.
        back = [pages[-1]]
        while True:
            page = list_page(cid, limit=size, order=order, role=role, before=back[0].first_cursor)
            if not page.items:
                assert not page.has_more
                break
            assert len(page) == size or not page.has_more
            back.insert(0, page)
            if not page.has_more:
                break
            assert len(back) <= len(expected) + 1, "backward paging does not end"
        assert [m for page in back for m in page] == expected

    @rule(cid=conversations, role=st.none() | st.sampled_from(ROLES))
    def count(self, cid: uuid.UUID, role: Role | None) -> None:
        conv = self.model[cid]
        if conv.gone:
            with pytest.raises(NotFoundError):
                self.ledger.messages.count(cid, role=role)
            return
        assert self.ledger.messages.count(cid, role=role) == len(conv.of_role(role))

    @rule(cid=conversations, action=st.sampled_from(sorted(TRANSITIONS)))
    def transition(self, cid: uuid.UUID, action: str) -> None:
        conv = self.model[cid]
        conversations = self.ledger.conversations
        # The methods are named after the actions ("delete" is the soft delete).
        act: Callable[[uuid.UUID], object] = getattr(conversations, action)
        if conv.gone:
            with pytest.raises(NotFoundError):
                act(cid)
            return
        sources, target = TRANSITIONS[action]
        before = conversations.get(cid)
        if conv.status != target and conv.status not in sources:
            with pytest.raises(ConflictError):
                act(cid)
            assert conversations.get(cid) == before, "a refused action changed the row"
            return
        returned = act(cid)
        after = conversations.get(cid)
        if conv.status == target:
            assert after == before, "a no-op action changed the row"
        conv.status = target
        self._check_conversation(after, conv)
        if action != "delete":
            assert returned == after

    @rule(cid=conversations)
    def hard_delete(self, cid: uuid.UUID) -> None:
        conv = self.model[cid]
        if conv.gone:
            with pytest.raises(NotFoundError):
                self.ledger.conversations.delete(cid, hard=True)
            return
        self.ledger.conversations.delete(cid, hard=True)
        conv.gone = True
        self._assert_gone(cid)

    @rule(
        owner=st.integers(0, 1),
        size=st.integers(1, 7),
        status=st.none() | st.sampled_from(STATUSES),
        order=st.sampled_from(ORDERS),
    )
    def list_conversations(
        self, owner: int, size: int, status: ConversationStatus | None, order: Order
    ) -> None:
        owner_id = self.users[owner].id
        expected = {
            conv.id: conv
            for conv in self.model.values()
            if conv.owner == owner
            and not conv.gone
            and (conv.status != "deleted" if status is None else conv.status == status)
        }
        seen: list[Conversation] = []
        after = None
        while True:
            page = self.ledger.conversations.list(
                owner_id, status=status, limit=size, after=after, order=order
            )
            assert len(page) == size or not page.has_more
            seen += page.items
            if not page.has_more:
                break
            assert len(seen) <= len(expected), "conversation paging does not end"
            after = page.last_cursor
        ids = [c.id for c in seen]
        assert len(ids) == len(set(ids)), "a conversation was listed twice"
        assert set(ids) == set(expected)
        times = [c.last_activity_at for c in seen]
        assert times == sorted(times, reverse=order == "desc")
        for got in seen:
            self._check_conversation(got, expected[got.id])
        assert self.ledger.conversations.count(owner_id, status=status) == len(expected)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def counters_and_sequences_agree(self) -> None:
        for cid, conv in self.model.items():
            if conv.gone:
                continue
            got = self.ledger.conversations.get(cid)
            assert got.message_count == len(conv.messages)
            assert got.status == conv.status
            stored = self.ledger.messages.list(cid, limit=1000).items
            assert [m.seq for m in stored] == list(range(1, len(conv.messages) + 1))
            assert stored == conv.messages


@pytest.mark.slow
def test_ledger_agrees_with_the_model(backend: str, database_url: URL) -> None:
    examples, steps = BUDGET[backend]
    with Ledger(database_url) as ledger:
        machine = type("LedgerMachine", (LedgerMachine,), {"ledger": ledger})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            ),
        )


#: Few examples: the explicit @example (a trailing-space variant) always runs first.
EXACT = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@EXACT
@given(key=st.text(CHARACTERS, min_size=1, max_size=30))
@example(key="req-1")
def test_idempotency_keys_are_compared_exactly(ledger: Ledger, key: str) -> None:
    """Keys that differ in any character (case, a trailing space) are different keys: each
    stores its own message, and a replay of each returns its own message."""
    user = ledger.users.create(external_id=f"exact-{uuid.uuid4().hex}")
    chat = ledger.conversations.create(user.id)
    variants = list(dict.fromkeys([key, key + " ", key.swapcase(), " " + key]))

    sent = [
        ledger.messages.append(chat.id, "user", f"m{i}", idempotency_key=k)
        for i, k in enumerate(variants)
    ]

    assert [m.idempotency_key for m in sent] == variants
    assert [m.seq for m in sent] == list(range(1, len(variants) + 1))
    for k, first in zip(variants, sent, strict=True):
        assert ledger.messages.append(chat.id, "user", "again", idempotency_key=k) == first
    assert ledger.messages.count(chat.id) == len(variants)


@EXACT
@given(external_id=st.text(CHARACTERS, min_size=1, max_size=30))
@example(external_id="alice")
def test_external_ids_are_compared_exactly(ledger: Ledger, external_id: str) -> None:
    """External ids that differ by a trailing space belong to different users."""
    base = f"{uuid.uuid4().hex}:{external_id}"
    padded = base + " "

    first = ledger.users.create(external_id=base)
    second = ledger.users.get_or_create(padded)

    assert second.external_id == padded
    assert second.id != first.id
    assert ledger.users.get_by_external_id(base) == first
    assert ledger.users.get_by_external_id(padded) == second
