"""Conversation memory: write-through cache, loads on a miss, LRU, token budgets, staleness."""

from __future__ import annotations

import contextlib
import threading

import pytest
from sqlalchemy import event

from chatledger import (
    AsyncConversationMemory,
    ConflictError,
    ConversationMemory,
    NotFoundError,
    ValidationError,
)
from chatledger._async._memory import estimate_tokens

from .conftest import Blocking


def memory_of(store, **options):
    """A memory over ``store`` on its surface (blocking over the async one)."""
    if isinstance(store, Blocking):
        return Blocking(AsyncConversationMemory(store._target, **options), store._portal)
    return ConversationMemory(store, **options)


class Statements:
    """Counts the statements a ledger's engines execute."""

    def __init__(self, engines):
        self.engines = engines
        self.seen: list[str] = []

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append(statement)

    @contextlib.contextmanager
    def counting(self):
        self.seen.clear()
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self)
        try:
            yield self
        finally:
            for engine in self.engines:
                event.remove(engine, "before_cursor_execute", self)

    @property
    def reads(self):
        return [s for s in self.seen if s.lstrip().upper().startswith("SELECT")]


@pytest.fixture
def statements(ledger):
    return Statements(ledger._core.db.engines)


def contents(messages):
    return [m.content for m in messages]


def test_append_writes_through_and_reads_back(store, chat):
    memory = memory_of(store)
    sent = [memory.append(chat.id, "user", f"m{i}") for i in range(3)]
    assert [m.seq for m in sent] == [1, 2, 3]
    assert store.messages.last(chat.id, 10) == sent
    assert memory.last(chat.id, 10) == sent
    assert memory.last(chat.id, 2) == sent[1:]


def test_cache_hit_reads_nothing(ledger, statements):
    chat = ledger.conversations.create(ledger.users.create(username="u").id)
    memory = ConversationMemory(ledger)
    for i in range(5):
        memory.append(chat.id, "user", f"m{i}", input_tokens=3)
    with statements.counting() as seen:
        assert contents(memory.last(chat.id, 3)) == ["m2", "m3", "m4"]
        assert contents(memory.fit(chat.id, 6)) == ["m3", "m4"]
    assert seen.seen == []


def test_miss_loads_once(ledger, statements):
    chat = ledger.conversations.create(ledger.users.create(username="u").id)
    ledger.messages.append_many(chat.id, [{"role": "user", "content": f"m{i}"} for i in range(80)])
    memory = ConversationMemory(ledger, max_messages=50)
    with statements.counting() as seen:
        assert contents(memory.last(chat.id, 5)) == [f"m{i}" for i in range(75, 80)]
    assert len(seen.reads) == 1
    with statements.counting() as seen:
        assert len(memory.last(chat.id, 50)) == 50
        assert memory.last(chat.id, 50)[0].seq == 31
    assert seen.seen == []


def test_an_empty_or_new_conversation_is_cached_whole(ledger, statements):
    user = ledger.users.create(username="u")
    empty = ledger.conversations.create(user.id)
    fresh = ledger.conversations.create(user.id)
    memory = ConversationMemory(ledger)
    assert memory.last(empty.id, 10) == []
    memory.append(fresh.id, "user", "first")
    with statements.counting() as seen:
        assert memory.last(empty.id, 10) == []
        assert contents(memory.last(fresh.id, 10)) == ["first"]
    assert seen.seen == []


def test_least_recently_used_conversations_are_evicted(ledger, statements):
    user = ledger.users.create(username="u")
    chats = [ledger.conversations.create(user.id) for _ in range(3)]
    for chat in chats:
        ledger.messages.append(chat.id, "user", f"in {chat.id}")
    memory = ConversationMemory(ledger, max_conversations=2)
    memory.last(chats[0].id, 1)
    memory.last(chats[1].id, 1)
    memory.last(chats[0].id, 1)  # chats[0] is now the most recently used
    memory.last(chats[2].id, 1)  # evicts chats[1]
    with statements.counting() as seen:
        memory.last(chats[0].id, 1)
        memory.last(chats[2].id, 1)
    assert seen.seen == []
    with statements.counting() as seen:
        assert contents(memory.last(chats[1].id, 1)) == [f"in {chats[1].id}"]
    assert len(seen.reads) == 1


def test_forget_and_clear(ledger, statements):
    user = ledger.users.create(username="u")
    chats = [ledger.conversations.create(user.id) for _ in range(2)]
    memory = ConversationMemory(ledger)
    for chat in chats:
        memory.append(chat.id, "user", "hi")
    memory.forget(chats[0].id)
    with statements.counting() as seen:
        memory.last(chats[1].id, 1)
    assert seen.seen == []
    with statements.counting() as seen:
        memory.last(chats[0].id, 1)
    assert len(seen.reads) == 1
    memory.clear()
    with statements.counting() as seen:
        memory.last(chats[0].id, 1)
        memory.last(chats[1].id, 1)
    assert len(seen.reads) == 2


def test_fit_returns_the_newest_messages_within_the_budget(store, chat):
    memory = memory_of(store, token_counter=lambda message: len(message.content))
    for text in ["aaaa", "bb", "cccccc", "d", "ee"]:
        memory.append(chat.id, "user", text)

    assert contents(memory.fit(chat.id, 3)) == ["d", "ee"]
    assert contents(memory.fit(chat.id, 9)) == ["cccccc", "d", "ee"]
    assert contents(memory.fit(chat.id, 10)) == ["cccccc", "d", "ee"]  # "bb" would need 11
    assert contents(memory.fit(chat.id, 100)) == ["aaaa", "bb", "cccccc", "d", "ee"]
    assert memory.fit(chat.id, 1) == []  # the newest message alone is over budget
    assert memory.fit(chat.id, 0) == []
    # A counter for this call only.
    assert contents(memory.fit(chat.id, 2, count=lambda message: 1)) == ["d", "ee"]


def test_default_token_counts(store, chat):
    memory = memory_of(store)
    question = memory.append(chat.id, "user", "x" * 10, input_tokens=7)
    answer = memory.append(chat.id, "assistant", "y" * 40, input_tokens=900, output_tokens=11)
    plain = memory.append(chat.id, "user", "z" * 9)
    assert [estimate_tokens(m) for m in (question, answer, plain)] == [7, 11, 3]

    assert contents(memory.fit(chat.id, 3)) == ["z" * 9]
    assert contents(memory.fit(chat.id, 14)) == ["y" * 40, "z" * 9]
    assert contents(memory.fit(chat.id, 21)) == ["x" * 10, "y" * 40, "z" * 9]


def test_fit_looks_at_the_cached_window_only(store, chat):
    store.messages.append_many(chat.id, [{"role": "user", "content": "t"} for _ in range(30)])
    memory = memory_of(store, max_messages=10)
    assert len(memory.fit(chat.id, 1_000)) == 10


def test_a_failed_append_leaves_the_cache_unchanged(store, chat):
    memory = memory_of(store)
    memory.append(chat.id, "user", "kept")
    before = memory.last(chat.id, 10)

    with pytest.raises(ValidationError):
        memory.append(chat.id, "robot", "bad role")
    with pytest.raises(ValidationError):
        memory.append(chat.id, "user", "x", input_tokens=-1)
    store.conversations.close(chat.id)
    with pytest.raises(ConflictError):
        memory.append(chat.id, "user", "closed")

    assert memory.last(chat.id, 10) == before
    assert store.messages.last(chat.id, 10) == before


def test_a_rolled_back_append_is_not_remembered(store, chat):
    memory = memory_of(store)
    memory.append(chat.id, "user", "committed")
    with pytest.raises(RuntimeError), store.transaction():
        memory.append(chat.id, "user", "rolled back")
        assert contents(memory.last(chat.id, 10)) == ["committed", "rolled back"]
        raise RuntimeError("boom")
    assert contents(memory.last(chat.id, 10)) == ["committed"]
    memory.append(chat.id, "user", "after")
    assert contents(memory.last(chat.id, 10)) == ["committed", "after"]


def test_appends_by_others_are_seen_after_max_age(store, chat):
    strict = memory_of(store, max_age=0)
    trusting = memory_of(store, max_age=None)
    for memory in (strict, trusting):
        assert memory.last(chat.id, 5) == []
    store.messages.append(chat.id, "user", "from another process")

    assert contents(strict.last(chat.id, 5)) == ["from another process"]
    assert trusting.last(chat.id, 5) == []  # trusts its cache until refreshed
    trusting.refresh(chat.id)
    assert contents(trusting.last(chat.id, 5)) == ["from another process"]


def test_a_stale_entry_fetches_only_what_it_lacks(ledger, statements):
    chat = ledger.conversations.create(ledger.users.create(username="u").id)
    memory = ConversationMemory(ledger, max_age=0)
    for i in range(10):
        memory.append(chat.id, "user", f"mine {i}")
    ledger.messages.append(chat.id, "assistant", "theirs")
    with statements.counting() as seen:
        last = memory.last(chat.id, 11)
    assert contents(last) == [f"mine {i}" for i in range(10)] + ["theirs"]
    assert [m.seq for m in last] == list(range(1, 12))
    assert len(seen.reads) == 2  # the count, then the one new message


def test_an_own_append_after_anothers_is_not_a_gap(store, chat):
    memory = memory_of(store, max_age=None)
    memory.append(chat.id, "user", "one")
    store.messages.append(chat.id, "user", "two (elsewhere)")
    memory.append(chat.id, "user", "three")
    assert contents(memory.last(chat.id, 3)) == ["one", "two (elsewhere)", "three"]


def test_idempotent_replays_do_not_duplicate(store, chat):
    memory = memory_of(store)
    first = memory.append(chat.id, "user", "once", idempotency_key="k1")
    again = memory.append(chat.id, "user", "once", idempotency_key="k1")
    assert again == first
    assert memory.last(chat.id, 10) == [first]


def test_scope_sees_only_its_users_conversations(store, chat):
    stranger = store.users.create(username="stranger")
    memory = memory_of(store.as_user(stranger.id))
    with pytest.raises(NotFoundError):
        memory.last(chat.id, 5)
    with pytest.raises(NotFoundError):
        memory.append(chat.id, "user", "intrusion")
    assert store.messages.count(chat.id) == 0
    mine = memory_of(store.as_user(chat.owner_id))
    mine.append(chat.id, "user", "mine")
    assert contents(mine.last(chat.id, 1)) == ["mine"]


def test_a_deleted_conversation_is_dropped(store, chat):
    memory = memory_of(store, max_age=0)
    memory.append(chat.id, "user", "soon gone")
    store.conversations.delete(chat.id, hard=True)
    with pytest.raises(NotFoundError):
        memory.last(chat.id, 1)


@pytest.mark.parametrize(
    ("call", "field", "limit"),
    [
        (lambda m, c: m.last(c, 0), "n", 10),
        (lambda m, c: m.last(c, 11), "n", 10),
        (lambda m, c: m.fit(c, -1), "max_tokens", 2**31 - 1),
        (lambda m, c: m.last(12, 1), "conversation_id", None),
        (lambda m, c: m.fit(c, 10, count=lambda message: -1), "count", None),
    ],
    ids=["n zero", "n over max_messages", "negative budget", "bad id", "negative count"],
)
def test_read_arguments_are_validated(store, chat, call, field, limit):
    memory = memory_of(store, max_messages=10)
    store.messages.append(chat.id, "user", "x")
    assert len(memory.last(chat.id, 10)) == 1  # at the limit
    with pytest.raises(ValidationError) as caught:
        call(memory, chat.id)
    assert (caught.value.field, caught.value.limit) == (field, limit)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_messages": 0}, "max_messages"),
        ({"max_messages": 1001}, "max_messages"),
        ({"max_conversations": 0}, "max_conversations"),
        ({"max_age": -1}, "max_age"),
        ({"max_age": float("nan")}, "max_age"),
        ({"token_counter": 3}, "token_counter"),
    ],
)
def test_constructor_arguments_are_validated(store, options, field):
    with pytest.raises(ValidationError) as caught:
        memory_of(store, **options)
    assert caught.value.field == field
    memory_of(store, max_messages=1000, max_conversations=1, max_age=0)


def test_threads_share_one_memory(ledger):
    user = ledger.users.create(username="u")
    chats = [ledger.conversations.create(user.id) for _ in range(4)]
    memory = ConversationMemory(ledger, max_messages=200, max_conversations=3, max_age=None)
    errors: list[BaseException] = []

    def chat_loop(worker):
        try:
            for i in range(25):
                chat = chats[(worker + i) % len(chats)]
                memory.append(chat.id, "user", f"w{worker} #{i}")
                window = memory.last(chat.id, 5)
                seqs = [m.seq for m in window]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=chat_loop, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for chat in chats:
        memory.refresh(chat.id)
        assert memory.last(chat.id, 200) == ledger.messages.last(chat.id, 200)
        assert len(memory.last(chat.id, 200)) == 50


def test_add_message_creates_the_conversation_on_its_first_message(store):
    """The agent framework's ``add_message(conversation_id, ..., user_id=...)``: the app's own
    conversation id makes a conversation of that user on its first message; later messages
    and reads use the same id; another user's same id is another conversation."""
    ada, bob = (store.users.create(username=name).id for name in ("ada", "bob"))
    memory = memory_of(store)
    first = memory.add_message("conv_123", "user", "Hello", user_id=ada, intent="greeting")
    second = memory.add_message("conv_123", "assistant", "Hi!", user_id=ada, model="gpt-4")
    theirs = memory.add_message("conv_123", "user", "Bob here", user_id=bob)
    assert first.conversation_id == second.conversation_id != theirs.conversation_id
    assert store.conversations.get(first.conversation_id).owner_id == ada
    assert store.conversations.get(theirs.conversation_id).owner_id == bob
    assert (second.seq, second.model, first.intent) == (2, "gpt-4", "greeting")
    assert contents(memory.last("conv_123", 10, user_id=ada)) == ["Hello", "Hi!"]
    assert contents(memory.fit("conv_123", 1000, user_id=bob)) == ["Bob here"]
    # A fresh memory (another process) finds the key's conversation in the store.
    again = memory_of(store)
    assert contents(again.last("conv_123", 10, user_id=ada)) == ["Hello", "Hi!"]
    third = again.add_message("conv_123", "user", "More", user_id=ada, charge=None)
    assert third.conversation_id == first.conversation_id
    assert third.seq == 3
    # A conversation id is used as it is; an unknown key without a user cannot be created.
    assert memory.add_message(first.conversation_id, "user", "by id").seq == 4
    with pytest.raises(ValidationError):
        memory.add_message("conv_999", "user", "whose?")
    with pytest.raises(NotFoundError):
        memory.last("conv_999", 5, user_id=ada)
    # In a user scope, the scope's user is the owner.
    scoped = memory_of(store.as_user(bob))
    assert contents(scoped.last("conv_123", 10)) == ["Bob here"]
    assert scoped.add_message("conv_123", "assistant", "Hello Bob").conversation_id == (
        theirs.conversation_id
    )
