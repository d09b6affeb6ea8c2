"""Search: full-text over messages and conversation titles, with the backend's own engine.

The engine's condition and score come from ``Backend.fulltext`` (:mod:`chatledger._fulltext`);
owner scoping, filters, ordering and keyset cursors are added here, all in the one statement,
so nothing is filtered after the engine and counts never include another user's rows.
Snippets and highlights are computed from the stored text by
:func:`~chatledger._ops.search_syntax.snippet`, the same way on every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Literal

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Dialect,
    Double,
    Select,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    true,
)

from .. import _cursors, _fulltext
from .._backends import Backend, backend_of
from .._fulltext import BY_NAME
from .._prepared import Prepared, RecordLoader
from .._schema import conversations, messages
from .._types import UTCDateTime, result_loader
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
_LOAD_MESSAGE: Final = RecordLoader(Message, _MESSAGE_COLUMNS)
_LOAD_CONVERSATION: Final = RecordLoader(Conversation, _CONVERSATION_COLUMNS)
#: Conversations in this status are never searched unless asked for (a constant in the SQL).
_HIDDEN: Final[ColumnElement[Any]] = literal_column("'deleted'")
#: Statements kept compiled (one per shape and page size; a shape holds the number of values
#: of each list filter, so a caller sending ever longer lists cannot grow the cache forever).
_STATEMENTS: Final = 512


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
    #: How many roles, models and statuses the filters list (0: no filter).
    roles: int = 0
    models: int = 0
    since: bool = False
    until: bool = False
    statuses: int = 0
    active_path: bool = False
    order: str = "relevance"
    descending: bool = True
    keyed: bool = False
    #: The page size plus one (a constant in the SQL: SQLite runs a search 2-3x faster with
    #: a constant LIMIT than with a bound one, measured; the bound OFFSET SQLAlchemy adds to
    #: every SQLite LIMIT costs nothing measurable).
    limit: int = 0


def _listed(column: Column[Any], name: str, count: int) -> ColumnElement[bool]:
    """``column IN (:name_0, ..., :name_<count-1>)``: one bind parameter per value, so the
    statement has no expanding parameter and runs as a :class:`Prepared` statement."""
    return column.in_([bindparam(f"{name}_{n}", type_=column.type) for n in range(count)])


def _list_params(name: str, values: Sequence[Any] | None) -> dict[str, Any]:
    return {f"{name}_{n}": value for n, value in enumerate(values or ())}


def _filtered(
    shape: _Shape, query: Select[Any], base: Table
) -> tuple[Select[Any], ColumnElement[float]]:
    """``query`` with the engine's condition, owner scoping and the filters, as bind
    parameters (named ``s_*``)."""
    c = conversations.c
    query, score = shape.backend.fulltext.apply(query, base, BY_NAME[shape.document], shape.phrases)
    owned: list[ColumnElement[bool]] = []
    if shape.scoped:
        owned.append(c.owner_id == bindparam("s_owner", type_=c.owner_id.type))
    if shape.statuses:
        owned.append(_listed(c.status, "s_statuses", shape.statuses))
    else:
        owned.append(c.status != _HIDDEN)
    if _by_array(shape) and base is messages:
        ids = select(c.id).where(*owned).scalar_subquery()
        query = query.where(messages.c.conversation_id == any_(func.array(ids)))
    else:
        query = query.where(*owned)
    if base is messages:
        m = messages.c
        # Hidden and erased messages are out of what users and models see (docs/apps.md).
        query = query.where(m.hidden_at.is_(None))
        if shape.conversation:
            query = query.where(
                m.conversation_id == bindparam("s_cid", type_=m.conversation_id.type)
            )
        if shape.roles:
            query = query.where(_listed(m.role, "s_roles", shape.roles))
        if shape.models:
            query = query.where(_listed(m.model, "s_models", shape.models))
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
        query, sort, key, descending=shape.descending, limit=literal_column(str(shape.limit))
    )


def _by_array(shape: _Shape) -> bool:
    """Whether the owner's conversations are named as an array, not joined (see
    ``FullText.scopes_by_array``)."""
    return shape.scoped and shape.backend.fulltext.scopes_by_array


def _messages_from(shape: _Shape, *columns: Any) -> Select[Any]:
    """``SELECT columns FROM messages``, joined to their conversations unless the shape
    names them as an array (the title is then read per row returned)."""
    m, c = messages.c, conversations.c
    if not _by_array(shape):
        return select(*columns).select_from(messages).join(conversations, c.id == m.conversation_id)
    title = select(c.title).where(c.id == m.conversation_id).scalar_subquery()
    chosen = [title.label("title") if column is c.title else column for column in columns]
    return select(*chosen).select_from(messages)


@lru_cache(maxsize=_STATEMENTS)
def _messages_statement(shape: _Shape) -> Prepared:
    m, c = messages.c, conversations.c
    query = _messages_from(shape, *_MESSAGE_COLUMNS, c.title)
    query, score = _filtered(shape, query, messages)
    query = query.add_columns(score.label("score"))
    first = score if shape.order == "relevance" else m.created_at
    return Prepared(_keyset(shape, query, [first, m.conversation_id, m.seq]))


@lru_cache(maxsize=_STATEMENTS)
def _count_statement(shape: _Shape) -> Prepared:
    query = _messages_from(shape, func.count())
    return Prepared(_filtered(shape, query, messages)[0])


@lru_cache(maxsize=_STATEMENTS)
def _titles_statement(shape: _Shape) -> Prepared:
    c = conversations.c
    query = select(*_CONVERSATION_COLUMNS).select_from(conversations)
    query, score = _filtered(shape, query, conversations)
    query = query.add_columns(score.label("score"))
    first = score if shape.order == "relevance" else c.last_activity_at
    return Prepared(_keyset(shape, query, [first, c.id]))


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
        "s_since": filters.since,
        "s_until": filters.until,
    }
    params.update({name: value for name, value in given.items() if value is not None})
    params.update(_list_params("s_roles", filters.roles))
    params.update(_list_params("s_models", filters.models))
    params.update(_list_params("s_statuses", filters.statuses))
    return _Shape(
        backend,
        "messages",
        owner is not None,
        _fulltext.shape(parsed),
        conversation=filters.conversation_id is not None,
        roles=len(filters.roles or ()),
        models=len(filters.models or ()),
        since=filters.since is not None,
        until=filters.until is not None,
        statuses=len(filters.statuses or ()),
        active_path=filters.active_path,
        **more,
    )


@lru_cache(maxsize=8)
def _title_loader(dialect: Dialect) -> Callable[[Any], Any]:
    """Converts a conversation title as the driver returns it (as SQLAlchemy would)."""
    return result_loader(conversations.c.title.type, dialect) or _as_is


def _as_is(value: Any) -> Any:
    return value


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
    params: dict[str, Any] = {}
    shape = _message_shape(
        conn,
        owner,
        parsed,
        filters,
        params,
        order=order,
        descending=(order != "oldest") == forward,
        keyed=key is not None,
        limit=limit + 1,
    )
    if key is not None:
        params.update({"k_first": key[0], "k_1": key[1], "k_2": key[2]})
    load = _LOAD_MESSAGE(conn.dialect)
    title = _title_loader(conn.dialect)
    width = len(_MESSAGE_COLUMNS)

    def convert(row: Sequence[Any]) -> MessageHit:
        message = load(row)
        excerpt, marks = syntax.snippet(message.content, parsed)
        return MessageHit(message, title(row[width]), float(row[width + 1] or 0.0), excerpt, marks)

    def cursor_key(hit: MessageHit) -> tuple[Any, ...]:
        value = hit.score if order == "relevance" else hit.message.created_at.isoformat()
        return (value, str(hit.message.conversation_id), hit.message.seq)

    page = page_of(
        _messages_statement(shape).rows(conn, params),
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
    return int(_count_statement(shape).first_value(conn, params))


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
    params: dict[str, Any] = {
        **backend.fulltext.params(parsed),
        **_list_params("s_statuses", statuses),
    }
    if owner is not None:
        params["s_owner"] = owner
    if key is not None:
        params.update({"k_first": key[0], "k_1": key[1]})
    shape = _Shape(
        backend,
        "titles",
        owner is not None,
        _fulltext.shape(parsed),
        statuses=len(statuses or ()),
        order=order,
        descending=(order != "oldest") == forward,
        keyed=key is not None,
        limit=limit + 1,
    )
    load = _LOAD_CONVERSATION(conn.dialect)
    width = len(_CONVERSATION_COLUMNS)

    def convert(row: Sequence[Any]) -> ConversationHit:
        conversation = load(row)
        excerpt, marks = syntax.snippet(conversation.title or "", parsed)
        return ConversationHit(conversation, float(row[width] or 0.0), excerpt, marks)

    def cursor_key(hit: ConversationHit) -> tuple[Any, ...]:
        conversation = hit.conversation
        value = hit.score if order == "relevance" else conversation.last_activity_at.isoformat()
        return (value, str(conversation.id))

    page = page_of(
        _titles_statement(shape).rows(conn, params),
        limit,
        forward=forward,
        kind=_kind("titles", order),
        convert=convert,
        cursor_key=cursor_key,
    )
    return SearchPage(
        page.items, page.has_more, page.first_cursor, page.last_cursor, parsed.ignored
    )
