"""Tool calls through the integrations (issue 15, docs/tools.md): LangChain's
``AIMessage.tool_calls`` / ``ToolMessage``, a LangGraph agent with a ``ToolNode`` and
LlamaIndex's ``additional_kwargs`` become tool call records, and come back unchanged."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from llama_index.core.llms import ChatMessage

from chatledger.integrations.langchain import ChatledgerChatMessageHistory
from chatledger.integrations.langgraph import ChatledgerSaver
from chatledger.integrations.llamaindex import ChatledgerChatStore


def _chat(ledger):
    user = ledger.users.create()
    return ledger.conversations.create(user.id)


def test_langchain_tool_calls_round_trip_as_records(ledger):
    chat = _chat(ledger)
    history = ChatledgerChatMessageHistory(ledger, chat.id)
    turn = [
        HumanMessage("2+2 and the weather?", id="h-1"),
        AIMessage(
            "",
            id="a-1",
            tool_calls=[
                {"name": "add", "args": {"a": 2, "b": 2}, "id": "call-1", "type": "tool_call"},
                {"name": "weather", "args": {"city": "Oslo"}, "id": "call-2", "type": "tool_call"},
            ],
        ),
        ToolMessage("4", tool_call_id="call-1", id="t-1"),
        ToolMessage("no network", tool_call_id="call-2", status="error", id="t-2"),
        # Answering a call nobody recorded: stored (LangChain's message is the truth), unlinked.
        ToolMessage("?", tool_call_id="call-9", id="t-3"),
        AIMessage("4; the weather is unknown.", id="a-2"),
    ]
    history.add_messages(turn)
    assert history.messages == turn
    calls = {c.call_id: c for c in ledger.tools.list(conversation_id=chat.id).items}
    assert {k: (c.name, c.arguments, c.status) for k, c in calls.items()} == {
        "call-1": ("add", {"a": 2, "b": 2}, "success"),
        "call-2": ("weather", {"city": "Oslo"}, "error"),
    }
    assert [m.seq for m in ledger.messages.last(chat.id, 1)] == [6]
    # Adding the turn again stores nothing (ids are idempotency keys).
    history.add_messages(turn)
    assert ledger.messages.count(chat.id) == len(turn)

    # A window of the history never starts with a result whose call it cut off.
    short = ChatledgerChatMessageHistory(ledger, chat.id, max_messages=3)
    assert [m.id for m in short.messages] == ["a-2"]  # t-3 is an orphan at the window start
    wide = ChatledgerChatMessageHistory(ledger, chat.id, max_messages=5)
    assert [m.id for m in wide.messages] == ["a-1", "t-1", "t-2", "t-3", "a-2"]


def test_messages_written_without_langchain_read_as_tool_calls(ledger):
    chat = _chat(ledger)
    ledger.messages.append(chat.id, "user", "add 1 and 2")
    ledger.messages.append(
        chat.id,
        "assistant",
        "",
        tool_calls=[{"id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}}],
    )
    ledger.messages.append(chat.id, "tool", "oops", tool_call_id="c1", tool_status="error")
    read = ChatledgerChatMessageHistory(ledger, chat.id).messages
    assert isinstance(read[1], AIMessage)
    assert read[1].tool_calls == [
        {"id": "c1", "name": "add", "args": {"a": 1, "b": 2}, "type": "tool_call"}
    ]
    assert isinstance(read[2], ToolMessage)
    assert (read[2].tool_call_id, read[2].status, read[2].content) == ("c1", "error", "oops")


class _State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def _model(state: _State) -> dict[str, Any]:
    """A fake model: asks for the tool once, then answers with its result."""
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        return {"messages": [AIMessage(f"The product is {last.content}.")]}
    call = {"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call-m", "type": "tool_call"}
    return {"messages": [AIMessage("", tool_calls=[call])]}


def test_a_langgraph_tool_node_is_logged_as_records(ledger):
    user = ledger.users.create()
    graph = StateGraph(_State)
    graph.add_node("model", _model)
    graph.add_node("tools", ToolNode([multiply]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    graph.add_edge("model", END)
    saver = ChatledgerSaver(ledger, user_id=user.id)
    app = graph.compile(checkpointer=saver)
    result = app.invoke(
        {"messages": [HumanMessage("6 x 7?")]}, {"configurable": {"thread_id": "agent-1"}}
    )
    assert result["messages"][-1].content == "The product is 42."
    conversation = saver.conversation_id("agent-1")
    assert conversation is not None
    call = ledger.tools.get(conversation, "call-m")
    assert (call.name, call.arguments, call.status) == ("multiply", {"a": 6, "b": 7}, "success")
    answer = ledger.messages.get(call.result_message_id)
    assert (answer.role, answer.content) == ("tool", "42")
    assert [row.name for row in ledger.tools.stats().items] == ["multiply"]


def test_llamaindex_tool_calls_become_records(ledger):
    store = ChatledgerChatStore(ledger, user_id=ledger.users.create().id)
    openai_call = {
        "id": "call_x",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q": "chatledger"}'},
    }
    messages = [
        ChatMessage(role="user", content="look it up"),
        ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [openai_call]}),
        ChatMessage(
            role="tool",
            content="a database layer",
            additional_kwargs={"tool_call_id": "call_x", "name": "lookup"},
        ),
    ]
    store.set_messages("session-1", messages)
    assert store.get_messages("session-1") == messages
    page = ledger.tools.list(name="lookup").items
    assert [(c.call_id, c.arguments, c.status) for c in page] == [
        ("call_x", {"q": "chatledger"}, "success")
    ]


def test_messages_written_without_llamaindex_read_as_tool_calls(ledger):
    """A conversation the library wrote reads back with LlamaIndex's ``additional_kwargs``
    (OpenAI's shape), which its write side reads as the same records again."""
    chat = _chat(ledger)
    ledger.messages.append(chat.id, "user", "add 1 and 2, then look it up")
    ledger.messages.append(
        chat.id,
        "assistant",
        "",
        tool_calls=[
            {"id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}},
            {"id": "c2", "name": "lookup", "arguments": {"q": "3"}},
        ],
    )
    ledger.messages.append(chat.id, "tool", "3", tool_call_id="c1")
    ledger.messages.append(chat.id, "tool", "offline", tool_call_id="c2", tool_status="error")
    store = ChatledgerChatStore(ledger, user_id=chat.owner_id)
    read = store.get_messages(str(chat.id))
    assert read[0].additional_kwargs == {}
    assert read[1].additional_kwargs == {
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "3"}'},
            },
        ]
    }
    assert read[2].additional_kwargs == {"tool_call_id": "c1", "name": "add"}
    assert read[3].additional_kwargs == {"tool_call_id": "c2", "name": "lookup", "is_error": True}
    assert asyncio.run(store.aget_messages(str(chat.id))) == read
    store.set_messages("copy", read)
    copied = ledger.tools.list(name="lookup").items
    assert sorted((c.call_id, c.status) for c in copied) == [("c2", "error"), ("c2", "error")]
