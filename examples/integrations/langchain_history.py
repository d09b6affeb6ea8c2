"""LangChain chat history in chatledger: a conversation as a BaseChatMessageHistory.

Run: python examples/integrations/langchain_history.py [--url sqlite:///chat.db]
"""

from __future__ import annotations

import argparse
import asyncio

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from chatledger import AsyncLedger, Ledger
from chatledger.integrations.langchain import ChatledgerChatMessageHistory


def sync_demo(url: str | None) -> None:
    with Ledger(url) as ledger:
        user = ledger.users.get_or_create("auth0|42", display_name="Ada")
        chat = ledger.conversations.create(user.id, title="Lisbon")
        history = ChatledgerChatMessageHistory(ledger, chat.id)
        history.add_messages(
            [
                SystemMessage("You plan trips."),
                HumanMessage("Three days in Lisbon?"),
                AIMessage(
                    "Alfama, Belém, Sintra.",
                    usage_metadata={"input_tokens": 21, "output_tokens": 6, "total_tokens": 27},
                    response_metadata={"model_name": "gpt-4o-mini"},
                ),
            ]
        )
        # The typed columns hold the usage; the message comes back exactly as it went in.
        stored = ledger.messages.last(chat.id, 1)[0]
        print(stored.role, stored.model, stored.input_tokens, stored.output_tokens)
        print(history.messages[-1])

        # Only the last N messages are read for the next model call.
        window = ChatledgerChatMessageHistory(ledger, chat.id, max_messages=2)
        print([type(m).__name__ for m in window.messages])

        # clear() hides the messages from the history; the ledger keeps them.
        history.clear()
        print(len(history.messages), ledger.conversations.get(chat.id).message_count)


async def async_demo(url: str | None) -> None:
    async with AsyncLedger(url) as ledger:
        user = await ledger.users.get_or_create("auth0|42")
        chat = await ledger.conversations.create(user.id)
        history = ChatledgerChatMessageHistory(ledger, chat.id)
        await history.aadd_messages([HumanMessage("Hello"), AIMessage("Hi!")])
        print([m.content for m in await history.aget_messages()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=None, help="database URL (default: the configuration)")
    url = parser.parse_args().url
    sync_demo(url)
    asyncio.run(async_demo(url))


if __name__ == "__main__":
    main()
