"""What the framework integrations see of a conversation: its active path (docs/trees.md)
minus hidden ranges.

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

from sqlalchemy import Connection, Integer, Select, bindparam, exists, func, select, true

from .. import _ids
from .._schema import conversations, graph_threads, hidden_messages, messages
from ..errors import NotFoundError
from ..records import Message
from . import checkpoints as _checkpoints
from . import messages as _messages
from ._common import from_row, record_columns, utcnow

__all__ = [
    "for_key",
    "hide",
    "hide_all",
    "hide_at",
    "key_append",
    "key_clear",
    "key_hide_at",
    "key_messages",
    "keys",
    "replace",
    "visible",
    "visible_count",
]

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
    query = select(*_COLUMNS).where(
        m.conversation_id == bindparam("b_cid"),
        m.on_active_path == true(),
        m.hidden_at.is_(None),
        ~_hidden(),
    )
    query = query.order_by(m.seq.desc() if newest_first else m.seq.asc())
    if limited:
        query = query.limit(bindparam("b_n", type_=Integer()))
    return query


def visible(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, last: int | None
) -> list[Message]:
    """The visible messages of the conversation's active path, oldest first; only the
    ``last`` ones if given (an index range scan from the end, never the whole conversation)."""
    _messages.require_conversation(conn, owner, conversation_id)
    params: dict[str, Any] = {"b_cid": conversation_id}
    if last is None:
        return [from_row(Message, row) for row in conn.execute(_visible(False, False), params)]
    params["b_n"] = last
    rows = conn.execute(_visible(True, True), params).all()
    return [from_row(Message, row) for row in reversed(rows)]


def visible_count(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> int:
    """How many messages of the conversation's active path are visible."""
    _messages.require_conversation(conn, owner, conversation_id)
    m = messages.c
    query = (
        select(func.count())
        .select_from(messages)
        .where(
            m.conversation_id == conversation_id,
            m.on_active_path == true(),
            m.hidden_at.is_(None),
            ~_hidden(),
        )
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


# -- conversations by key (LlamaIndex chat store keys) ------------------------------------------


def for_key(
    conn: Connection,
    owner: uuid.UUID | None,
    key: str,
    user_id: uuid.UUID | None,
    *,
    create: bool,
) -> uuid.UUID | None:
    """The conversation of a chat-store key: the one bound to it (LangGraph thread ids and
    chat-store keys share the bindings), else the conversation whose id it is; else, with
    ``create``, a new conversation of the acting user bound to the key (else ``None``)."""
    bound = _checkpoints.thread(conn, owner, key, user_id)
    if bound is not None:
        return bound.conversation_id
    try:
        named: uuid.UUID | None = uuid.UUID(key)
    except ValueError:
        named = None
    if named is not None:
        c = conversations.c
        query = select(c.id).where(c.id == named)
        if owner is not None:
            query = query.where(c.owner_id == owner)
        if conn.execute(query).first() is not None:
            return named
    if not create:
        return None
    return _checkpoints.bind(conn, owner, key, user_id).conversation_id


def key_messages(
    conn: Connection, owner: uuid.UUID | None, key: str, user_id: uuid.UUID | None = None
) -> list[Message]:
    """The visible messages of the key's conversation (none for an unknown key)."""
    found = for_key(conn, owner, key, user_id, create=False)
    return [] if found is None else visible(conn, owner, found, None)


def key_append(
    conn: Connection,
    owner: uuid.UUID | None,
    key: str,
    user_id: uuid.UUID | None,
    batch: Sequence[_messages.NewMessage],
    replacing: bool,
) -> None:
    """Append to the key's conversation (made on first use); with ``replacing``, hide its
    messages first, so the visible ones become exactly ``batch``."""
    conversation_id = for_key(conn, owner, key, user_id, create=True)
    if conversation_id is None:  # pragma: no cover - create=True always finds or makes one
        raise NotFoundError("conversation", key)
    if replacing:
        replace(conn, owner, conversation_id, batch)
    elif batch:
        _messages.append_many(conn, owner, conversation_id, list(batch))


def key_clear(
    conn: Connection, owner: uuid.UUID | None, key: str, user_id: uuid.UUID | None = None
) -> list[Message] | None:
    """Hide every message of the key's conversation; the messages hidden (``None``: unknown
    key)."""
    found = for_key(conn, owner, key, user_id, create=False)
    if found is None:
        return None
    shown = visible(conn, owner, found, None)
    hide_all(conn, owner, found)
    return shown


def key_hide_at(
    conn: Connection,
    owner: uuid.UUID | None,
    key: str,
    index: int,
    user_id: uuid.UUID | None = None,
) -> Message | None:
    """Hide the visible message at ``index`` of the key's conversation (see :func:`hide_at`)."""
    found = for_key(conn, owner, key, user_id, create=False)
    return None if found is None else hide_at(conn, owner, found, index)


def keys(conn: Connection, owner: uuid.UUID | None, user_id: uuid.UUID | None = None) -> list[str]:
    """The bound keys (and LangGraph thread ids) the store sees, oldest first: the scope
    owner's, else ``user_id``'s, else every owner's."""
    t = graph_threads.c
    query = select(t.thread_id)
    holder = owner if owner is not None else user_id
    if holder is not None:
        query = query.where(t.owner_id == holder)
    return list(conn.execute(query.order_by(t.created_at, t.thread_id)).scalars())
