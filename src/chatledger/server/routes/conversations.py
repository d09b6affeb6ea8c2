"""Conversations, and the messages of a conversation (paged, and appended idempotently)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response

from ...records import Conversation, ConversationStatus, Message, Role
from ..auth import Caller
from ..errors import ERROR_RESPONSES
from ..idempotency import REPLAYED, idempotent
from ..models import (
    NOT_BLANK,
    ConversationCreate,
    ConversationUpdate,
    MessageCreate,
    PageOut,
    page_out,
)
from ..settings import MAX_PAGE
from ._params import After, Before, IncludeHidden, Limit, Order

__all__ = ["router"]

router = APIRouter(tags=["conversations"], responses={409: ERROR_RESPONSES[409]})


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=NOT_BLANK,
        description="Makes a retried append safe: the same key and body replay the first "
        "response; another body is a 422; while the first is running, a 409.",
    ),
]


@router.post("/conversations", status_code=201)
async def create_conversation(body: ConversationCreate, caller: Caller) -> Conversation:
    """Start a conversation of the caller (an admin key may give another ``user_id``)."""
    owner = caller.user_id(body.user_id)
    return await caller.store.conversations.create(
        owner, title=body.title, intent=body.intent, metadata=body.metadata
    )


@router.get("/conversations")
async def list_conversations(
    caller: Caller,
    user_id: uuid.UUID | None = None,
    status: Annotated[list[ConversationStatus] | None, Query()] = None,
    limit: Limit = 20,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
) -> PageOut[Conversation]:
    """A page of the caller's conversations (an admin key may give ``user_id``) by last
    activity, newest first by default. Without ``status``, all but the deleted ones."""
    page = await caller.store.conversations.list(
        caller.user_id(user_id),
        status=status or None,
        limit=limit,
        after=after,
        before=before,
        order=order,
    )
    return PageOut[Conversation].model_validate(page_out(page))


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: uuid.UUID, caller: Caller) -> Conversation:
    """One conversation, whatever its status."""
    return await caller.store.conversations.get(conversation_id)


@router.patch("/conversations/{conversation_id}")
async def update_conversation(
    conversation_id: uuid.UUID, body: ConversationUpdate, caller: Caller
) -> Conversation:
    """Change the title, intent or metadata; a field left out is kept, ``null`` clears it."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    return await caller.store.conversations.update(conversation_id, **changes)


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: uuid.UUID, caller: Caller) -> Response:
    """Delete the conversation and its messages for good (afterwards it is a 404). To hide
    it restorably instead, use ``POST .../soft-delete``."""
    await caller.store.conversations.delete(conversation_id, hard=True)
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/soft-delete")
async def soft_delete_conversation(conversation_id: uuid.UUID, caller: Caller) -> Conversation:
    """Mark the conversation ``deleted``: hidden from listings (unless asked for by status),
    kept with its messages, and restorable with ``POST .../restore``."""
    await caller.store.conversations.delete(conversation_id)
    return await caller.store.conversations.get(conversation_id)


async def _transition(caller: Caller, conversation_id: uuid.UUID, action: str) -> Conversation:
    conversations = caller.store.conversations
    step = {
        "archive": conversations.archive,
        "unarchive": conversations.unarchive,
        "close": conversations.close,
        "restore": conversations.restore,
    }[action]
    return await step(conversation_id)


@router.post("/conversations/{conversation_id}/archive")
async def archive_conversation(conversation_id: uuid.UUID, caller: Caller) -> Conversation:
    """Archive an active or closed conversation (409 from another state)."""
    return await _transition(caller, conversation_id, "archive")


@router.post("/conversations/{conversation_id}/unarchive")
async def unarchive_conversation(conversation_id: uuid.UUID, caller: Caller) -> Conversation:
    """Make an archived conversation active again."""
    return await _transition(caller, conversation_id, "unarchive")


@router.post("/conversations/{conversation_id}/close")
async def close_conversation(conversation_id: uuid.UUID, caller: Caller) -> Conversation:
    """Close a conversation: no more messages can be appended."""
    return await _transition(caller, conversation_id, "close")


@router.post("/conversations/{conversation_id}/restore")
async def restore_conversation(conversation_id: uuid.UUID, caller: Caller) -> Conversation:
    """Bring a soft-deleted conversation back as active."""
    return await _transition(caller, conversation_id, "restore")


@router.get("/conversations/{conversation_id}/messages")
async def list_messages(
    conversation_id: uuid.UUID,
    caller: Caller,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "asc",
    role: Role | None = None,
    include_hidden: IncludeHidden = False,
) -> PageOut[Message]:
    """A page of the conversation's messages in ``seq`` order (oldest first by default)."""
    page = await caller.store.messages.list(
        conversation_id,
        limit=limit,
        after=after,
        before=before,
        order=order,
        role=role,
        include_hidden=include_hidden,
    )
    return PageOut[Message].model_validate(page_out(page))


@router.get("/conversations/{conversation_id}/messages/last")
async def last_messages(
    conversation_id: uuid.UUID,
    caller: Caller,
    n: Annotated[int, Query(ge=1, le=MAX_PAGE, description="How many, 1 to 100.")] = 20,
    role: Role | None = None,
    include_hidden: IncludeHidden = False,
) -> list[Message]:
    """The last ``n`` messages (of ``role``) of the active path, oldest first: the context
    for the next model call."""
    return await caller.store.messages.last(
        conversation_id, n, role=role, include_hidden=include_hidden
    )


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    response_model=Message,
    responses={
        201: {
            "headers": {
                REPLAYED: {
                    "description": "`true` when this is the stored response of an earlier "
                    "request with the same Idempotency-Key.",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            }
        }
    },
)
async def append_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    caller: Caller,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Append a message: it gets the conversation's next ``seq`` and the counters move in the
    same transaction. See ``Idempotency-Key`` for safe retries."""

    async def work(key: str | None) -> Message:
        return await caller.store.messages.append(
            conversation_id,
            body.role,
            body.content,
            **body.message_fields(),
            idempotency_key=key,
            charge=body.charge,
            charge_reason=body.charge_reason,
            parent_id=body.parent_id,
            tool_calls=body.tool_call_list(),
            tool_call_id=body.tool_call_id,
            tool_status=body.tool_status,
            tool_latency_ms=body.tool_latency_ms,
        )

    return await idempotent(request, caller, idempotency_key, 201, work)
