"""A LangGraph chatbot whose checkpoints and message log live in chatledger.

Run: python examples/integrations/langgraph_saver.py [--url sqlite:///chat.db]
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from chatledger import Ledger
from chatledger.integrations.langgraph import (
    ChatledgerSaver,
    CheckpointConflictError,
    checkpointer_for,
)


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def model(state: State) -> dict[str, Any]:
    """Stands in for a chat model: echoes, and reports usage like one."""
    question = state["messages"][-1].content
    usage = {"input_tokens": len(state["messages"]), "output_tokens": 4, "total_tokens": 0}
    usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    return {
        "messages": [
            AIMessage(
                f"You said: {question}",
                usage_metadata=usage,
                response_metadata={"model_name": "echo-1"},
            )
        ]
    }


def build(checkpointer: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node("model", model)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    return graph.compile(checkpointer=checkpointer)


def ask(app: Any, thread: str, text: str) -> Any:
    """One turn; on a conflict (another run of the thread wrote first), run it again."""
    message = HumanMessage(text)  # the same id on every attempt
    for _attempt in range(5):
        try:
            return app.invoke({"messages": [message]}, {"configurable": {"thread_id": thread}})
        except CheckpointConflictError:
            continue
    raise RuntimeError("the thread stayed busy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=None, help="database URL (default: the configuration)")
    url = parser.parse_args().url

    with Ledger(url) as ledger:
        user = ledger.users.get_or_create("auth0|42", display_name="Ada")
        saver = ChatledgerSaver(ledger, user_id=user.id)
        app = build(saver)
        ask(app, "support-1", "My order is late.")
        state = ask(app, "support-1", "It was due Monday.")
        print([m.content for m in state["messages"]])

        # The same turns are in chatledger's message table, with their usage columns.
        conversation = saver.conversation_id("support-1")
        assert conversation is not None
        for m in ledger.messages.last(conversation, 10):
            print(m.seq, m.role, m.content, m.model, m.input_tokens, m.output_tokens)
        print(len(list(app.get_state_history({"configurable": {"thread_id": "support-1"}}))))

    # Or LangGraph's official saver for the same configuration (here: its own tables).
    with checkpointer_for(url) as official:
        print(
            type(official).__name__,
            build(official)
            .invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "plain-1"}})[
                "messages"
            ][-1]
            .content,
        )


if __name__ == "__main__":
    main()
