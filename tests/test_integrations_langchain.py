"""ChatledgerChatMessageHistory against real LangChain, on every backend, sync and async."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.history import RunnableWithMessageHistory

from chatledger import AsyncLedger, Ledger, NotFoundError, ValidationError
from chatledger.integrations.langchain import (
    ChatledgerChatMessageHistory,
    message_fields,
    to_langchain,
)

SAMPLES: list[BaseMessage] = [
    SystemMessage("You are terse.", id="s-1"),
    HumanMessage("What is 2+2?", name="ada", additional_kwargs={"locale": "en"}),
    AIMessage(
        "",
        id="a-1",
        tool_calls=[{"name": "add", "args": {"a": 2, "b": 2}, "id": "call-1", "type": "tool_call"}],
        invalid_tool_calls=[
            {"name": "oops", "args": "{bad", "id": "call-2", "error": "bad JSON", "type": "x"}
        ],
        usage_metadata={
            "input_tokens": 12,
            "output_tokens": 7,
            "total_tokens": 19,
            "input_token_details": {"cache_read": 4},
        },
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
        additional_kwargs={"refusal": None},
    ),
    ToolMessage("4", tool_call_id="call-1", status="success", artifact={"raw": [2, 2]}),
    ToolMessage("boom", tool_call_id="call-3", status="error", id="t-2"),
    AIMessage([{"type": "text", "text": "It is "}, {"type": "text", "text": "4."}], id="a-2"),
    ChatMessage(content="Looks right.", role="critic"),
    FunctionMessage(content="42", name="legacy_fn"),
    HumanMessage(
        [
            {"type": "text", "text": "and this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
        ]
    ),
]


def test_mapping_fills_the_typed_columns():
    fields = message_fields(SAMPLES[2])
    assert fields["role"] == "assistant"
    assert (fields["input_tokens"], fields["output_tokens"]) == (12, 7)
    assert fields["model"] == "gpt-4o-mini"
    assert fields["idempotency_key"] == "a-1"
    assert fields["metadata"]["langchain"]["tool_calls"][0]["name"] == "add"
    assert [message_fields(m)["role"] for m in SAMPLES] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "user",
        "tool",
        "user",
    ]
    assert message_fields(SAMPLES[5])["content"] == "It is \n4."
    # A chunk is stored as the message it adds up to.
    chunk = AIMessageChunk(content="par", id="c-1") + AIMessageChunk(content="tial", id="c-1")
    assert to_langchain_roundtrip(chunk) == AIMessage("partial", id="c-1")


def to_langchain_roundtrip(message: BaseMessage) -> BaseMessage:
    """Through the mapping only, without a database (the database tests are below)."""
    from chatledger.records import Message

    fields = message_fields(message)
    stored = Message(
        id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        seq=1,
        role=fields["role"],
        content=fields["content"],
        intent=None,
        metadata=fields["metadata"],
        model=fields["model"],
        input_tokens=fields["input_tokens"],
        output_tokens=fields["output_tokens"],
        cost=None,
        latency_ms=None,
        request_id=None,
        idempotency_key=fields["idempotency_key"],
        created_at=datetime.now(UTC),
    )
    return to_langchain(stored)


def test_messages_round_trip_on_every_backend(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    history = ChatledgerChatMessageHistory(ledger, chat.id)
    assert isinstance(history, BaseChatMessageHistory)
    history.add_messages(SAMPLES)
    assert history.messages == SAMPLES
    stored = ledger.messages.last(chat.id, 20)
    assert [m.seq for m in stored] == list(range(1, len(SAMPLES) + 1))
    answer = stored[2]
    assert (answer.model, answer.input_tokens, answer.output_tokens) == ("gpt-4o-mini", 12, 7)
    # Adding a message with an id the conversation holds stores nothing.
    history.add_message(SAMPLES[2])
    assert ledger.conversations.get(chat.id).message_count == len(SAMPLES)


def test_async_history_on_an_async_ledger(database_url):
    async def main() -> None:
        async with AsyncLedger(database_url) as ledger:
            user = await ledger.users.create(external_id="ada")
            chat = await ledger.conversations.create(user.id)
            history = ChatledgerChatMessageHistory(ledger, chat.id, max_messages=2)
            await history.aadd_messages(SAMPLES[:4])
            assert await history.aget_messages() == SAMPLES[2:4]
            await history.aclear()
            assert await history.aget_messages() == []
            await history.aadd_messages([HumanMessage("after")])
            assert [m.content for m in await history.aget_messages()] == ["after"]
            with pytest.raises(Exception, match="event loop"):
                _ = history.messages

    asyncio.run(main())


def test_async_methods_on_a_sync_ledger(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    history = ChatledgerChatMessageHistory(ledger, chat.id)

    async def main() -> list[BaseMessage]:
        await history.aadd_messages(SAMPLES[:2])
        return await history.aget_messages()

    assert asyncio.run(main()) == SAMPLES[:2]


def test_max_messages_reads_the_last_ones(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    history = ChatledgerChatMessageHistory(ledger, chat.id, max_messages=3)
    history.add_messages([HumanMessage(f"m{i}") for i in range(10)])
    assert [m.content for m in history.messages] == ["m7", "m8", "m9"]
    with pytest.raises(ValidationError) as caught:
        ChatledgerChatMessageHistory(ledger, chat.id, max_messages=0)
    assert caught.value.field == "max_messages"


def test_max_messages_reads_only_those_rows(ledger):
    """The statement behind max_messages: ORDER BY seq DESC LIMIT n on the primary key."""
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    history = ChatledgerChatMessageHistory(ledger, chat.id, max_messages=2)
    history.add_messages([HumanMessage(f"m{i}") for i in range(50)])
    statements: list[str] = []
    import sqlalchemy as sa

    engine = ledger._core.db.engine
    reader = ledger._core.db._reader
    listen = [engine] if reader is engine or not isinstance(reader, sa.Engine) else [engine, reader]

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    for target in listen:
        sa.event.listen(target, "before_cursor_execute", record)
    try:
        assert [m.content for m in history.messages] == ["m48", "m49"]
    finally:
        for target in listen:
            sa.event.remove(target, "before_cursor_execute", record)
    reads = [s for s in statements if "FROM messages" in s]
    assert len(reads) == 1
    assert "ORDER BY messages.seq DESC" in reads[0]
    assert "LIMIT" in reads[0]


def test_clear_hides_and_keeps_the_ledger(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    history = ChatledgerChatMessageHistory(ledger, chat.id)
    history.add_messages(SAMPLES[:3])
    history.clear()
    assert history.messages == []
    assert ChatledgerChatMessageHistory(ledger, chat.id).messages == []  # for every view
    history.add_message(HumanMessage("fresh"))
    assert [m.content for m in history.messages] == ["fresh"]
    # The ledger keeps everything: counts, usage, seq.
    assert ledger.conversations.get(chat.id).message_count == 4
    assert ledger.usage.overall(conversation_id=chat.id).input_tokens == 12


def test_a_user_scope_reaches_only_its_conversations(ledger):
    alice = ledger.users.create(external_id="alice")
    bob = ledger.users.create(external_id="bob")
    chat = ledger.conversations.create(alice.id)
    ChatledgerChatMessageHistory(ledger.as_user(alice.id), chat.id).add_message(
        HumanMessage("secret")
    )
    theirs = ChatledgerChatMessageHistory(ledger.as_user(bob.id), chat.id)
    with pytest.raises(NotFoundError):
        _ = theirs.messages
    with pytest.raises(NotFoundError):
        theirs.add_message(HumanMessage("let me in"))
    with pytest.raises(NotFoundError):
        theirs.clear()


def test_bad_input_names_the_message(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    history = ChatledgerChatMessageHistory(ledger, chat.id)
    with pytest.raises(ValidationError) as caught:
        history.add_messages([HumanMessage("ok"), HumanMessage("nul \x00")])
    assert caught.value.field == "messages[1].content"
    assert history.messages == []  # nothing half written
    with pytest.raises(TypeError):
        history.add_messages(["not a message"])  # type: ignore[list-item]


# RunnableWithMessageHistory is deprecated by langchain-core 1.x (in favour of LangGraph
# persistence: tests/test_integrations_langgraph.py), but still shipped and widely used.
RWMH_DEPRECATED = pytest.mark.filterwarnings(
    "ignore:RunnableWithMessageHistory is deprecated"
    ":langchain_core._api.deprecation.LangChainDeprecationWarning"
)


@RWMH_DEPRECATED
def test_runnable_with_message_history(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    model = GenericFakeChatModel(
        messages=iter([AIMessage("Lisbon.", id="r-1"), AIMessage("Porto.", id="r-2")])
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer in one word."), MessagesPlaceholder("history"), ("human", "{q}")]
    )
    chain = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: ChatledgerChatMessageHistory(ledger, session_id),
        input_messages_key="q",
        history_messages_key="history",
    )
    settings_: RunnableConfig = {"configurable": {"session_id": str(chat.id)}}
    assert chain.invoke({"q": "Capital of Portugal?"}, settings_).content == "Lisbon."
    assert chain.invoke({"q": "Second city?"}, settings_).content == "Porto."
    stored = ledger.messages.last(chat.id, 10)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "Capital of Portugal?"),
        ("assistant", "Lisbon."),
        ("user", "Second city?"),
        ("assistant", "Porto."),
    ]


@RWMH_DEPRECATED
def test_runnable_with_message_history_async(database_url):
    async def main() -> None:
        async with AsyncLedger(database_url) as ledger:
            user = await ledger.users.create(external_id="ada")
            chat = await ledger.conversations.create(user.id)
            model = GenericFakeChatModel(messages=iter([AIMessage("Lisbon.", id="r-1")]))
            prompt = ChatPromptTemplate.from_messages(
                [MessagesPlaceholder("history"), ("human", "{q}")]
            )
            chain = RunnableWithMessageHistory(
                prompt | model,
                lambda session_id: ChatledgerChatMessageHistory(ledger, session_id),
                input_messages_key="q",
                history_messages_key="history",
            )
            reply = await chain.ainvoke(
                {"q": "Capital of Portugal?"}, {"configurable": {"session_id": str(chat.id)}}
            )
            assert reply.content == "Lisbon."
            assert (await ledger.conversations.get(chat.id)).message_count == 2

    asyncio.run(main())


# -- the round trip, property-tested --------------------------------------------------------------

text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40
)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31), text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)
kwargs = st.dictionaries(text, json_value, max_size=3)
ids = st.one_of(st.none(), st.uuids().map(str))
tool_call = st.builds(
    lambda name, args, call_id: {"name": name, "args": args, "id": call_id, "type": "tool_call"},
    text,
    st.dictionaries(text, json_value, max_size=3),
    st.uuids().map(str),
)
usage = st.one_of(
    st.none(),
    st.builds(
        lambda i, o: {"input_tokens": i, "output_tokens": o, "total_tokens": i + o},
        st.integers(0, 10**6),
        st.integers(0, 10**6),
    ),
)
messages = st.one_of(
    st.builds(HumanMessage, content=text, id=ids, additional_kwargs=kwargs),
    st.builds(SystemMessage, content=text, id=ids),
    st.builds(
        AIMessage,
        content=text,
        id=ids,
        tool_calls=st.lists(tool_call, max_size=2),
        usage_metadata=usage,
        response_metadata=st.dictionaries(text, json_value, max_size=2),
        additional_kwargs=kwargs,
        name=st.one_of(st.none(), text),
    ),
    st.builds(
        ToolMessage,
        content=text,
        tool_call_id=st.uuids().map(str),
        status=st.sampled_from(["success", "error"]),
        artifact=json_value,
        id=ids,
    ),
    st.builds(ChatMessage, content=text, role=st.sampled_from(["critic", "user", "model"])),
    st.builds(FunctionMessage, content=text, name=text),
)


@pytest.fixture(scope="module")
def sqlite_history(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ledger = Ledger(f"sqlite:///{tmp_path_factory.mktemp('lc') / 'chat.db'}")
    ledger.open()
    user = ledger.users.create(external_id="prop")
    yield ledger, user
    ledger.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(messages, min_size=1, max_size=4, unique_by=lambda m: m.id or id(m)))
def test_round_trip_is_lossless(sqlite_history, batch):
    ledger, user = sqlite_history
    chat = ledger.conversations.create(user.id)
    history = ChatledgerChatMessageHistory(ledger, chat.id)
    history.add_messages(batch)
    assert history.messages == batch
