"""Streaming replies: begin, flush deltas, finish, read from an offset, sweep dead writers.

A reply begins as an append in state ``streaming`` (its ``seq`` and place in the tree are
taken at once; its content is empty) plus a ``message_streams`` row. Each flush is one
``stream_chunks`` row holding a batch of deltas at a character offset, and renews the
writer's lease. The finish writes the whole text into the message row (the one moment its
content changes, so a full-text index kept with appends follows it there), sets the final
state and usage, deletes the chunks and settles the token hold: one transaction.

Every write carries an identity drawn by the caller before the first attempt, so a retry
learns whether a failed attempt committed: the begin a message id, a flush its chunk index,
the finish the state it asks for.

A reader reads the chunks first, then the message: a finish that commits between the two is
seen by the second read (the content is complete there), so no text is ever missed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, Integer, bindparam, delete, func, insert, select, update

from .._backends import backend_of
from .._run.wakeups import CHANNEL
from .._schema import conversations, message_streams, messages, stream_chunks
from .._types import UTCDateTime
from ..errors import ConflictError, ValidationError
from ..records import Message, Stream, StreamEvent
from . import _once, tokens
from . import messages as _messages
from . import tool_calls as _tools
from . import trees as _trees
from ._common import from_row, record_columns, utcnow

__all__ = [
    "ENDINGS",
    "SWEPT",
    "Ending",
    "begin",
    "begun",
    "delta",
    "finish",
    "finished",
    "flushed",
    "get",
    "read",
    "sweep",
]

#: The states a finish may set.
ENDINGS: Final = ("completed", "incomplete", "failed")
#: The reason the sweep gives a reply whose writer's lease ran out.
SWEPT: Final = "the writer stopped (lease expired)"

_COLUMNS: Final = record_columns(message_streams, Stream)


def _stream_query(scoped: bool, lock: bool) -> Any:
    """The stream row of ``b_id`` (in a conversation of ``b_owner`` when scoped)."""
    s, c = message_streams.c, conversations.c
    query = select(*_COLUMNS).where(s.message_id == bindparam("b_id"))
    if scoped:
        owned = select(c.id).where(c.owner_id == bindparam("b_owner"))
        query = query.where(s.conversation_id.in_(owned))
    return query.with_for_update() if lock else query


# Built once: building a statement costs more than running it on SQLite.
_STREAM: Final = {
    (scoped, lock): _stream_query(scoped, lock)
    for scoped in (True, False)
    for lock in (True, False)
}
_REPLAY: Final = select(messages.c.id).where(
    messages.c.id == bindparam("b_id"), messages.c.conversation_id == bindparam("b_cid")
)
_INSERT_STREAM: Final = insert(message_streams)
_PAYER: Final = select(conversations.c.owner_id).where(conversations.c.id == bindparam("b_cid"))
_CHUNK_TEXT: Final = select(stream_chunks.c.text).where(
    stream_chunks.c.message_id == bindparam("b_id"), stream_chunks.c.idx == bindparam("b_idx")
)
_TEXT: Final = (
    select(stream_chunks.c.text)
    .where(stream_chunks.c.message_id == bindparam("b_id"))
    .order_by(stream_chunks.c.idx)
)
_INSERT_CHUNK: Final = insert(stream_chunks)
_RENEW: Final = (
    update(message_streams)
    .where(message_streams.c.message_id == bindparam("b_id"))
    .values(
        chunk_count=message_streams.c.chunk_count + 1,
        char_count=message_streams.c.char_count + bindparam("b_len", type_=Integer()),
        lease_expires_at=bindparam("b_lease", type_=UTCDateTime()),
        updated_at=bindparam("b_now", type_=UTCDateTime()),
    )
)
_FINAL_FIELDS: Final = (
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost",
    "latency_ms",
)


def _finalise() -> Any:
    """The finish's write of the message row: the text, the state, and each usage field
    given (a ``NULL`` parameter keeps the value the begin stored)."""
    m = messages.c
    usage = {
        name: func.coalesce(bindparam(f"b_{name}", type_=m[name].type), m[name])
        for name in _FINAL_FIELDS
    }
    return (
        update(messages)
        .where(m.id == bindparam("b_id"))
        .values(
            content=bindparam("b_content", type_=m.content.type),
            status=bindparam("b_status"),
            status_reason=bindparam("b_reason", type_=m.status_reason.type),
            **usage,
        )
    )


_FINALISE: Final = _finalise()
_DROP_CHUNKS: Final = delete(stream_chunks).where(stream_chunks.c.message_id == bindparam("b_id"))
_RETIRE: Final = (
    update(message_streams)
    .where(message_streams.c.message_id == bindparam("b_id"))
    .values(
        char_count=bindparam("b_chars", type_=Integer()),
        lease_expires_at=None,
        hold=None,
        updated_at=bindparam("b_now", type_=UTCDateTime()),
        finished_at=bindparam("b_now", type_=UTCDateTime()),
    )
)


def _stream_params(owner: uuid.UUID | None, message_id: uuid.UUID) -> dict[str, Any]:
    if owner is None:
        return {"b_id": message_id}
    return {"b_id": message_id, "b_owner": owner}


@dataclass(frozen=True, slots=True)
class Ending:
    """A validated finish: the final state, the text still buffered, the final usage."""

    status: str
    reason: str | None
    tail: str
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    reasoning_tokens: int | None
    cost: Decimal | None
    latency_ms: int | None
    #: The real amount to debit (settling the hold), and the ledger reason.
    charge: int | None
    #: The tool calls the completed reply asks for (docs/tools.md).
    tool_calls: tuple[_tools.NewToolCall, ...] = ()


def _message(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> Message:
    return _messages.get(conn, owner, message_id)


def begin(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    new: _messages.NewMessage,
    parent_id: uuid.UUID | None,
    lease_seconds: int,
    hold: tuple[int, str] | None,
) -> Message:
    """Append ``new`` (state ``streaming``, id drawn by the caller) and open its stream;
    with ``hold=(amount, reason)``, reserve that much of the owner's balance. A retry of a
    begin that committed returns its message."""
    assert new.id is not None  # drawn by the facade, once per call
    replay = conn.execute(_REPLAY, {"b_id": new.id, "b_cid": conversation_id}).first()
    if replay is not None:
        return _message(conn, owner, new.id)
    if parent_id is None:
        message = _messages.append(conn, owner, conversation_id, new)
    else:
        message = _trees.append_under(conn, owner, conversation_id, new, parent_id)
    if message.id != new.id:
        # The idempotency key was used before: that message is the answer, nothing begins.
        return message
    now = utcnow()
    amount, reason = hold if hold is not None else (None, None)
    if amount is not None:
        tokens.hold_in(conn, _payer(conn, conversation_id), amount)
    conn.execute(
        _INSERT_STREAM,
        {
            "message_id": message.id,
            "conversation_id": conversation_id,
            "chunk_count": 0,
            "char_count": 0,
            "lease_seconds": lease_seconds,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "hold": amount,
            "charge_reason": reason,
            "started_at": now,
            "updated_at": now,
            "finished_at": None,
        },
    )
    return message


def _payer(conn: Connection, conversation_id: uuid.UUID) -> uuid.UUID:
    c = conversations.c
    payer: uuid.UUID = conn.execute(select(c.owner_id).where(c.id == conversation_id)).scalar_one()
    return payer


def _locked(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> Stream:
    """The message's stream, locked; NotFoundError for an unknown (or not owner's) message,
    ConflictError for a message that was not begun as a stream."""
    return _stream(conn, owner, message_id, lock=True)


def _stream(
    conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID, *, lock: bool
) -> Stream:
    statement = _STREAM[owner is not None, lock]
    row = conn.execute(statement, _stream_params(owner, message_id)).first()
    if row is None:
        _message(conn, owner, message_id)  # NotFoundError unless it is a visible message
        raise ConflictError("the message was not begun as a stream", field="message_id")
    return from_row(Stream, row)


def _owned_conversations(owner: uuid.UUID) -> Any:
    c = conversations.c
    return select(c.id).where(c.owner_id == owner)


def get(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> Stream:
    """The stream of a message begun streaming."""
    return _stream(conn, owner, message_id, lock=False)


def _finished_conflict(conn: Connection, owner: uuid.UUID | None, stream: Stream) -> None:
    status = _message(conn, owner, stream.message_id).status
    raise ConflictError(f"the reply is already {status}", field="status")


def delta(
    conn: Connection,
    owner: uuid.UUID | None,
    message_id: uuid.UUID,
    index: int,
    text: str,
    max_content_chars: int,
) -> Stream:
    """Flush chunk ``index`` (the next one: ``chunk_count``) of a streaming reply and renew
    its lease. A chunk already stored with the same text is a retry: nothing is written."""
    stream = _locked(conn, owner, message_id)
    if stream.finished_at is not None:
        _finished_conflict(conn, owner, stream)
    if index < stream.chunk_count:
        stored = conn.execute(_CHUNK_TEXT, {"b_id": message_id, "b_idx": index}).scalar()
        if stored != text:
            raise ConflictError(f"chunk {index} was stored with another text", field="index")
        return stream
    if index > stream.chunk_count:
        raise ConflictError(
            f"chunk {index} would leave a gap: the next chunk is {stream.chunk_count}",
            field="index",
        )
    if stream.char_count + len(text) > max_content_chars:
        raise ValidationError(
            "text",
            f"the reply would exceed {max_content_chars:,} characters",
            limit=max_content_chars,
        )
    now = utcnow()
    conn.execute(
        _INSERT_CHUNK,
        {
            "message_id": message_id,
            "idx": index,
            "start_char": stream.char_count,
            "text": text,
            "created_at": now,
        },
    )
    lease = now + timedelta(seconds=stream.lease_seconds)
    params = {"b_id": message_id, "b_len": len(text), "b_lease": lease, "b_now": now}
    conn.execute(_RENEW, params)
    _wake(conn, message_id)
    return Stream(
        message_id=stream.message_id,
        conversation_id=stream.conversation_id,
        chunk_count=stream.chunk_count + 1,
        char_count=stream.char_count + len(text),
        lease_seconds=stream.lease_seconds,
        lease_expires_at=lease,
        hold=stream.hold,
        charge_reason=stream.charge_reason,
        started_at=stream.started_at,
        updated_at=now,
        finished_at=None,
    )


def _text(conn: Connection, message_id: uuid.UUID) -> str:
    return "".join(conn.execute(_TEXT, {"b_id": message_id}).scalars())


def finish(
    conn: Connection,
    owner: uuid.UUID | None,
    message_id: uuid.UUID,
    ending: Ending,
    max_content_chars: int,
) -> Message:
    """End a streaming reply: its whole text (the flushed chunks, then ``ending.tail``) and
    final usage go into the message row with the final state, the chunks are deleted, the
    hold is released and the real charge debited, in this one transaction. A finish that
    committed already, asking for the same state, returns the message (a retry)."""
    stream = _locked(conn, owner, message_id)
    if stream.finished_at is not None:
        message = _message(conn, owner, message_id)
        if message.status == ending.status:
            return message
        raise ConflictError(f"the reply is already {message.status}", field="status")
    text = _text(conn, message_id) + ending.tail
    if len(text) > max_content_chars:
        raise ValidationError(
            "text",
            f"the reply would exceed {max_content_chars:,} characters",
            limit=max_content_chars,
        )
    _close(conn, stream, text, ending)
    message = _message(conn, owner, message_id)
    if ending.tool_calls:
        _tools.record(conn, message, ending.tool_calls, None)
    return message


def _close(conn: Connection, stream: Stream, text: str, ending: Ending) -> None:
    """Write the final message row, settle the hold, retire the stream (locked already)."""
    if stream.hold is not None or ending.charge is not None:
        payer = _payer(conn, stream.conversation_id)
        if stream.hold is not None:
            tokens.release_in(conn, payer, stream.hold)
        if ending.charge is not None:
            reason = stream.charge_reason or "message"
            tokens.debit_in(conn, payer, ending.charge, reason, stream.message_id)
    params: dict[str, Any] = {
        "b_id": stream.message_id,
        "b_content": text,
        "b_status": ending.status,
        "b_reason": ending.reason,
    }
    for name in _FINAL_FIELDS:
        params[f"b_{name}"] = getattr(ending, name)
    conn.execute(_FINALISE, params)
    conn.execute(_DROP_CHUNKS, {"b_id": stream.message_id})
    conn.execute(_RETIRE, {"b_id": stream.message_id, "b_chars": len(text), "b_now": utcnow()})
    _wake(conn, stream.message_id)


def _wake(conn: Connection, message_id: uuid.UUID) -> None:
    """Wake the followers of the reply in other processes when this transaction commits
    (PostgreSQL ``NOTIFY``; elsewhere they poll: ``_run/wakeups.py``)."""
    statement = backend_of(conn).wakeup()
    if statement is not None:
        conn.execute(statement, {"b_channel": CHANNEL, "b_payload": str(message_id)})


def read(
    conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID, after: int
) -> StreamEvent:
    """The reply's text from character ``after`` on, as far as it has been flushed (all of
    it once finished), and its state."""
    k = stream_chunks.c
    first = (
        select(func.coalesce(func.max(k.idx), 0))
        .where(k.message_id == message_id, k.start_char <= after)
        .scalar_subquery()
    )
    chunks = conn.execute(
        select(k.start_char, k.text)
        .where(k.message_id == message_id, k.idx >= first)
        .order_by(k.idx)
    ).all()
    # Then the message: a finish committed since the chunk read shows here, complete.
    message = _message(conn, owner, message_id)
    if message.status != "streaming":
        start = min(after, len(message.content))
        text = message.content[start:]
    else:
        start = after
        flushed = "".join(chunk for _, chunk in chunks)
        # The first chunk read starts at or before ``after`` (chunk 0 starts at 0).
        text = flushed[after - chunks[0][0] :] if chunks else ""
    return StreamEvent(
        message_id=message_id,
        start=start,
        end=start + len(text),
        text=text,
        status=message.status,
        status_reason=message.status_reason,
    )


def sweep(conn: Connection, owner: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
    """Close as ``incomplete`` the streams whose writer's lease ran out, keeping what was
    flushed and releasing their holds. Rows another sweeper (or a live writer) has locked
    are skipped (``SKIP LOCKED``; SQLite serialises writers anyway), and each lease is
    re-checked under the lock, so sweepers in several processes close each stream once."""
    now = utcnow()
    s = message_streams.c
    query = (
        select(*_COLUMNS)
        .where(s.lease_expires_at < now)
        .order_by(s.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if owner is not None:
        query = query.where(s.conversation_id.in_(_owned_conversations(owner)))
    closed: list[uuid.UUID] = []
    for row in conn.execute(query).all():
        stream = from_row(Stream, row)
        text = _text(conn, stream.message_id)
        _close(conn, stream, text, _SWEPT)
        closed.append(stream.message_id)
    return closed


_SWEPT: Final = Ending(
    status="incomplete",
    reason=SWEPT,
    tail="",
    model=None,
    input_tokens=None,
    output_tokens=None,
    cached_input_tokens=None,
    reasoning_tokens=None,
    cost=None,
    latency_ms=None,
    charge=None,
)


# -- settling (``_ops/_once.py``): what an attempt whose outcome is unknown left behind --------


def _begun(
    conn: Connection, drawn: list[Any], owner: uuid.UUID | None, message_id: uuid.UUID
) -> Message | _once.NotWritten:
    replay = conn.execute(
        select(message_streams.c.message_id).where(message_streams.c.message_id == message_id)
    ).first()
    return _once.NOT_WRITTEN if replay is None else _message(conn, owner, message_id)


def begun(owner: uuid.UUID | None, message_id: uuid.UUID) -> _once.Settle[Message]:
    """A begin committed when the stream of its message (id drawn by the caller) exists."""
    return _once.Settle("streaming reply", _begun, (owner, message_id), subject=message_id)


def _flushed(
    conn: Connection,
    drawn: list[Any],
    owner: uuid.UUID | None,
    message_id: uuid.UUID,
    index: int,
    text: str,
) -> Stream | _once.NotWritten:
    stream = _stream(conn, owner, message_id, lock=False)
    if index >= stream.chunk_count:
        return _once.NOT_WRITTEN
    if stream.finished_at is None:
        stored = conn.execute(_CHUNK_TEXT, {"b_id": message_id, "b_idx": index}).scalar()
        if stored != text:
            return _once.NOT_WRITTEN  # the re-run reports the conflict
    return stream


def flushed(
    owner: uuid.UUID | None, message_id: uuid.UUID, index: int, text: str
) -> _once.Settle[Stream]:
    """A flush committed when its chunk ``index`` is stored with its text (or the reply was
    finished after it)."""
    return _once.Settle(
        "stream chunk", _flushed, (owner, message_id, index, text), subject=message_id
    )


def _finished(
    conn: Connection,
    drawn: list[Any],
    owner: uuid.UUID | None,
    message_id: uuid.UUID,
    status: str,
) -> Message | _once.NotWritten:
    stream = _stream(conn, owner, message_id, lock=False)
    if stream.finished_at is None:
        return _once.NOT_WRITTEN
    message = _message(conn, owner, message_id)
    return message if message.status == status else _once.NOT_WRITTEN


def finished(owner: uuid.UUID | None, message_id: uuid.UUID, status: str) -> _once.Settle[Message]:
    """A finish committed when the reply is finished in the state it asked for."""
    return _once.Settle(
        "streaming reply", _finished, (owner, message_id, status), subject=message_id
    )
