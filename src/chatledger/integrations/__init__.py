"""Integrations with LLM frameworks: chatledger as their store.

Each lives in its own module and imports its framework only when that module is imported; this
package imports none of them, so ``import chatledger.integrations`` costs nothing. A missing
framework raises :class:`~chatledger.MissingDependencyError` naming the extra to install.

- :mod:`chatledger.integrations.langchain` (``chatledger[langchain]``):
  ``ChatledgerChatMessageHistory``, a LangChain ``BaseChatMessageHistory`` on a conversation.
- :mod:`chatledger.integrations.langgraph` (``chatledger[langgraph]``): ``ChatledgerSaver``, a
  ``BaseCheckpointSaver`` in chatledger's database that also logs the thread's messages in the
  same transaction, and ``checkpointer_for``, the official saver for a chatledger configuration.
- :mod:`chatledger.integrations.llamaindex` (``chatledger[llamaindex]``):
  ``ChatledgerChatStore``, a LlamaIndex ``BaseChatStore`` keyed by conversation.

Every class takes a :class:`~chatledger.Ledger` (its synchronous methods run directly, its
asynchronous ones on a worker thread) or an :class:`~chatledger.AsyncLedger` (its asynchronous
methods run natively; its synchronous ones only from a thread other than the event loop's, see
``docs/integrations/``), or a user scope of either (``ledger.as_user(id)``), which confines the
integration to that user's conversations.
"""

from __future__ import annotations

__all__: list[str] = []
