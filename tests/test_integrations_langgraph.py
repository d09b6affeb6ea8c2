"""ChatledgerSaver with real LangGraph graphs on every backend: messages logged in the
checkpoint's transaction, resume, interrupts, history, time travel, thread binding, scoping,
erasure, and what concurrent invocations of one thread do. And checkpointer_for, the
official savers for a chatledger configuration."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, interrupt

from chatledger import AsyncLedger, ConflictError, Ledger, NotFoundError, ValidationError
from chatledger.integrations.langgraph import (
    ChatledgerSaver,
    CheckpointConflictError,
    checkpointer_for,
)


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def reply(state: State) -> dict[str, Any]:
    """A fake model: echoes the last message, with usage like a real chat model's."""
    last = state["messages"][-1]
    size = len(state["messages"])
    return {
        "messages": [
            AIMessage(
                f"echo: {last.content}",
                usage_metadata={
                    "input_tokens": size,
                    "output_tokens": 3,
                    "total_tokens": size + 3,
                },
                response_metadata={"model_name": "fake-echo"},
            )
        ]
    }


def chat_graph(saver: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node("model", reply)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    return graph.compile(checkpointer=saver)


def review(state: State) -> dict[str, Any]:
    decision = interrupt({"question": "send this answer?"})
    return {"messages": [AIMessage(f"reviewed: {decision}")]}


def review_graph(saver: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node("model", reply)
    graph.add_node("review", review)
    graph.add_edge(START, "model")
    graph.add_edge("model", "review")
    graph.add_edge("review", END)
    return graph.compile(checkpointer=saver)


def config(thread: str, **extra: Any) -> Any:
    return {"configurable": {"thread_id": thread, **extra}}


def logged(ledger: Ledger, saver: ChatledgerSaver, thread: str) -> list[Any]:
    conversation = saver.conversation_id(thread)
    assert conversation is not None
    return ledger.messages.list(conversation, limit=1000).items


# -- messages in the checkpoint's transaction ----------------------------------------------------


def test_turns_are_checkpointed_and_logged_with_usage(ledger):
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    app = chat_graph(saver)
    app.invoke({"messages": [HumanMessage("hello")]}, config("t-1"))
    state = app.invoke({"messages": [HumanMessage("again")]}, config("t-1"))

    rows = logged(ledger, saver, "t-1")
    assert [(m.role, m.content) for m in rows] == [
        ("user", "hello"),
        ("assistant", "echo: hello"),
        ("user", "again"),
        ("assistant", "echo: again"),
    ]
    # The log is the state, message for message (LangChain ids are the idempotency keys).
    assert [m.idempotency_key for m in rows] == [m.id for m in state["messages"]]
    answer = rows[3]
    assert (answer.model, answer.input_tokens, answer.output_tokens) == ("fake-echo", 3, 3)
    conversation = ledger.conversations.get(saver.conversation_id("t-1"))
    assert conversation.owner_id == user.id
    assert conversation.message_count == 4
    assert conversation.metadata == {"langgraph_thread_id": "t-1"}

    # A new process (new saver, new graph) resumes the thread where it was.
    again = chat_graph(ChatledgerSaver(ledger, user_id=user.id))
    assert again.get_state(config("t-1")).values["messages"] == state["messages"]
    again.invoke({"messages": [HumanMessage("third")]}, config("t-1"))
    assert ledger.conversations.get(conversation.id).message_count == 6

    history = list(again.get_state_history(config("t-1")))
    assert len(history) == 9  # 3 invocations x (input, start, model)
    ids = [snapshot.config["configurable"]["checkpoint_id"] for snapshot in history]
    assert ids == sorted(ids, reverse=True)
    for newer, older in itertools.pairwise(history):
        assert newer.parent_config["configurable"]["checkpoint_id"] == ids[history.index(older)]


def test_async_graph_on_an_async_ledger(database_url):
    async def main() -> None:
        async with AsyncLedger(database_url) as ledger:
            user = await ledger.users.create(external_id="ada")
            saver = ChatledgerSaver(ledger, user_id=user.id)
            app = chat_graph(saver)
            await app.ainvoke({"messages": [HumanMessage("hello")]}, config("t-a"))
            state = await app.ainvoke({"messages": [HumanMessage("again")]}, config("t-a"))
            conversation = await saver.aconversation_id("t-a")
            assert conversation is not None
            rows = (await ledger.messages.list(conversation)).items
            assert [m.idempotency_key for m in rows] == [m.id for m in state["messages"]]
            snapshot = await app.aget_state(config("t-a"))
            assert snapshot.values["messages"] == state["messages"]
            history = [s async for s in app.aget_state_history(config("t-a"))]
            assert len(history) == 6
            # The sync methods refuse to block the event loop, and work from other threads.
            with pytest.raises(Exception, match="event loop"):
                saver.get_tuple(config("t-a"))
            found = await asyncio.to_thread(saver.get_tuple, config("t-a"))
            assert found is not None
            assert found.checkpoint["channel_values"]["messages"] == state["messages"]

    asyncio.run(main())


def test_a_put_that_cannot_log_its_messages_stores_nothing(ledger):
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    app = chat_graph(saver)
    app.invoke({"messages": [HumanMessage("fine")]}, config("t-2"))
    assert len(list(saver.list(config("t-2")))) == 3
    with pytest.raises(ValidationError) as caught:
        app.invoke({"messages": [HumanMessage("bad \x00 byte")]}, config("t-2"))
    assert caught.value.field == "messages[0].content"  # the first new message
    # The run's input checkpoint (no new messages) was stored; the step that added the bad
    # message wrote neither its checkpoint nor any of its messages.
    head = saver.get_tuple(config("t-2"))
    assert head is not None
    assert head.metadata["source"] == "input"
    assert len(list(saver.list(config("t-2")))) == 4
    assert len(head.checkpoint["channel_values"]["messages"]) == 2
    assert len(logged(ledger, saver, "t-2")) == 2


def test_messages_channel_can_be_turned_off(ledger):
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id, messages_channel=None)
    chat_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config("t-3"))
    assert logged(ledger, saver, "t-3") == []


# -- interrupts, time travel ---------------------------------------------------------------------


def test_interrupt_and_resume(ledger):
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    app = review_graph(saver)
    paused = app.invoke({"messages": [HumanMessage("draft")]}, config("t-4"))
    assert paused["__interrupt__"][0].value == {"question": "send this answer?"}
    assert app.get_state(config("t-4")).next == ("review",)
    assert len(logged(ledger, saver, "t-4")) == 2

    # Another process resumes it.
    resumed = review_graph(ChatledgerSaver(ledger, user_id=user.id)).invoke(
        Command(resume="approved"), config("t-4")
    )
    assert resumed["messages"][-1].content == "reviewed: approved"
    assert [m.content for m in logged(ledger, saver, "t-4")] == [
        "draft",
        "echo: draft",
        "reviewed: approved",
    ]


def test_time_travel_is_a_branch_the_caller_asks_for(ledger):
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    app = chat_graph(saver)
    app.invoke({"messages": [HumanMessage("one")]}, config("t-5"))
    app.invoke({"messages": [HumanMessage("two")]}, config("t-5"))
    older = next(
        s for s in app.get_state_history(config("t-5")) if len(s.values.get("messages", [])) == 2
    )
    past = older.config["configurable"]["checkpoint_id"]

    with pytest.raises(CheckpointConflictError) as caught:
        app.invoke({"messages": [HumanMessage("instead")]}, config("t-5", checkpoint_id=past))
    assert caught.value.parent_checkpoint_id == past
    assert isinstance(caught.value, ConflictError)

    branch = app.invoke(
        {"messages": [HumanMessage("instead")]},
        config("t-5", checkpoint_id=past, chatledger_fork=True),
    )
    assert [m.content for m in branch["messages"]] == [
        "one",
        "echo: one",
        "instead",
        "echo: instead",
    ]
    # The log is append-only: both branches' messages are in it, in the order written.
    assert [m.content for m in logged(ledger, saver, "t-5")][-2:] == ["instead", "echo: instead"]
    assert len(logged(ledger, saver, "t-5")) == 6
    # The fork is a branch of the conversation at "echo: one", and the active path.
    conversation = saver.conversation_id("t-5")
    assert conversation is not None
    assert [m.content for m in ledger.messages.last(conversation)] == [
        "one",
        "echo: one",
        "instead",
        "echo: instead",
    ]
    instead = ledger.messages.last(conversation, 2)[0]
    assert [m.content for m in ledger.trees.siblings(instead.id)] == ["two", "instead"]
    # The next turn on the fork continues it.
    app.invoke({"messages": [HumanMessage("three")]}, config("t-5"))
    assert [m.content for m in ledger.messages.last(conversation, 2)] == ["three", "echo: three"]
    assert len(ledger.trees.leaves(conversation)) == 2


# -- threads and conversations -----------------------------------------------------------------


def test_a_thread_named_by_a_conversation_id_uses_it(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id, title="support")
    ledger.messages.append(chat.id, "system", "be brief")
    saver = ChatledgerSaver(ledger)  # no user needed: the conversation exists
    chat_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config(str(chat.id)))
    assert saver.conversation_id(str(chat.id)) == chat.id
    assert [m.content for m in ledger.messages.last(chat.id, 5)] == ["be brief", "hi", "echo: hi"]


def test_a_new_thread_needs_a_user(ledger):
    saver = ChatledgerSaver(ledger)
    with pytest.raises(ValidationError) as caught:
        chat_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config("orphan"))
    assert caught.value.field == "thread_id"
    user = ledger.users.create(external_id="ada")
    chat_graph(saver).invoke(
        {"messages": [HumanMessage("hi")]}, config("orphan", chatledger_user_id=str(user.id))
    )
    owner = ledger.conversations.get(saver.conversation_id("orphan")).owner_id
    assert owner == user.id


def test_a_user_scope_sees_only_its_threads(ledger):
    alice = ledger.users.create(external_id="alice")
    bob = ledger.users.create(external_id="bob")
    theirs = ChatledgerSaver(ledger.as_user(alice.id))
    chat_graph(theirs).invoke({"messages": [HumanMessage("secret")]}, config("shared-name"))
    assert ledger.conversations.get(theirs.conversation_id("shared-name")).owner_id == alice.id

    bobs = ChatledgerSaver(ledger.as_user(bob.id))
    assert bobs.get_tuple(config("shared-name")) is None
    assert list(bobs.list(None)) == []
    assert bobs.conversation_id("shared-name") is None
    # Thread ids are per owner: Bob's "shared-name" is a thread (and conversation) of his own.
    chat_graph(bobs).invoke({"messages": [HumanMessage("mine")]}, config("shared-name"))
    bobs_chat = bobs.conversation_id("shared-name")
    chat = theirs.conversation_id("shared-name")
    assert bobs_chat is not None
    assert bobs_chat != chat
    assert ledger.conversations.get(bobs_chat).owner_id == bob.id
    assert next(m.content for m in ledger.messages.list(bobs_chat).items) == "mine"
    assert next(m.content for m in ledger.messages.list(chat).items) == "secret"
    assert len(list(bobs.list(None))) == len(list(bobs.list(config("shared-name")))) > 0
    alices = theirs.get_tuple(config("shared-name"))
    assert alices is not None
    assert next(m.content for m in alices.checkpoint["channel_values"]["messages"]) == "secret"
    # Bob cannot bind a thread to Alice's conversation by naming it.
    with pytest.raises(NotFoundError):
        chat_graph(bobs).invoke({"messages": [HumanMessage("x")]}, config(str(chat)))


def test_thread_ids_are_per_owner_without_scopes(ledger):
    """Savers on the whole ledger acting for two users (``user_id``, or the config's
    ``chatledger_user_id``) keep two threads under one thread id; a saver with no user cannot
    tell them apart and says so."""
    alice = ledger.users.create(external_id="alice")
    bob = ledger.users.create(external_id="bob")
    for user, text in ((alice, "from alice"), (bob, "from bob")):
        saver = ChatledgerSaver(ledger, user_id=user.id)
        chat_graph(saver).invoke({"messages": [HumanMessage(text)]}, config("t-1"))
    for user, text in ((alice, "from alice"), (bob, "from bob")):
        saver = ChatledgerSaver(ledger, user_id=user.id)
        found = saver.get_tuple(config("t-1"))
        assert found is not None
        assert found.checkpoint["channel_values"]["messages"][0].content == text
        chat = saver.conversation_id("t-1")
        assert chat is not None
        assert ledger.conversations.get(chat).owner_id == user.id
    anyone = ChatledgerSaver(ledger)
    found = anyone.get_tuple(config("t-1", chatledger_user_id=str(bob.id)))
    assert found is not None
    assert found.checkpoint["channel_values"]["messages"][0].content == "from bob"
    with pytest.raises(ValidationError, match="several users"):
        anyone.get_tuple(config("t-1"))
    ChatledgerSaver(ledger, user_id=alice.id).delete_thread("t-1")
    assert ChatledgerSaver(ledger, user_id=alice.id).get_tuple(config("t-1")) is None
    assert ChatledgerSaver(ledger, user_id=bob.id).get_tuple(config("t-1")) is not None
    assert anyone.get_tuple(config("t-1")) is not None  # one owner left: no longer ambiguous


def test_delete_thread_keeps_the_conversation(ledger):
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    chat_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config("t-6"))
    conversation = saver.conversation_id("t-6")
    saver.delete_thread("t-6")
    assert saver.get_tuple(config("t-6")) is None
    assert saver.conversation_id("t-6") is None
    assert ledger.conversations.get(conversation).message_count == 2


def test_erasing_the_user_erases_their_checkpoints(ledger):
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    chat_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config("t-7"))
    exported = ledger.users.export(user.id)["tables"]
    assert len(exported["graph_checkpoints"]) == 3
    assert exported["graph_threads"][0]["thread_id"] == "t-7"
    assert all(isinstance(row["checkpoint"], str) for row in exported["graph_checkpoints"])

    report = ledger.users.erase(user.id)
    assert report.deleted["graph_checkpoints"] == 3
    assert report.deleted["graph_threads"] == 1
    assert report.deleted["graph_blobs"] > 0
    assert saver.get_tuple(config("t-7")) is None


# -- concurrency -------------------------------------------------------------------------------

RUNS = 4


class Racing:
    """Makes every invocation read the thread's head before any of them writes: the worst
    interleaving of RUNS concurrent invocations, every time (mixed into a saver)."""

    barrier: threading.Barrier
    racing: threading.local

    def get_tuple(self, config: Any) -> Any:
        found = super().get_tuple(config)  # type: ignore[misc]
        if getattr(self.racing, "on", False):
            self.racing.on = False
            self.barrier.wait(timeout=30)
        return found


class RacingSaver(Racing, ChatledgerSaver):
    def __init__(self, *args: Any, barrier: threading.Barrier, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.barrier = barrier
        self.racing = threading.local()


class RacingMemorySaver(Racing, InMemorySaver):
    """The same race on LangGraph's in-memory saver, for comparison."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__()
        self.barrier = barrier
        self.racing = threading.local()


def race(
    saver: Any, app: Any, thread: str, *, retry: bool, prefix: str = "turn"
) -> tuple[list[str], list[Exception]]:
    """RUNS threads each send one message on ``thread`` at once. Returns the messages whose
    invocation returned, and the errors of the others."""
    done: list[str] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def run(number: int) -> None:
        text = f"{prefix} {number}"
        # One message object for every attempt: a retry resends the same id, so a turn whose
        # input another run already took up is merged, not repeated (see the docs).
        message = HumanMessage(text, id=f"{prefix}-{number}-{uuid.uuid4().hex}")
        saver.racing.on = True
        for _attempt in range(20):
            try:
                app.invoke({"messages": [message]}, config(thread))
            except CheckpointConflictError as exc:
                if retry:
                    continue
                with lock:
                    errors.append(exc)
                return
            with lock:
                done.append(text)
            return

    workers = [threading.Thread(target=run, args=(n,)) for n in range(RUNS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return done, errors


def test_concurrent_invocations_lose_no_turn(ledger):
    user = ledger.users.create(external_id="ada")
    saver = RacingSaver(ledger, user_id=user.id, barrier=threading.Barrier(RUNS))
    app = chat_graph(saver)
    app.invoke({"messages": [HumanMessage("start")]}, config("t-race"))

    done, errors = race(saver, app, "t-race", retry=False)
    # One invocation extends the thread; the three others get a conflict and wrote nothing.
    assert len(done) == 1
    assert len(errors) == RUNS - 1
    assert all(isinstance(e, CheckpointConflictError) and e.retriable for e in errors)
    state = app.get_state(config("t-race")).values["messages"]
    assert [m.content for m in state] == ["start", "echo: start", done[0], f"echo: {done[0]}"]
    assert [m.idempotency_key for m in logged(ledger, saver, "t-race")] == [m.id for m in state]

    # Retrying the refused ones (as the error says) gets every turn in, once.
    saver.barrier = threading.Barrier(RUNS)
    winner = done[0]
    done, errors = race(saver, app, "t-race", retry=True, prefix="retried")
    assert (len(done), errors) == (RUNS, [])
    state = app.get_state(config("t-race")).values["messages"]
    sent = sorted(m.content for m in state if isinstance(m, HumanMessage))
    assert sent == sorted(["start", winner, *(f"retried {n}" for n in range(RUNS))])
    rows = logged(ledger, saver, "t-race")
    assert [m.idempotency_key for m in rows] == [m.id for m in state]
    assert len(rows) == 2 * (2 + RUNS)


def test_the_official_in_memory_saver_loses_turns_in_the_same_race():
    saver = RacingMemorySaver(threading.Barrier(RUNS))
    app = chat_graph(saver)
    app.invoke({"messages": [HumanMessage("start")]}, config("t-race"))
    done, errors = race(saver, app, "t-race", retry=False)
    assert (len(done), errors) == (RUNS, [])  # every invocation "succeeds"...
    state = app.get_state(config("t-race")).values["messages"]
    assert len(state) == 4  # ...but the thread keeps one turn of the four.


def test_concurrent_async_invocations_lose_no_turn(database_url):
    async def main() -> None:
        async with AsyncLedger(database_url) as ledger:
            user = await ledger.users.create(external_id="ada")
            saver = ChatledgerSaver(ledger, user_id=user.id)
            app = chat_graph(saver)
            await app.ainvoke({"messages": [HumanMessage("start")]}, config("t-async"))
            conflicts = 0

            async def run(number: int) -> None:
                nonlocal conflicts
                message = HumanMessage(f"turn {number}", id=f"turn-{number}")
                for _attempt in range(50):
                    try:
                        await app.ainvoke({"messages": [message]}, config("t-async"))
                        return
                    except CheckpointConflictError:
                        conflicts += 1
                        await asyncio.sleep(0.01 * (number + 1))
                raise AssertionError("never got in")

            await asyncio.gather(*(run(n) for n in range(RUNS)))
            state = (await app.aget_state(config("t-async"))).values["messages"]
            sent = sorted(m.content for m in state if isinstance(m, HumanMessage))
            assert sent == ["start", *(f"turn {n}" for n in range(RUNS))]
            conversation = await saver.aconversation_id("t-async")
            assert conversation is not None
            rows = (await ledger.messages.list(conversation, limit=100)).items
            assert [m.idempotency_key for m in rows] == [m.id for m in state]

    asyncio.run(main())


# -- the official savers ---------------------------------------------------------------------

OFFICIAL = {
    "sqlite": ("SqliteSaver", "AsyncSqliteSaver"),
    "postgresql": ("PostgresSaver", "AsyncPostgresSaver"),
    "mariadb": ("PyMySQLSaver", "AIOMySQLSaver"),
}


# langgraph-checkpoint-mysql's setup() re-runs CREATE TABLE IF NOT EXISTS, which MariaDB answers
# with a note that PyMySQL issues as a warning: the saver's doing, harmless.
@pytest.mark.filterwarnings("ignore:Table 'checkpoint_migrations' already exists")
def test_checkpointer_for_gives_the_official_saver(backend, make_database):
    url = make_database(backend, f"savers{uuid.uuid4().hex[:6]}")
    with checkpointer_for(url) as saver:
        assert type(saver).__name__ == OFFICIAL[backend][0]
        chat_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config("t-o"))
    with checkpointer_for(url.render_as_string(hide_password=False)) as saver:
        state = chat_graph(saver).get_state(config("t-o")).values
        assert [m.content for m in state["messages"]] == ["hi", "echo: hi"]


#: aiomysql 0.3.2 imports a converter PyMySQL 1.2 replaced by a string, so it cannot send bytes
#: parameters: AIOMySQLSaver fails on its first blob (ChatledgerSaver avoids bytes parameters
#: on MySQL, see chatledger._types.LongBlob).
AIOMYSQL_BROKEN = pytest.mark.xfail(
    raises=TypeError, strict=True, reason="aiomysql 0.3 cannot send bytes with PyMySQL 1.2"
)


@pytest.mark.filterwarnings("ignore:Table 'checkpoint_migrations' already exists")
def test_checkpointer_for_gives_the_official_async_saver(backend, make_database, request):
    if backend == "mariadb":
        request.applymarker(AIOMYSQL_BROKEN)
    url = make_database(backend, f"savers{uuid.uuid4().hex[:6]}")

    async def main() -> None:
        async with checkpointer_for(url, async_=True) as saver:
            assert type(saver).__name__ == OFFICIAL[backend][1]
            app = chat_graph(saver)
            await app.ainvoke({"messages": [HumanMessage("hi")]}, config("t-o"))
            state = await app.ainvoke({"messages": [HumanMessage("again")]}, config("t-o"))
            assert len(state["messages"]) == 4

    asyncio.run(main())


def test_checkpointer_for_reads_chatledger_configuration(tmp_path, monkeypatch):
    path = tmp_path / "app.db"
    monkeypatch.setenv("CHATLEDGER_DATABASE_URL", f"sqlite:///{path}")
    with checkpointer_for() as saver:
        chat_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config("t-c"))
    assert path.exists()
    with Ledger() as ledger, checkpointer_for(ledger) as saver:
        assert saver.get_tuple(config("t-c")) is not None


def test_list_pages_through_long_threads(ledger):
    from langgraph.checkpoint.base import empty_checkpoint

    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    stored: Any = config("t-long")
    ids = []
    for step in range(130):
        checkpoint = empty_checkpoint()
        stored = saver.put(stored, checkpoint, {"source": "loop", "step": step}, {})
        ids.append(checkpoint["id"])
    listed = [t.checkpoint["id"] for t in saver.list(config("t-long"))]
    assert listed == ids[::-1]  # every page, newest first
    assert len(list(saver.list(config("t-long"), limit=70))) == 70
    assert [t.metadata["step"] for t in saver.list(config("t-long"), filter={"step": 3})] == [3]
    before = config("t-long", checkpoint_id=ids[60])
    assert [t.checkpoint["id"] for t in saver.list(None, before=before, limit=2)] == [
        ids[59],
        ids[58],
    ]


def test_a_refused_put_keeps_no_lock(ledger, database_url):
    """A put refused after taking the conversation's row lock releases it at once (on
    MariaDB the pool used to skip the rollback of a transaction of SELECTs only)."""
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    chat_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config("t-lock"))
    stale = config("t-lock", checkpoint_id="0" * 36)
    from langgraph.checkpoint.base import empty_checkpoint

    with pytest.raises(CheckpointConflictError):
        saver.put(stale, empty_checkpoint(), {"source": "loop", "step": 9}, {})
    conversation = saver.conversation_id("t-lock")
    assert conversation is not None
    appended: list[Any] = []
    with Ledger(database_url) as other:  # another engine: other connections
        worker = threading.Thread(
            target=lambda: appended.append(other.messages.append(conversation, "user", "next"))
        )
        worker.start()
        worker.join(timeout=10)
        assert appended, "the conversation's row lock was still held"


# -- what a saver remembers between operations ----------------------------------------------------


def test_savers_taking_turns_on_one_thread_keep_one_line(ledger):
    """Two savers (two processes, say) alternate on one thread: each one's memory of the
    thread misses the other's messages, and the log still continues the active leaf."""
    user = ledger.users.create(external_id="ada")
    savers = [ChatledgerSaver(ledger, user_id=user.id) for _ in range(2)]
    apps = [chat_graph(saver) for saver in savers]
    for turn in range(4):
        state = apps[turn % 2].invoke(
            {"messages": [HumanMessage(f"turn {turn}")]}, config("t-shared")
        )
    rows = logged(ledger, savers[0], "t-shared")
    assert [m.idempotency_key for m in rows] == [m.id for m in state["messages"]]
    assert [m.seq for m in rows] == list(range(1, 9))
    assert [m.parent_seq for m in rows] == [None, *range(1, 8)]
    conversation = ledger.conversations.get(savers[0].conversation_id("t-shared"))
    assert (conversation.message_count, conversation.path_length) == (8, 8)


def test_a_thread_deleted_by_another_saver_starts_over(ledger):
    """A saver remembers a thread's binding; another saver deletes the thread: the next turn
    of the first sees the binding gone and binds the thread anew (a new conversation), with
    the whole new state logged, not only what it had not logged before."""
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    app = chat_graph(saver)
    app.invoke({"messages": [HumanMessage("one")]}, config("t-gone"))
    first = saver.conversation_id("t-gone")
    ChatledgerSaver(ledger, user_id=user.id).delete_thread("t-gone")

    assert app.get_state(config("t-gone")).values == {}
    state = app.invoke({"messages": [HumanMessage("two")]}, config("t-gone"))
    second = saver.conversation_id("t-gone")
    assert second not in (None, first)
    assert [m.content for m in logged(ledger, saver, "t-gone")] == ["two", "echo: two"]
    assert [m.content for m in state["messages"]] == ["two", "echo: two"]
    assert ledger.conversations.get(first).message_count == 2


def test_pending_writes_survive_a_deleted_binding(ledger):
    """put_writes through a remembered binding that another saver deleted binds anew instead
    of failing on the foreign key."""
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    app = chat_graph(saver)
    app.invoke({"messages": [HumanMessage("one")]}, config("t-w"))
    first = saver.conversation_id("t-w")
    stored = saver.get_tuple(config("t-w"))
    assert stored is not None
    head = stored.config
    ChatledgerSaver(ledger, user_id=user.id).delete_thread("t-w")
    saver.put_writes(head, [("messages", HumanMessage("late"))], "task-1")
    assert saver.conversation_id("t-w") not in (None, first)
    # The checkpoint went with the old binding; the new one holds the writes only.
    assert saver.get_tuple(head) is None


def test_a_turn_rolled_back_in_a_caller_transaction_is_logged_later(ledger):
    """Messages logged inside a caller's transaction that rolls back are not remembered as
    logged: the next put logs them."""
    user = ledger.users.create(external_id="ada")
    saver = ChatledgerSaver(ledger, user_id=user.id)
    app = chat_graph(saver)
    app.invoke({"messages": [HumanMessage("one")]}, config("t-tx"))
    question = HumanMessage("two")
    with pytest.raises(RuntimeError), ledger.transaction():
        app.update_state(config("t-tx"), {"messages": [question]})
        assert [m.content for m in logged(ledger, saver, "t-tx")][-1] == "two"
        raise RuntimeError("rolled back")
    assert [m.content for m in logged(ledger, saver, "t-tx")] == ["one", "echo: one"]
    state = app.invoke({"messages": [question]}, config("t-tx"))
    rows = logged(ledger, saver, "t-tx")
    assert [m.idempotency_key for m in rows] == [m.id for m in state["messages"]]
    assert [m.content for m in rows] == ["one", "echo: one", "two", "echo: two"]
