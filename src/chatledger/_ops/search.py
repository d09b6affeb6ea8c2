"""Search: full-text over messages and conversation titles, with the backend's own engine.

The engine's condition and score come from ``Backend.fulltext`` (:mod:`chatledger._fulltext`);
owner scoping, filters, ordering and keyset cursors are added here, all in the one statement,
so nothing is filtered after the engine and counts never include another user's rows.
Snippets and highlights are computed from the stored text by
:func:`~chatledger._ops.search_syntax.snippet`, the same way on every backend.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Double,
    Integer,
    Row,
    Select,
    Table,
    bindparam,
    func,
    literal,
    select,
    true,
)

from .. import _cursors, _fulltext
from .._backends import Backend, backend_of
from .._fulltext import BY_NAME
from .._schema import conversations, messages
from .._types import UTCDateTime
from ..errors import ValidationError
from ..records import Conversation, ConversationHit, Message, MessageHit, SearchPage
from . import search_syntax as syntax
from ._common import keyset_query, page_of, record_columns
from .messages import require_conversation

__all__ = [
    "BRANCHES",
    "SORTS",
    "MessageFilters",
    "count",
    "decode_cursor",
    "messages_page",
    "titles_page",
]

SearchOrder = Literal["relevance", "newest", "oldest"]
#: How results can be ordered.
SORTS: Final = ("relevance", "newest", "oldest")
SearchBranch = Literal["all", "active"]
#: Which branches of a conversation's tree a message search covers.
BRANCHES: Final = ("all", "active")
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
    #: Only the messages on their conversation's active path (``branch="active"``).
    active_path: bool = False


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a search statement depends on besides parameter values (it is built and compiled
    once per shape)."""

    backend: Backend
    document: str
    scoped: bool
    phrases: tuple[int, int]
    conversation: bool = False
    roles: bool = False
    models: bool = False
    since: bool = False
    until: bool = False
    statuses: bool = False
    active_path: bool = False
    order: str = "relevance"
    descending: bool = True
    keyed: bool = False


def _filtered(
    shape: _Shape, query: Select[Any], base: Table
) -> tuple[Select[Any], ColumnElement[float]]:
    """``query`` with the engine's condition, owner scoping and the filters, as bind
    parameters (named ``s_*``)."""
    c = conversations.c
    query, score = shape.backend.fulltext.apply(query, base, BY_NAME[shape.document], shape.phrases)
    if shape.scoped:
        query = query.where(c.owner_id == bindparam("s_owner", type_=c.owner_id.type))
    if shape.statuses:
        query = query.where(c.status.in_(bindparam("s_statuses", expanding=True)))
    else:
        query = query.where(c.status != literal(_HIDDEN, literal_execute=True))
    if base is messages:
        m = messages.c
        # Hidden and erased messages are out of what users and models see (docs/apps.md).
        query = query.where(m.hidden_at.is_(None))
        if shape.conversation:
            query = query.where(
                m.conversation_id == bindparam("s_cid", type_=m.conversation_id.type)
            )
        if shape.roles:
            query = query.where(m.role.in_(bindparam("s_roles", expanding=True)))
        if shape.models:
            query = query.where(m.model.in_(bindparam("s_models", expanding=True)))
        if shape.since:
            query = query.where(m.created_at >= bindparam("s_since", type_=UTCDateTime()))
        if shape.until:
            query = query.where(m.created_at < bindparam("s_until", type_=UTCDateTime()))
        if shape.active_path:
            query = query.where(m.on_active_path == true())
    return query, score


def _keyset(shape: _Shape, query: Select[Any], sort: list[ColumnElement[Any]]) -> Select[Any]:
    key = None
    if shape.keyed:
        first_type = Double() if shape.order == "relevance" else UTCDateTime()
        key = [bindparam("k_first", type_=first_type)] + [
            bindparam(f"k_{n}", type_=column.type) for n, column in enumerate(sort[1:], 1)
        ]
    return keyset_query(
        query,
        sort,
        key,
        descending=shape.descending,
        # The page size goes into the SQL text (each size compiles once): SQLite runs the
        # search 2-3x faster with a constant LIMIT than with a bound one (measured).
        limit=bindparam("s_limit", type_=Integer(), literal_execute=True),
    )


@cache
def _messages_statement(shape: _Shape) -> Select[Any]:
    m, c = messages.c, conversations.c
    query = (
        select(*_MESSAGE_COLUMNS, c.title)
        .select_from(messages)
        .join(conversations, c.id == m.conversation_id)
    )
    query, score = _filtered(shape, query, messages)
    query = query.add_columns(score.label("score"))
    first = score if shape.order == "relevance" else m.created_at
    return _keyset(shape, query, [first, m.conversation_id, m.seq])


@cache
def _count_statement(shape: _Shape) -> Select[Any]:
    m, c = messages.c, conversations.c
    query = (
        select(func.count()).select_from(messages).join(conversations, c.id == m.conversation_id)
    )
    return _filtered(shape, query, messages)[0]


@cache
def _titles_statement(shape: _Shape) -> Select[Any]:
    c = conversations.c
    query = select(*_CONVERSATION_COLUMNS).select_from(conversations)
    query, score = _filtered(shape, query, conversations)
    query = query.add_columns(score.label("score"))
    first = score if shape.order == "relevance" else c.last_activity_at
    return _keyset(shape, query, [first, c.id])


def _message_shape(
    conn: Connection,
    owner: uuid.UUID | None,
    parsed: syntax.Query,
    filters: MessageFilters,
    params: dict[str, Any],
    **more: Any,
) -> _Shape:
    """The statement shape of a message search, filling ``params`` with the values."""
    backend = backend_of(conn)
    params.update(backend.fulltext.params(parsed))
    given = {
        "s_owner": owner,
        "s_cid": filters.conversation_id,
        "s_roles": filters.roles,
        "s_models": filters.models,
        "s_since": filters.since,
        "s_until": filters.until,
        "s_statuses": filters.statuses,
    }
    params.update({name: value for name, value in given.items() if value is not None})
    return _Shape(
        backend,
        "messages",
        owner is not None,
        _fulltext.shape(parsed),
        conversation=filters.conversation_id is not None,
        roles=filters.roles is not None,
        models=filters.models is not None,
        since=filters.since is not None,
        until=filters.until is not None,
        statuses=filters.statuses is not None,
        active_path=filters.active_path,
        **more,
    )


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
    forward = before is None
    key = after if forward else before
    params: dict[str, Any] = {"s_limit": limit + 1}
    shape = _message_shape(
        conn,
        owner,
        parsed,
        filters,
        params,
        order=order,
        descending=(order != "oldest") == forward,
        keyed=key is not None,
    )
    if key is not None:
        params.update({"k_first": key[0], "k_1": key[1], "k_2": key[2]})
    query = _messages_statement(shape)
    width = len(_MESSAGE_COLUMNS)

    def convert(row: Row[Any]) -> MessageHit:
        message = Message(*row[:width])
        excerpt, marks = syntax.snippet(message.content, parsed)
        return MessageHit(message, row[width], float(row[width + 1] or 0.0), excerpt, marks)

    def cursor_key(hit: MessageHit) -> tuple[Any, ...]:
        value = hit.score if order == "relevance" else hit.message.created_at.isoformat()
        return (value, str(hit.message.conversation_id), hit.message.seq)

    page = page_of(
        conn.execute(query, params).all(),
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
    params: dict[str, Any] = {}
    shape = _message_shape(conn, owner, parsed, filters, params)
    return int(conn.execute(_count_statement(shape), params).scalar_one())


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
    backend = backend_of(conn)
    forward = before is None
    key = after if forward else before
    params: dict[str, Any] = {"s_limit": limit + 1, **backend.fulltext.params(parsed)}
    if owner is not None:
        params["s_owner"] = owner
    if statuses is not None:
        params["s_statuses"] = statuses
    if key is not None:
        params.update({"k_first": key[0], "k_1": key[1]})
    shape = _Shape(
        backend,
        "titles",
        owner is not None,
        _fulltext.shape(parsed),
        statuses=statuses is not None,
        order=order,
        descending=(order != "oldest") == forward,
        keyed=key is not None,
    )
    query = _titles_statement(shape)
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
        conn.execute(query, params).all(),
        limit,
        forward=forward,
        kind=_kind("titles", order),
        convert=convert,
        cursor_key=cursor_key,
    )
    return SearchPage(
        page.items, page.has_more, page.first_cursor, page.last_cursor, parsed.ignored
    )
