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

from sqlalchemy import Connection, delete, func, insert, select, update

from .._schema import conversations, message_streams, messages, stream_chunks
from ..errors import ConflictError, ValidationError
from ..records import Message, Stream, StreamEvent
from . import messages as _messages
from . import tokens
from . import trees as _trees
from ._common import from_row, record_columns, utcnow

__all__ = [
    "ENDINGS",
    "SWEPT",
    "Ending",
    "begin",
    "delta",
    "finish",
    "get",
    "read",
    "sweep",
]

#: The states a finish may set.
ENDINGS: Final = ("completed", "incomplete", "failed")
#: The reason the sweep gives a reply whose writer's lease ran out.
SWEPT: Final = "the writer stopped (lease expired)"

_COLUMNS: Final = record_columns(message_streams, Stream)


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
    m = messages.c
    replay = conn.execute(
        select(m.id).where(m.id == new.id, m.conversation_id == conversation_id)
    ).first()
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
        insert(message_streams).values(
            message_id=message.id,
            conversation_id=conversation_id,
            chunk_count=0,
            char_count=0,
            lease_seconds=lease_seconds,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            hold=amount,
            charge_reason=reason,
            started_at=now,
            updated_at=now,
            finished_at=None,
        )
    )
    return message


def _payer(conn: Connection, conversation_id: uuid.UUID) -> uuid.UUID:
    c = conversations.c
    payer: uuid.UUID = conn.execute(select(c.owner_id).where(c.id == conversation_id)).scalar_one()
    return payer


def _locked(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> Stream:
    """The message's stream, locked; NotFoundError for an unknown (or not owner's) message,
    ConflictError for a message that was not begun as a stream."""
    s = message_streams.c
    query = select(*_COLUMNS).where(s.message_id == message_id)
    if owner is not None:
        query = query.where(s.conversation_id.in_(_owned_conversations(owner)))
    row = conn.execute(query.with_for_update()).first()
    if row is None:
        _message(conn, owner, message_id)  # NotFoundError unless it is a visible message
        raise ConflictError("the message was not begun as a stream", field="message_id")
    return from_row(Stream, row)


def _owned_conversations(owner: uuid.UUID) -> Any:
    c = conversations.c
    return select(c.id).where(c.owner_id == owner)


def get(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> Stream:
    """The stream of a message begun streaming."""
    s = message_streams.c
    query = select(*_COLUMNS).where(s.message_id == message_id)
    if owner is not None:
        query = query.where(s.conversation_id.in_(_owned_conversations(owner)))
    row = conn.execute(query).first()
    if row is None:
        _message(conn, owner, message_id)
        raise ConflictError("the message was not begun as a stream", field="message_id")
    return from_row(Stream, row)


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
        k = stream_chunks.c
        stored = conn.execute(
            select(k.text).where(k.message_id == message_id, k.idx == index)
        ).scalar()
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
        insert(stream_chunks).values(
            message_id=message_id,
            idx=index,
            start_char=stream.char_count,
            text=text,
            created_at=now,
        )
    )
    lease = now + timedelta(seconds=stream.lease_seconds)
    s = message_streams.c
    conn.execute(
        update(message_streams)
        .where(s.message_id == message_id)
        .values(
            chunk_count=s.chunk_count + 1,
            char_count=s.char_count + len(text),
            lease_expires_at=lease,
            updated_at=now,
        )
    )
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
    k = stream_chunks.c
    rows = conn.execute(select(k.text).where(k.message_id == message_id).order_by(k.idx))
    return "".join(text for (text,) in rows)


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
    return _message(conn, owner, message_id)


def _close(conn: Connection, stream: Stream, text: str, ending: Ending) -> None:
    """Write the final message row, settle the hold, retire the stream (locked already)."""
    if stream.hold is not None or ending.charge is not None:
        payer = _payer(conn, stream.conversation_id)
        if stream.hold is not None:
            tokens.release_in(conn, payer, stream.hold)
        if ending.charge is not None:
            reason = stream.charge_reason or "message"
            tokens.debit_in(conn, payer, ending.charge, reason, stream.message_id)
    values: dict[str, Any] = {
        "content": text,
        "status": ending.status,
        "status_reason": ending.reason,
    }
    for name in (
        "model",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "cost",
        "latency_ms",
    ):
        value = getattr(ending, name)
        if value is not None:
            values[name] = value
    conn.execute(update(messages).where(messages.c.id == stream.message_id).values(**values))
    conn.execute(delete(stream_chunks).where(stream_chunks.c.message_id == stream.message_id))
    now = utcnow()
    conn.execute(
        update(message_streams)
        .where(message_streams.c.message_id == stream.message_id)
        .values(
            char_count=len(text),
            lease_expires_at=None,
            hold=None,
            updated_at=now,
            finished_at=now,
        )
    )


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
