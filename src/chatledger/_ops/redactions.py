"""Hiding and erasing single messages (docs/apps.md "Hiding and erasing a message").

Messages stay append-only: a hidden message keeps its row, its ``seq`` and its place in the
conversation's tree; ``hidden_at``/``hidden_by`` record when and by whom, and the history
reads (``messages.list``/``last``, ``trees.path``, the integrations' views, search, the
Markdown transcript) leave it out unless asked. An erasure (an admin's, for good) also
empties its content and clears its metadata, intent and request id; its usage figures
(model, tokens, cost, latency) stay, so usage totals and ``message_count`` do not move.
Each change runs under the conversation's row lock, like every other writer of it. The
HTTP responses stored for ``Idempotency-Key`` replays that carry an erased message are
deleted with its content.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, delete, null, update

from .._schema import idempotent_requests, messages
from ..errors import ConflictError
from ..records import Message
from ._common import utcnow
from .trees import _lock, _message

__all__ = ["erase", "hide", "unhide"]


def _locked(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> Message:
    """The message (of ``owner``'s conversations), its conversation's row locked; read again
    under the lock so that the state it returns is current."""
    found = _message(conn, owner, message_id, "message_id")
    _lock(conn, owner, found.conversation_id)
    return _message(conn, owner, message_id, "message_id")


def _set(conn: Connection, message: Message, values: dict[str, Any]) -> None:
    m = messages.c
    conn.execute(
        update(messages)
        .where(m.conversation_id == message.conversation_id, m.seq == message.seq)
        .values(**values)
    )


def hide(
    conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID, by: uuid.UUID | None
) -> Message:
    """Hide the message from history reads, recording when and by whom. Hiding a hidden
    message changes nothing (the first hide's record stays)."""
    message = _locked(conn, owner, message_id)
    if message.hidden_at is not None:
        return message
    now = utcnow()
    _set(conn, message, {"hidden_at": now, "hidden_by": by})
    return replace(message, hidden_at=now, hidden_by=by)


def unhide(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> Message:
    """Show a hidden message again; an erased one cannot be (ConflictError)."""
    message = _locked(conn, owner, message_id)
    if message.erased_at is not None:
        raise ConflictError("an erased message cannot be shown again", field="message_id")
    if message.hidden_at is None:
        return message
    _set(conn, message, {"hidden_at": None, "hidden_by": None})
    return replace(message, hidden_at=None, hidden_by=None)


def erase(conn: Connection, message_id: uuid.UUID, by: uuid.UUID | None) -> Message:
    """Erase the message's content for good: content ``""``, metadata, intent and request id
    cleared, hidden (by ``by``, now) and ``erased_at`` set. Usage figures stay. A reply still
    streaming cannot be erased (ConflictError: finish or sweep it first). Erasing an erased
    message changes nothing."""
    message = _locked(conn, None, message_id)
    if message.erased_at is not None:
        return message
    if message.status == "streaming":
        raise ConflictError(
            "a reply still streaming cannot be erased: finish or sweep it first",
            field="message_id",
        )
    now = utcnow()
    # The HTTP responses stored for replay that carry the text go with it.
    conn.execute(delete(idempotent_requests).where(idempotent_requests.c.message_id == message_id))
    _set(
        conn,
        message,
        {
            "content": "",
            "metadata": null(),
            "intent": None,
            "request_id": None,
            "hidden_at": now,
            "hidden_by": by,
            "erased_at": now,
        },
    )
    return replace(
        message,
        content="",
        metadata=None,
        intent=None,
        request_id=None,
        hidden_at=now,
        hidden_by=by,
        erased_at=now,
    )
