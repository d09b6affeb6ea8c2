"""The minimal LangGraph chat graph (imported only when langgraph is installed).

No ``from __future__ import annotations`` here: LangGraph reads the state's annotations at run
time, so ``Annotated[..., add_messages]`` must be a real object.
"""

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from .data import message

__all__ = ["State", "builder"]


class State(TypedDict):
    """The graph's state: one channel of messages, appended to by ``add_messages``."""

    messages: Annotated[list[AnyMessage], add_messages]


def reply(state: State) -> dict[str, Any]:
    """The one node: answer with one AIMessage (an assistant turn of the data set)."""
    answer = message(len(state["messages"]) | 1)
    return {"messages": [AIMessage(content=answer.content)]}


def builder() -> Any:
    """START -> reply -> END."""
    graph = StateGraph(State)
    graph.add_node("reply", reply)
    graph.add_edge(START, "reply")
    graph.add_edge("reply", END)
    return graph
