"""chatledger's two surfaces doing the benchmark's operations, with full semantics: every append
bumps the conversation's counter and takes the new count as ``seq``, in one transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any, cast

from chatledger import AsyncLedger, Ledger
from chatledger.records import Role

from .data import Msg
from .databases import Scratch

__all__ = ["ChatledgerAsync", "ChatledgerSync"]


def _usage(msg: Msg) -> dict[str, Any]:
    if msg.model is None:
        return {}
    return {
        "model": msg.model,
        "input_tokens": msg.input_tokens,
        "output_tokens": msg.output_tokens,
        "cost": msg.cost,
        "latency_ms": msg.latency_ms,
    }


class ChatledgerSync:
    """``Ledger`` on a scratch database (opening it creates the schema)."""

    system = "chatledger"
    surface = "sync"

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch
        self.ledger = Ledger(scratch.url_string)
        self.ledger.open()

    def user(self, external_id: str) -> uuid.UUID:
        return self.ledger.users.get_or_create(external_id).id

    def append(self, conversation_id: uuid.UUID, msg: Msg) -> int:
        stored = self.ledger.messages.append(
            conversation_id, cast("Role", msg.role), msg.content, **_usage(msg)
        )
        return stored.seq

    def last(self, conversation_id: uuid.UUID) -> Sequence[Any]:
        return self.ledger.messages.last(conversation_id, 20)

    def sidebar(self, owner_id: uuid.UUID) -> Sequence[Any]:
        return self.ledger.conversations.list(owner_id, limit=20).items

    def bulk(self, conversation_id: uuid.UUID, batch: Sequence[dict[str, Any]]) -> None:
        self.ledger.messages.append_many(conversation_id, batch)

    def close(self) -> None:
        self.ledger.close()


class ChatledgerAsync:
    """``AsyncLedger`` on a scratch database, driven on its own event loop."""

    system = "chatledger"
    surface = "async"

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch
        self.loop = asyncio.new_event_loop()
        self.ledger = AsyncLedger(scratch.url_string)
        self.loop.run_until_complete(self.ledger.open())

    async def append(self, conversation_id: uuid.UUID, msg: Msg) -> int:
        stored = await self.ledger.messages.append(
            conversation_id, cast("Role", msg.role), msg.content, **_usage(msg)
        )
        return stored.seq

    async def last(self, conversation_id: uuid.UUID) -> Sequence[Any]:
        return await self.ledger.messages.last(conversation_id, 20)

    async def sidebar(self, owner_id: uuid.UUID) -> Sequence[Any]:
        return (await self.ledger.conversations.list(owner_id, limit=20)).items

    async def bulk(self, conversation_id: uuid.UUID, batch: Sequence[dict[str, Any]]) -> None:
        await self.ledger.messages.append_many(conversation_id, batch)

    def close(self) -> None:
        self.loop.run_until_complete(self.ledger.close())
        self.loop.close()
