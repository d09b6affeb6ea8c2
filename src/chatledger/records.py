"""The plain, immutable objects chatledger operations return.

They are frozen dataclasses, detached from any database session: safe to cache, pass between
threads, or serialise (``dataclasses.asdict``, or Pydantic's ``TypeAdapter`` for JSON).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeAlias, TypeVar

__all__ = ["Conversation", "ConversationStatus", "Message", "Order", "Page", "Role", "User"]

#: Who wrote a message.
Role: TypeAlias = Literal["user", "assistant", "system", "tool"]
#: The life cycle of a conversation. ``deleted`` is a soft delete: hidden from default listings.
ConversationStatus: TypeAlias = Literal["active", "archived", "closed", "deleted"]
#: Sort order of a listing: ``"asc"`` oldest first, ``"desc"`` newest first.
Order: TypeAlias = Literal["asc", "desc"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class User:
    """A person or agent that owns conversations."""

    id: uuid.UUID
    external_id: str | None
    email: str | None
    username: str | None
    display_name: str | None
    role: str
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Conversation:
    """A chat thread and its counters."""

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str | None
    intent: str | None
    status: ConversationStatus
    message_count: int
    last_message_at: datetime | None
    last_activity_at: datetime
    archived_at: datetime | None
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation. ``seq`` numbers a conversation's messages 1, 2, 3, …
    without gaps, in the order they were appended."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    role: Role
    content: str
    intent: str | None
    metadata: dict[str, Any] | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost: Decimal | None
    latency_ms: int | None
    request_id: str | None
    idempotency_key: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing.

    Pass ``after=page.last_cursor`` for the next page in the same order, or
    ``before=page.first_cursor`` for the previous one. ``has_more`` says whether more items lie
    beyond this page in the direction it was read.
    """

    items: list[T]
    has_more: bool
    first_cursor: str | None
    last_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
