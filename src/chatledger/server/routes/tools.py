"""Tool calls: listed by tool, state and conversation, counted per tool, read by message and
by id, and answered (docs/tools.md). Calls are created with the assistant message that asks
for them (``tool_calls`` in ``POST .../messages``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from ..._schema import TOOL_CALL_ID_MAX, TOOL_NAME_MAX
from ...records import Message, ToolCall, ToolCallStatus, ToolStats
from ..auth import Caller
from ..errors import ERROR_RESPONSES
from ..idempotency import idempotent
from ..models import NOT_BLANK, PageOut, ToolResultIn, page_out
from ._params import After, Before, Limit, Order, Since, Until
from .conversations import IdempotencyKey

__all__ = ["router"]

router = APIRouter(tags=["tool calls"], responses={409: ERROR_RESPONSES[409]})


CallId = Annotated[
    str,
    Path(min_length=1, max_length=TOOL_CALL_ID_MAX, pattern=NOT_BLANK, description="The call id."),
]
ToolNameQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=TOOL_NAME_MAX, pattern=NOT_BLANK, description="A tool name."),
]


@router.get("/tool-calls")
async def list_tool_calls(
    caller: Caller,
    conversation_id: uuid.UUID | None = None,
    name: ToolNameQuery = None,
    status: Annotated[
        ToolCallStatus | None,
        Query(description="`error`: the failures; `pending`: not answered yet."),
    ] = None,
    since: Since = None,
    until: Until = None,
    order: Order = "asc",
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
) -> PageOut[ToolCall]:
    """A page of tool calls in the order they were asked (of the caller's conversations; an
    admin key: of all), by conversation, tool name, state and time."""
    page = await caller.store.tools.list(
        conversation_id=conversation_id,
        name=name,
        status=status,
        since=since,
        until=until,
        order=order,
        limit=limit,
        after=after,
        before=before,
    )
    return PageOut[ToolCall].model_validate(page_out(page))


@router.get("/tool-calls/stats")
async def tool_stats(
    caller: Caller,
    conversation_id: uuid.UUID | None = None,
    name: ToolNameQuery = None,
    since: Since = None,
    until: Until = None,
    order: Order = "asc",
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
) -> PageOut[ToolStats]:
    """Calls per tool (a page by name): how many, succeeded, failed, pending, and the
    average and longest latency of the answered ones."""
    page = await caller.store.tools.stats(
        conversation_id=conversation_id,
        name=name,
        since=since,
        until=until,
        order=order,
        limit=limit,
        after=after,
        before=before,
    )
    return PageOut[ToolStats].model_validate(page_out(page))


@router.get("/messages/{message_id}/tool-calls")
async def message_tool_calls(message_id: uuid.UUID, caller: Caller) -> list[ToolCall]:
    """The calls an assistant message asked for, in order, each with its state."""
    return await caller.store.tools.of_message(message_id)


@router.get("/conversations/{conversation_id}/tool-calls/pending")
async def pending_tool_calls(conversation_id: uuid.UUID, caller: Caller) -> list[ToolCall]:
    """The calls on the active path nothing answered yet: what must run before the next
    model call."""
    return await caller.store.tools.pending(conversation_id)


@router.get("/conversations/{conversation_id}/tool-calls/{call_id}")
async def get_tool_call(conversation_id: uuid.UUID, call_id: CallId, caller: Caller) -> ToolCall:
    """One call of the conversation, with its answer once there is one."""
    return await caller.store.tools.get(conversation_id, call_id)


@router.post(
    "/conversations/{conversation_id}/tool-calls/{call_id}/result",
    status_code=201,
    response_model=Message,
)
async def answer_tool_call(
    conversation_id: uuid.UUID,
    call_id: CallId,
    body: ToolResultIn,
    caller: Caller,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Answer a call: append its result as a ``tool`` message (404 for an unknown call, 409
    when it is answered already or was asked on another branch; nothing written then). See
    ``Idempotency-Key`` for safe retries."""

    async def work(key: str | None) -> Message:
        return await caller.store.messages.append(
            conversation_id,
            "tool",
            body.content,
            metadata=body.metadata,
            idempotency_key=key,
            parent_id=body.parent_id,
            tool_call_id=call_id,
            tool_status=body.status,
            tool_latency_ms=body.latency_ms,
        )

    return await idempotent(request, caller, idempotency_key, 201, work)
