"""What the framework integrations see of a conversation: its messages minus hidden ranges.

chatledger messages are append-only: ``seq`` is gap-free, counts and usage totals are exact.
LangChain's ``clear()`` and LlamaIndex's deletes therefore do not delete messages: they hide a
range of ``seq`` (``hidden_messages``), and the integrations read past it. The messages stay in
the ledger (``ledger.messages`` still returns them; usage, export and erasure still cover them).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any, Final

from sqlalchemy import Connection, Integer, Select, bindparam, exists, func, select

from .. import _ids
from .._schema import conversations, hidden_messages, messages
from ..errors import NotFoundError
from ..records import Message
from . import messages as _messages
from ._common import from_row, record_columns, utcnow

__all__ = ["hide", "hide_all", "hide_at", "replace", "visible", "visible_count"]

_COLUMNS: Final = record_columns(messages, Message)


def _hidden() -> Any:
    """``EXISTS`` a hidden range covering the message row."""
    h, m = hidden_messages.c, messages.c
    return exists().where(
        h.conversation_id == m.conversation_id, h.first_seq <= m.seq, h.last_seq >= m.seq
    )


@cache
def _visible(newest_first: bool, limited: bool) -> Select[Any]:
    m = messages.c
    query = select(*_COLUMNS).where(m.conversation_id == bindparam("b_cid"), ~_hidden())
    query = query.order_by(m.seq.desc() if newest_first else m.seq.asc())
    if limited:
        query = query.limit(bindparam("b_n", type_=Integer()))
    return query


def visible(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, last: int | None
) -> list[Message]:
    """The conversation's visible messages, oldest first; only the ``last`` ones if given (an
    index range scan from the end, never the whole conversation)."""
    _messages.require_conversation(conn, owner, conversation_id)
    params: dict[str, Any] = {"b_cid": conversation_id}
    if last is None:
        return [from_row(Message, row) for row in conn.execute(_visible(False, False), params)]
    params["b_n"] = last
    rows = conn.execute(_visible(True, True), params).all()
    return [from_row(Message, row) for row in reversed(rows)]


def visible_count(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> int:
    """How many messages of the conversation are visible."""
    _messages.require_conversation(conn, owner, conversation_id)
    m = messages.c
    query = (
        select(func.count())
        .select_from(messages)
        .where(m.conversation_id == conversation_id, ~_hidden())
    )
    return int(conn.execute(query).scalar_one())


def _locked_count(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> int:
    """The conversation's message count, under its row lock (appends wait meanwhile)."""
    c = conversations.c
    query = select(c.message_count).where(c.id == conversation_id)
    if owner is not None:
        query = query.where(c.owner_id == owner)
    count = conn.execute(query.with_for_update()).scalar()
    if count is None:
        raise NotFoundError("conversation", conversation_id)
    return int(count)


def hide(conn: Connection, conversation_id: uuid.UUID, first_seq: int, last_seq: int) -> None:
    """Hide messages ``first_seq..last_seq`` (the caller checked the conversation)."""
    conn.execute(
        hidden_messages.insert().values(
            id=_ids.new_id(),
            conversation_id=conversation_id,
            first_seq=first_seq,
            last_seq=last_seq,
            created_at=utcnow(),
        )
    )


def hide_all(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> int:
    """Hide every message the conversation holds now; later appends are visible. Returns the
    message count it hid up to."""
    count = _locked_count(conn, owner, conversation_id)
    if count:
        hide(conn, conversation_id, 1, count)
    return count


def hide_at(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, index: int
) -> Message | None:
    """Hide the visible message at ``index`` (negative: from the end) and return it; ``None``
    when there is no such message."""
    _locked_count(conn, owner, conversation_id)
    params: dict[str, Any] = {"b_cid": conversation_id}
    if index < 0:
        query = _visible(True, True)
        params["b_n"] = -index
        rows = conn.execute(query, params).all()
        row = rows[-1] if len(rows) == -index else None
    else:
        query = _visible(False, True).offset(index)
        params["b_n"] = 1
        row = conn.execute(query, params).first()
    if row is None:
        return None
    message = from_row(Message, row)
    hide(conn, conversation_id, message.seq, message.seq)
    return message


def replace(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    batch: Sequence[_messages.NewMessage],
) -> list[Message]:
    """Hide every message, then append ``batch``: the visible messages become exactly it."""
    hide_all(conn, owner, conversation_id)
    if not batch:
        return []
    return _messages.append_many(conn, owner, conversation_id, list(batch))
