"""Search: full-text over messages and conversation titles, with the backend's own engine.

The engine's condition and score come from ``Backend.fulltext`` (:mod:`chatledger._fulltext`);
owner scoping, filters, ordering and keyset cursors are added here, all in the one statement,
so nothing is filtered after the engine and counts never include another user's rows.
Snippets and highlights are computed from the stored text by
:func:`~chatledger._ops.search_syntax.snippet`, the same way on every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Connection, Row, Select, func, select

from .. import _cursors
from .._backends import backend_of
from .._fulltext import BY_NAME
from .._schema import conversations, messages
from ..errors import ValidationError
from ..records import Conversation, ConversationHit, Message, MessageHit, SearchPage
from . import search_syntax as syntax
from ._common import keyset_query, page_of, record_columns
from .messages import require_conversation

__all__ = ["SORTS", "MessageFilters", "count", "decode_cursor", "messages_page", "titles_page"]

SearchOrder = Literal["relevance", "newest", "oldest"]
#: How results can be ordered.
SORTS: Final = ("relevance", "newest", "oldest")
_MESSAGE_COLUMNS: Final = record_columns(messages, Message)
_CONVERSATION_COLUMNS: Final = record_columns(conversations, Conversation)
_HIDDEN: Final = "deleted"


@dataclass(frozen=True, slots=True)
class MessageFilters:
    """Validated filters of a message search (``None``: no filter)."""

    conversation_id: uuid.UUID | None = None
    roles: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Conversation statuses; ``None``: every status but ``deleted``.
    statuses: tuple[str, ...] | None = None


def _status_condition(statuses: tuple[str, ...] | None) -> ColumnElement[bool]:
    status = conversations.c.status
    return status != _HIDDEN if statuses is None else status.in_(statuses)


def _message_query(
    conn: Connection,
    owner: uuid.UUID | None,
    parsed: syntax.Query,
    filters: MessageFilters,
    columns: Sequence[Any],
) -> tuple[Select[Any], ColumnElement[float]]:
    m, c = messages.c, conversations.c
    query = select(*columns).select_from(messages).join(conversations, c.id == m.conversation_id)
    query, score = backend_of(conn).fulltext.apply(query, messages, BY_NAME["messages"], parsed)
    if owner is not None:
        query = query.where(c.owner_id == owner)
    query = query.where(_status_condition(filters.statuses))
    if filters.conversation_id is not None:
        query = query.where(m.conversation_id == filters.conversation_id)
    if filters.roles is not None:
        query = query.where(m.role.in_(filters.roles))
    if filters.models is not None:
        query = query.where(m.model.in_(filters.models))
    if filters.since is not None:
        query = query.where(m.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(m.created_at < filters.until)
    return query, score


def _kind(what: str, order: str) -> str:
    return f"search-{what}-{order}"


def decode_cursor(field: str, what: str, order: str, cursor: str | None) -> list[Any] | None:
    """The sort key inside a search cursor of ``what`` (messages, titles) read in ``order``."""
    if cursor is None:
        return None
    arity = 3 if what == "messages" else 2
    key = _cursors.decode(field, _kind(what, order), cursor, arity)
    first, identifier = key[0], key[1]
    if order == "relevance":
        if isinstance(first, bool) or not isinstance(first, int | float):
            raise ValidationError(field, "is not a valid cursor")
        key[0] = float(first)
    else:
        if not isinstance(first, str):
            raise ValidationError(field, "is not a valid cursor")
        try:
            key[0] = datetime.fromisoformat(first)
        except ValueError:
            raise ValidationError(field, "is not a valid cursor") from None
    try:
        key[1] = uuid.UUID(str(identifier))
    except ValueError:
        raise ValidationError(field, "is not a valid cursor") from None
    if what == "messages" and (isinstance(key[2], bool) or not isinstance(key[2], int)):
        raise ValidationError(field, "is not a valid cursor")
    return key


def _empty(parsed: syntax.Query) -> SearchPage[Any]:
    return SearchPage([], False, None, None, parsed.ignored)


def messages_page(
    conn: Connection,
    owner: uuid.UUID | None,
    parsed: syntax.Query,
    filters: MessageFilters,
    *,
    order: SearchOrder,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> SearchPage[MessageHit]:
    """A page of the messages matching ``parsed`` (``owner``'s when scoped)."""
    if filters.conversation_id is not None:
        require_conversation(conn, owner, filters.conversation_id)
    if parsed.empty:
        return _empty(parsed)
    m = messages.c
    query, score = _message_query(
        conn, owner, parsed, filters, [*_MESSAGE_COLUMNS, conversations.c.title]
    )
    first = score if order == "relevance" else m.created_at
    query = query.add_columns(score.label("score"))
    sort = [first, m.conversation_id, m.seq]
    forward = before is None
    descending = (order != "oldest") == forward
    query = keyset_query(
        query, sort, after if forward else before, descending=descending, limit=limit + 1
    )
    width = len(_MESSAGE_COLUMNS)

    def convert(row: Row[Any]) -> MessageHit:
        message = Message(*row[:width])
        excerpt, marks = syntax.snippet(message.content, parsed)
        return MessageHit(message, row[width], float(row[width + 1] or 0.0), excerpt, marks)

    def cursor_key(hit: MessageHit) -> tuple[Any, ...]:
        value = hit.score if order == "relevance" else hit.message.created_at.isoformat()
        return (value, str(hit.message.conversation_id), hit.message.seq)

    page = page_of(
        conn.execute(query).all(),
        limit,
        forward=forward,
        kind=_kind("messages", order),
        convert=convert,
        cursor_key=cursor_key,
    )
    return SearchPage(
        page.items, page.has_more, page.first_cursor, page.last_cursor, parsed.ignored
    )


def count(
    conn: Connection, owner: uuid.UUID | None, parsed: syntax.Query, filters: MessageFilters
) -> int:
    """How many messages match ``parsed`` (``owner``'s when scoped)."""
    if filters.conversation_id is not None:
        require_conversation(conn, owner, filters.conversation_id)
    if parsed.empty:
        return 0
    query, _ = _message_query(conn, owner, parsed, filters, [func.count()])
    return int(conn.execute(query).scalar_one())


def titles_page(
    conn: Connection,
    owner: uuid.UUID | None,
    parsed: syntax.Query,
    *,
    statuses: tuple[str, ...] | None,
    order: SearchOrder,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> SearchPage[ConversationHit]:
    """A page of the conversations whose title matches ``parsed``; ``newest``/``oldest``
    order by last activity (the sidebar's order)."""
    if parsed.empty:
        return _empty(parsed)
    c = conversations.c
    query = select(*_CONVERSATION_COLUMNS).select_from(conversations)
    query, score = backend_of(conn).fulltext.apply(query, conversations, BY_NAME["titles"], parsed)
    if owner is not None:
        query = query.where(c.owner_id == owner)
    query = query.where(_status_condition(statuses)).add_columns(score.label("score"))
    first = score if order == "relevance" else c.last_activity_at
    forward = before is None
    descending = (order != "oldest") == forward
    query = keyset_query(
        query, [first, c.id], after if forward else before, descending=descending, limit=limit + 1
    )
    width = len(_CONVERSATION_COLUMNS)

    def convert(row: Row[Any]) -> ConversationHit:
        conversation = Conversation(*row[:width])
        excerpt, marks = syntax.snippet(conversation.title or "", parsed)
        return ConversationHit(conversation, float(row[width] or 0.0), excerpt, marks)

    def cursor_key(hit: ConversationHit) -> tuple[Any, ...]:
        conversation = hit.conversation
        value = hit.score if order == "relevance" else conversation.last_activity_at.isoformat()
        return (value, str(conversation.id))

    page = page_of(
        conn.execute(query).all(),
        limit,
        forward=forward,
        kind=_kind("titles", order),
        convert=convert,
        cursor_key=cursor_key,
    )
    return SearchPage(
        page.items, page.has_more, page.first_cursor, page.last_cursor, parsed.ignored
    )
