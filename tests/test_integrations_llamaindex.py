"""ChatledgerChatStore against real LlamaIndex, on every backend, sync and async."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.base.llms.types import ImageBlock, TextBlock
from llama_index.core.llms import ChatMessage
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.storage.chat_store.base import BaseChatStore

from chatledger import AsyncLedger, ValidationError
from chatledger.integrations.langgraph import ChatledgerSaver
from chatledger.integrations.llamaindex import ChatledgerChatStore

SAMPLES = [
    ChatMessage(role="system", content="Be brief."),
    ChatMessage(role="developer", content="Never guess."),
    ChatMessage(role="user", content="Hi", additional_kwargs={"locale": "pt"}),
    ChatMessage(
        role="assistant",
        content="Olá!",
        additional_kwargs={"model": "gpt-4o-mini", "prompt_tokens": 12, "completion_tokens": 3},
    ),
    ChatMessage(role="tool", content="42", additional_kwargs={"tool_call_id": "call-1"}),
    ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="what is this?"),
            ImageBlock(url="https://example.com/cat.png", image_mimetype="image/png"),
        ],
    ),
    ChatMessage(role="chatbot", content="A cat."),
]


def test_messages_round_trip_with_usage(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    store = ChatledgerChatStore(ledger)
    assert isinstance(store, BaseChatStore)
    store.set_messages(str(chat.id), SAMPLES)
    assert store.get_messages(str(chat.id)) == SAMPLES
    stored = ledger.messages.last(chat.id, 20)
    assert [m.role for m in stored] == [
        "system",
        "system",
        "user",
        "assistant",
        "tool",
        "user",
        "assistant",
    ]
    assert (stored[3].model, stored[3].input_tokens, stored[3].output_tokens) == (
        "gpt-4o-mini",
        12,
        3,
    )
    assert stored[5].content == "what is this?"


def test_deletes_hide_messages_and_keep_the_ledger(ledger):
    user = ledger.users.create(external_id="ada")
    chat = ledger.conversations.create(user.id)
    store = ChatledgerChatStore(ledger)
    key = str(chat.id)
    for message in SAMPLES[:4]:
        store.add_message(key, message)
    assert store.delete_message(key, 1) == SAMPLES[1]
    assert store.get_messages(key) == [SAMPLES[0], SAMPLES[2], SAMPLES[3]]
    assert store.delete_last_message(key) == SAMPLES[3]
    assert store.delete_message(key, 5) is None
    assert store.get_messages(key) == [SAMPLES[0], SAMPLES[2]]
    assert store.delete_messages(key) == [SAMPLES[0], SAMPLES[2]]
    assert store.get_messages(key) == []
    assert store.delete_last_message(key) is None
    store.set_messages(key, [SAMPLES[6]])
    assert store.get_messages(key) == [SAMPLES[6]]
    assert ledger.conversations.get(chat.id).message_count == 5
    with pytest.raises(ValidationError):
        store.add_message(key, SAMPLES[0], idx=0)


def test_app_keys_are_bound_to_new_conversations(ledger):
    alice = ledger.users.create(external_id="alice")
    bob = ledger.users.create(external_id="bob")
    store = ChatledgerChatStore(ledger.as_user(alice.id))
    assert store.get_messages("session-1") == []
    assert store.delete_messages("session-1") is None
    store.add_message("session-1", SAMPLES[2])
    assert store.get_messages("session-1") == [SAMPLES[2]]
    assert store.get_keys() == ["session-1"]

    # Keys share LangGraph's thread bindings: the same conversation.
    saver = ChatledgerSaver(ledger.as_user(alice.id))
    chat = saver.conversation_id("session-1")
    assert chat is not None
    assert ledger.conversations.get(chat).owner_id == alice.id

    # Another user sees none of it, and cannot read Alice's conversation by its id.
    theirs = ChatledgerChatStore(ledger.as_user(bob.id))
    assert theirs.get_keys() == []
    assert theirs.get_messages(str(chat)) == []
    # Keys are per owner: Bob's "session-1" is a conversation of his own.
    theirs.add_message("session-1", SAMPLES[0])
    assert theirs.get_messages("session-1") == [SAMPLES[0]]
    assert store.get_messages("session-1") == [SAMPLES[2]]
    assert theirs.get_keys() == ["session-1"]

    # A whole-ledger store needs a user to create conversations for.
    with pytest.raises(ValidationError):
        ChatledgerChatStore(ledger).add_message("orphan", SAMPLES[2])
    ChatledgerChatStore(ledger, user_id=bob.id).add_message("orphan", SAMPLES[2])
    assert ChatledgerChatStore(ledger.as_user(bob.id)).get_keys() == ["session-1", "orphan"]


def test_one_fixed_key_per_user_scope(ledger):
    """The docs' pattern: every user's store uses the same key; each user gets their own
    conversation, and overwriting one user's messages leaves the other's alone. An unscoped
    store without a user cannot tell the two apart and says so."""
    users = [ledger.users.create(external_id=name) for name in ("alice", "bob")]
    scoped = [ChatledgerChatStore(ledger.as_user(user.id)) for user in users]
    acting = [ChatledgerChatStore(ledger, user_id=user.id) for user in users]
    scoped[0].add_message("support", SAMPLES[0])
    acting[1].add_message("support", SAMPLES[1])
    assert scoped[0].get_messages("support") == acting[0].get_messages("support") == [SAMPLES[0]]
    assert scoped[1].get_messages("support") == acting[1].get_messages("support") == [SAMPLES[1]]
    scoped[1].set_messages("support", [SAMPLES[2]])
    assert acting[0].get_messages("support") == [SAMPLES[0]]
    assert acting[1].get_messages("support") == [SAMPLES[2]]
    assert acting[0].delete_last_message("support") == SAMPLES[0]
    assert scoped[1].get_messages("support") == [SAMPLES[2]]
    assert acting[0].get_keys() == acting[1].get_keys() == ["support"]
    with pytest.raises(ValidationError, match="several users"):
        ChatledgerChatStore(ledger).get_messages("support")


def test_chat_memory_buffer(ledger):
    user = ledger.users.create(external_id="ada")
    store = ChatledgerChatStore(ledger, user_id=user.id)
    memory = ChatMemoryBuffer.from_defaults(
        chat_store=store, chat_store_key="support-7", token_limit=50
    )
    for i in range(30):
        memory.put(ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"message {i}"))
    assert len(memory.get_all()) == 30
    window = memory.get()
    assert 0 < len(window) < 30
    assert window[-1].content == "message 29"
    # A fresh process (new store, new memory) sees the same history.
    again = ChatMemoryBuffer.from_defaults(
        chat_store=ChatledgerChatStore(ledger), chat_store_key="support-7"
    )
    assert again.get_all() == memory.get_all()
    memory.reset()
    assert memory.get_all() == []
    assert again.get_all() == []


def test_async_store_on_an_async_ledger(database_url):
    async def main() -> None:
        async with AsyncLedger(database_url) as ledger:
            user = await ledger.users.create(external_id="ada")
            store = ChatledgerChatStore(ledger, user_id=user.id)
            memory = ChatMemoryBuffer.from_defaults(chat_store=store, chat_store_key="k")
            await memory.aput(SAMPLES[2])
            await memory.aput(SAMPLES[3])
            assert await memory.aget_all() == SAMPLES[2:4]
            assert await store.aget_keys() == ["k"]
            assert await store.adelete_message("k", 0) == SAMPLES[2]
            assert await store.adelete_last_message("k") == SAMPLES[3]
            await store.aset_messages("k", SAMPLES[:2])
            assert await store.aget_messages("k") == SAMPLES[:2]
            assert await store.adelete_messages("k") == SAMPLES[:2]
            await store.async_add_message("k", SAMPLES[6])
            assert await store.aget_messages("k") == [SAMPLES[6]]
            with pytest.raises(Exception, match="event loop"):
                store.get_messages("k")

    asyncio.run(main())
