"""Streamed replies over HTTP (docs/streaming.md): begin, deltas, finish, abort, the stream's
state, one read from an offset, and Server-Sent Events that follow a reply as it is written
and resume from ``Last-Event-ID``. The store is the source of truth: the writer and the
readers may be on different processes or hosts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter

from ...errors import ChatledgerError
from ...records import Message, Stream, StreamEvent
from ..auth import Admin, Caller, Principal
from ..errors import ERROR_RESPONSES, ErrorBody, from_library, request_id_of
from ..idempotency import REPLAYED, idempotent
from ..models import StreamAbort, StreamBegin, StreamDelta, StreamFinish
from ..settings import ServerSettings
from .conversations import IdempotencyKey

__all__ = ["EventStream", "router"]

router = APIRouter(tags=["streams"], responses={409: ERROR_RESPONSES[409]})

_MESSAGE: Final = TypeAdapter(Message)
_EVENT: Final = TypeAdapter(StreamEvent)
_OFFSET_MAX: Final = 2**31 - 1
#: The ``Last-Event-ID`` of the final event: the client has the whole reply.
DONE: Final = "done"

Offset = Annotated[
    int,
    Query(
        ge=0,
        le=_OFFSET_MAX,
        description="Start after this many characters of the reply (0: from the start; "
        "the library's `after`).",
    ),
]
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^(done|[0-9]{1,9})$",
        description="Sent by an EventSource when it reconnects: the `id` of the last event "
        "it received. A character offset resumes from there (it wins over `offset`); `done` "
        "for a finished reply is a 204, which tells an EventSource to stop reconnecting.",
    ),
]


def _event(name: str, data: str, event_id: dict[str, Any] | None) -> dict[str, Any]:
    """The schema of one event as an EventSource hands it over: its ``event`` name, its
    ``data`` (JSON of the component ``data`` names) and its ``id`` when it sets one."""
    properties: dict[str, Any] = {
        "event": {"const": name},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": f"#/components/schemas/{data}"},
        },
    }
    if event_id is not None:
        properties["id"] = event_id
    return {
        "type": "object",
        "required": ["event", "data", *(["id"] if event_id is not None else [])],
        "properties": properties,
    }


#: One event of ``GET /v1/messages/{id}/stream/events`` (OpenAPI 3.1 has no keyword for a
#: stream's items, so ``schema`` describes one event, as schemathesis and OpenAPI 3.2's
#: ``itemSchema`` read it). An ``error`` event sets no id (the last one still holds).
_EVENT_SCHEMA: Final[dict[str, Any]] = {
    "oneOf": [
        _event("delta", "StreamEvent", {"type": "string", "pattern": "^[0-9]+$"}),
        _event("done", "Message", {"const": DONE}),
        _event("error", "ErrorEnvelope", None),
    ]
}


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response (Server-Sent Events)."""

    media_type = "text/event-stream"


@router.post(
    "/conversations/{conversation_id}/streams",
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
async def begin_stream(
    conversation_id: uuid.UUID,
    body: StreamBegin,
    caller: Caller,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Begin a streamed assistant reply in state ``streaming``: it takes its ``seq`` and
    place in the tree at once, so readers see it coming. Send its text with
    ``POST /v1/messages/{id}/stream/deltas`` and end it with ``.../finish``; follow it with
    ``GET /v1/messages/{id}/stream/events``. See ``Idempotency-Key`` for safe retries."""

    async def work(key: str | None) -> Message:
        return await caller.store.streams.begin(
            conversation_id,
            model=body.model,
            intent=body.intent,
            metadata=body.metadata,
            request_id=body.request_id,
            idempotency_key=key,
            parent_id=body.parent_id,
            charge=body.charge,
            charge_reason=body.charge_reason,
            lease_seconds=body.lease_seconds,
        )

    return await idempotent(request, caller, idempotency_key, 201, work)


@router.post("/messages/{message_id}/stream/deltas")
async def add_delta(message_id: uuid.UUID, body: StreamDelta, caller: Caller) -> Stream:
    """Store chunk ``index`` (one flushed batch of deltas) of a streaming reply and renew
    its writer's lease; followers are woken. The same chunk sent again with the same text
    writes nothing (retry freely); a gap, another text for a stored chunk, or a finished
    reply is a 409 naming the field."""
    return await caller.store.streams.delta(message_id, body.index, body.text)


@router.post("/messages/{message_id}/stream/finish")
async def finish_stream(message_id: uuid.UUID, body: StreamFinish, caller: Caller) -> Message:
    """End a streamed reply: its whole text and final usage go into the message in one
    transaction, with the token hold settled. Retrying returns the finished message."""
    return await caller.store.streams.finish(
        message_id,
        text=body.text,
        status=body.status,
        reason=body.reason,
        model=body.model,
        input_tokens=body.input_tokens,
        output_tokens=body.output_tokens,
        cached_input_tokens=body.cached_input_tokens,
        reasoning_tokens=body.reasoning_tokens,
        cost=body.cost,
        latency_ms=body.latency_ms,
        charge=body.charge,
        tool_calls=body.tool_call_list(),
    )


@router.post("/messages/{message_id}/stream/abort")
async def abort_stream(message_id: uuid.UUID, body: StreamAbort, caller: Caller) -> Message:
    """End a streamed reply as ``incomplete`` (or ``failed``) with a reason, keeping what
    was written; its hold is released and nothing is charged."""
    return await caller.store.streams.abort(
        message_id, body.reason, failed=body.failed, text=body.text
    )


@router.get("/messages/{message_id}/stream")
async def get_stream(message_id: uuid.UUID, caller: Caller) -> Stream:
    """The stream of a reply begun streaming: chunks and characters flushed, the lease, the
    hold, and ``finished_at`` once it ended (409 for a message that was not streamed)."""
    return await caller.store.streams.get(message_id)


@router.get("/messages/{message_id}/stream/text")
async def read_stream(message_id: uuid.UUID, caller: Caller, offset: Offset = 0) -> StreamEvent:
    """The reply's text from character ``offset`` on, as far as it has been flushed (all of
    it once finished), with its state: one read. ``end`` is where the next read starts."""
    return await caller.store.streams.read(message_id, offset)


@router.post("/streams/sweep", responses={403: ERROR_RESPONSES[403]})
async def sweep_streams(caller: Admin) -> list[uuid.UUID]:
    """Close as ``incomplete`` the replies whose writer stopped (lease expired), keeping
    their text and releasing their holds; the ids closed (at most 100 per call). The server
    also sweeps in the background (``ServerSettings.sweep_interval``)."""
    return await caller.store.streams.sweep()


@router.get(
    "/messages/{message_id}/stream/events",
    response_class=Response,
    responses={
        200: {
            "description": "Server-Sent Events: `delta` events (data: the text from `start` "
            "to `end`, JSON; id: `end`), then one `done` event (data: the finished "
            "message, JSON; id: `done`). An `error` event (data: the error envelope) ends "
            "a response that failed after it started. Comments keep an idle response "
            "alive. The response ends after the `done` event, or after the server's "
            "maximum duration: reconnect with `Last-Event-ID`.",
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
        },
        204: {"description": "`Last-Event-ID: done` for a finished reply: nothing more."},
    },
)
async def follow_stream(
    message_id: uuid.UUID,
    caller: Caller,
    request: Request,
    offset: Offset = 0,
    last_event_id: LastEventId = None,
) -> Response:
    """Follow a reply as it is written, as Server-Sent Events (``Accept:
    text/event-stream``), from character ``offset`` (or from ``Last-Event-ID`` when an
    EventSource reconnects). Several readers may follow one reply; the writer may be any
    process. A reply that is already finished is sent whole at once. Errors before the
    first event (401, 404) are answered in the JSON envelope."""
    settings: ServerSettings = request.app.state.settings
    if last_event_id is not None and last_event_id != DONE:
        offset = int(last_event_id)
    store = caller.store
    first = await store.streams.read(message_id, offset)
    if last_event_id == DONE and first.done:
        return Response(status_code=204)
    final = await store.messages.get(message_id) if first.done else None
    return EventStream(
        _events(caller, request, first, final, settings),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _frame(event: str, data: str, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def _delta(event: StreamEvent) -> str:
    return _frame("delta", _EVENT.dump_json(event).decode(), str(event.end))


def _done(message: Message) -> str:
    return _frame("done", _MESSAGE.dump_json(message).decode(), DONE)


def _error(request: Request, exc: ChatledgerError, settings: ServerSettings) -> str:
    error = from_library(exc, settings.retry_after)
    body = ErrorBody(
        type=error.type,
        message=error.message,
        field=error.field,
        limit=error.limit,
        request_id=request_id_of(request),
    )
    return _frame("error", json.dumps({"error": body.model_dump()}))


async def _events(
    caller: Principal,
    request: Request,
    first: StreamEvent,
    final: Message | None,
    settings: ServerSettings,
) -> AsyncIterator[str]:
    """The events of one response: what the first read found, then every flush as it
    commits, the finished message last; a comment when nothing came for a heartbeat."""
    yield f"retry: {settings.stream_retry_ms}\n\n"
    if first.text:
        yield _delta(first)
    if final is not None:
        yield _done(final)
        return
    store = caller.store
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.stream_max_seconds
    events = store.streams.follow(
        first.message_id, first.end, poll_interval=settings.stream_poll_interval
    )
    pending: asyncio.Future[StreamEvent] | None = None
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return  # the client resumes from its Last-Event-ID
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            ready, _ = await asyncio.wait(
                {pending}, timeout=min(settings.stream_heartbeat, remaining)
            )
            if not ready:
                yield ": keep-alive\n\n"
                continue
            event = pending.result()
            pending = None
            if event.text:
                yield _delta(event)
            if event.done:
                yield _done(await store.messages.get(event.message_id))
                return
    except ChatledgerError as exc:
        yield _error(request, exc, settings)
    finally:
        await _stop(pending, events)


async def _stop(pending: asyncio.Future[Any] | None, events: AsyncIterator[StreamEvent]) -> None:
    """End the follow: a read or wait in flight is cancelled (its generator ends with it,
    leaving its wake-ups); else the generator, suspended, is closed. Nothing here waits, so
    it also completes when the response was cancelled (the client went away)."""
    if pending is not None and not pending.done():
        pending.cancel()
        return
    closer = getattr(events, "aclose", None)
    if closer is not None:
        await closer()
