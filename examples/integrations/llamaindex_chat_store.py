"""LlamaIndex chat memory kept in chatledger conversations.

Run: python examples/integrations/llamaindex_chat_store.py [--url sqlite:///chat.db]
"""

from __future__ import annotations

import argparse

from llama_index.core.llms import ChatMessage
from llama_index.core.memory import ChatMemoryBuffer

from chatledger import Ledger
from chatledger.integrations.llamaindex import ChatledgerChatStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=None, help="database URL (default: the configuration)")
    url = parser.parse_args().url

    with Ledger(url) as ledger:
        user = ledger.users.get_or_create("auth0|42", display_name="Ada")
        # Keys other than conversation ids get a conversation of this user on first write.
        store = ChatledgerChatStore(ledger.as_user(user.id))
        memory = ChatMemoryBuffer.from_defaults(
            chat_store=store, chat_store_key="support-1", token_limit=1500
        )
        memory.put(ChatMessage(role="user", content="Where is my order?"))
        memory.put(
            ChatMessage(
                role="assistant",
                content="It ships tomorrow.",
                additional_kwargs={"prompt_tokens": 30, "completion_tokens": 5},
            )
        )
        print([(m.role.value, m.content) for m in memory.get()])
        print(store.get_keys())

        # A conversation id is a key too.
        chat = ledger.conversations.create(user.id, title="Returns")
        store.add_message(str(chat.id), ChatMessage(role="user", content="I want a refund."))
        print(ledger.conversations.get(chat.id).message_count)

        # Deleting hides messages from the store; the ledger keeps its record.
        store.delete_last_message("support-1")
        print(len(memory.get_all()))


if __name__ == "__main__":
    main()
