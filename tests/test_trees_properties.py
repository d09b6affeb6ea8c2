"""Message trees against an in-memory model tree: random appends (under the active leaf or a
chosen parent), edits, regenerates, switches and forks; after every step the stored paths,
siblings, children, leaves and the active path agree with the model."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import URL

from chatledger import Ledger
from chatledger.records import Role


@dataclass
class ModelTree:
    """One conversation: parent of each message (by seq), role, content, the active leaf."""

    parent: dict[int, int | None] = field(default_factory=dict)
    role: dict[int, str] = field(default_factory=dict)
    content: dict[int, str] = field(default_factory=dict)
    leaf: int | None = None

    def add(self, parent: int | None, role: str, content: str) -> int:
        seq = len(self.parent) + 1
        self.parent[seq], self.role[seq], self.content[seq] = parent, role, content
        self.leaf = seq
        return seq

    def path(self, seq: int | None) -> list[int]:
        steps: list[int] = []
        while seq is not None:
            steps.append(seq)
            seq = self.parent[seq]
        return steps[::-1]

    def children(self, seq: int | None) -> list[int]:
        return sorted(child for child, parent in self.parent.items() if parent == seq)

    def leaves(self) -> list[int]:
        parents = set(self.parent.values())
        return sorted(seq for seq in self.parent if seq not in parents)

    def newest_leaf_under(self, seq: int) -> int:
        under = {seq}
        for child in sorted(self.parent):
            if self.parent[child] in under:
                under.add(child)
        return max(under)


class TreeMachine(RuleBasedStateMachine):
    """The trees API against :class:`ModelTree`. ``ledger`` is set by the test."""

    ledger: ClassVar[Ledger]

    def __init__(self) -> None:
        super().__init__()
        user = self.ledger.users.create(external_id=f"tree-{uuid.uuid4().hex}")
        self.user = user.id
        chat = self.ledger.conversations.create(user.id)
        self.chats: list[uuid.UUID] = [chat.id]
        self.models: dict[uuid.UUID, ModelTree] = {chat.id: ModelTree()}
        self.ids: dict[tuple[uuid.UUID, int], uuid.UUID] = {}
        self.counter = 0

    def _text(self) -> str:
        self.counter += 1
        return f"m{self.counter}"

    def _record(self, chat: uuid.UUID, message_seq: int, message_id: uuid.UUID) -> None:
        self.ids[chat, message_seq] = message_id

    @rule(which=st.integers(0, 3), role=st.sampled_from(["user", "assistant"]))
    def append(self, which: int, role: Role) -> None:
        chat = self.chats[which % len(self.chats)]
        model = self.models[chat]
        text = self._text()
        stored = self.ledger.messages.append(chat, role, text)
        seq = model.add(model.leaf, role, text)
        assert (stored.seq, stored.parent_seq) == (seq, model.parent[seq])
        self._record(chat, seq, stored.id)

    @rule(which=st.integers(0, 3), pick=st.integers(0, 10_000), role=st.sampled_from(["user"]))
    def append_under(self, which: int, pick: int, role: Role) -> None:
        chat = self.chats[which % len(self.chats)]
        model = self.models[chat]
        if not model.parent:
            return
        parent = sorted(model.parent)[pick % len(model.parent)]
        text = self._text()
        stored = self.ledger.messages.append(chat, role, text, parent_id=self.ids[chat, parent])
        seq = model.add(parent, role, text)
        assert (stored.seq, stored.parent_seq) == (seq, parent)
        self._record(chat, seq, stored.id)

    def _sibling(self, which: int, pick: int, role: str) -> None:
        chat = self.chats[which % len(self.chats)]
        model = self.models[chat]
        candidates = sorted(seq for seq, r in model.role.items() if r == role)
        if not candidates:
            return
        original = candidates[pick % len(candidates)]
        text = self._text()
        target = self.ids[chat, original]
        if role == "user":
            stored = self.ledger.trees.edit(target, text)
        else:
            stored = self.ledger.trees.regenerate(target, text)
        seq = model.add(model.parent[original], role, text)
        assert stored.seq == seq
        assert stored.sibling_index == model.children(model.parent[original]).index(seq)
        self._record(chat, seq, stored.id)

    @rule(which=st.integers(0, 3), pick=st.integers(0, 10_000))
    def edit(self, which: int, pick: int) -> None:
        self._sibling(which, pick, "user")

    @rule(which=st.integers(0, 3), pick=st.integers(0, 10_000))
    def regenerate(self, which: int, pick: int) -> None:
        self._sibling(which, pick, "assistant")

    @rule(which=st.integers(0, 3), pick=st.integers(0, 10_000))
    def switch(self, which: int, pick: int) -> None:
        chat = self.chats[which % len(self.chats)]
        model = self.models[chat]
        if not model.parent:
            return
        chosen = sorted(model.parent)[pick % len(model.parent)]
        leaf = self.ledger.trees.switch(chat, self.ids[chat, chosen])
        model.leaf = model.newest_leaf_under(chosen)
        assert leaf.seq == model.leaf

    @precondition(lambda self: len(self.chats) < 4)
    @rule(which=st.integers(0, 3), pick=st.integers(0, 10_000))
    def fork(self, which: int, pick: int) -> None:
        chat = self.chats[which % len(self.chats)]
        model = self.models[chat]
        if not model.parent:
            return
        at = sorted(model.parent)[pick % len(model.parent)]
        fork = self.ledger.trees.fork(chat, self.ids[chat, at])
        copy = ModelTree()
        for index, seq in enumerate(model.path(at)):
            copy.add(index or None, model.role[seq], model.content[seq])
        self.chats.append(fork.id)
        self.models[fork.id] = copy
        for message in self.ledger.trees.tree(fork.id):
            self._record(fork.id, message.seq, message.id)

    @invariant()
    def the_stored_trees_agree(self) -> None:
        for chat, model in self.models.items():
            tree = self.ledger.trees.tree(chat)
            assert {m.seq: m.parent_seq for m in tree} == model.parent
            assert [m.content for m in tree] == [model.content[s] for s in sorted(model.parent)]
            path = model.path(model.leaf)
            assert [m.seq for m in tree if m.on_active_path] == path
            assert [m.seq for m in self.ledger.messages.last(chat, 5)] == path[-5:]
            assert [m.seq for m in self.ledger.trees.leaves(chat)] == model.leaves()
            conversation = self.ledger.conversations.get(chat)
            assert (conversation.active_leaf_seq, conversation.path_length) == (
                model.leaf,
                len(path),
            )
            assert conversation.message_count == len(model.parent)
            for message in tree:
                assert message.depth == len(model.path(message.seq)) - 1
                siblings = model.children(model.parent[message.seq])
                assert message.sibling_index == siblings.index(message.seq)
            if tree:
                probe = tree[len(tree) // 2]
                assert [m.seq for m in self.ledger.trees.siblings(probe.id)] == model.children(
                    probe.parent_seq
                )
                assert [m.seq for m in self.ledger.trees.children(probe.id)] == model.children(
                    probe.seq
                )
                assert [m.seq for m in self.ledger.trees.path(chat, probe.id)] == model.path(
                    probe.seq
                )


#: (examples, steps) per backend: the servers cost round trips.
BUDGET = {"sqlite": (15, 25), "postgresql": (6, 20), "mariadb": (6, 20)}


@pytest.mark.slow
def test_trees_agree_with_the_model(backend: str, database_url: URL) -> None:
    examples, steps = BUDGET[backend]
    with Ledger(database_url) as ledger:
        machine = type("TreeMachine", (TreeMachine,), {"ledger": ledger})
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
