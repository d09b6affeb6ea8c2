"""Conversations: create, read, update, the status life cycle, deletes, the sidebar listing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Uuid,
    bindparam,
    delete,
    func,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from .. import _cursors, _ids
from .. import _validate as check
from .._backends import backend_of
from .._prepared import Prepared, RecordLoader
from .._schema import CONVERSATION_STATUSES, INTENT_MAX, TITLE_MAX, conversations
from .._types import UTCDateTime
from ..errors import ConflictError, NotFoundError, ValidationError
from ..records import ANONYMOUS_USER_ID, Conversation, ConversationStatus, Order, Page
from . import _once
from . import users as _users
from ._common import (
    from_row,
    keyset_query,
    page_of,
    paginate,
    record_columns,
    record_values,
    utcnow,
)

__all__ = [
    "TRANSITIONS",
    "count",
    "create",
    "delete_hard",
    "get",
    "page",
    "page_all",
    "prepare",
    "statuses",
    "transition",
    "update_fields",
]

_COLUMNS: Final = record_columns(conversations, Conversation)
_KIND: Final = "conversations"
#: Listings without a status filter show every status but this one.
_HIDDEN: Final = "deleted"

#: action -> (statuses it applies to, resulting status). Applying an action to a conversation
#: already in the resulting status changes nothing.
TRANSITIONS: Final[dict[str, tuple[frozenset[str], ConversationStatus]]] = {
    "archive": (frozenset({"active", "closed"}), "archived"),
    "unarchive": (frozenset({"archived"}), "active"),
    "close": (frozenset({"active", "archived"}), "closed"),
    "delete": (frozenset({"active", "archived", "closed"}), "deleted"),
    "restore": (frozenset({"deleted"}), "active"),
}


def prepare(limits: check.Limits, fields: dict[str, Any]) -> dict[str, Any]:
    """Validate conversation fields (any subset of title, intent, metadata)."""
    validators: dict[str, Callable[[Any], Any]] = {
        "title": lambda v: check.optional_text("title", v, TITLE_MAX),
        "intent": lambda v: check.optional_text("intent", v, INTENT_MAX),
        "metadata": lambda v: check.metadata("metadata", v, limits),
    }
    return {name: validators[name](value) for name, value in fields.items()}


def _to_conversation(row: Row[Any]) -> Conversation:
    return from_row(Conversation, row)


#: A retried create learns whether an earlier attempt committed (see ``_once``).
CREATED: Final = _once.inserted("conversation", conversations, Conversation)


def create(conn: Connection, owner_id: uuid.UUID, fields: dict[str, Any]) -> Conversation:
    """A new, empty, active conversation of ``owner_id`` (the anonymous owner's row is made
    on its first conversation)."""
    if owner_id == ANONYMOUS_USER_ID:
        _users.ensure_anonymous(conn)
    title, intent, metadata = fields["title"], fields["intent"], fields["metadata"]
    now = utcnow()
    conversation = Conversation(
        id=_ids.new_id(),
        owner_id=owner_id,
        title=title,
        intent=intent,
        status="active",
        message_count=0,
        last_message_at=None,
        last_activity_at=now,
        archived_at=None,
        metadata=metadata,
        created_at=now,
        updated_at=now,
    )
    try:
        conn.execute(conversations.insert(), record_values(conversation))
    except IntegrityError as exc:
        if backend_of(conn).violation(exc).kind == "foreign_key":
            raise NotFoundError("user", owner_id) from exc
        raise
    return conversation


def get(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, *, lock: bool = False
) -> Conversation:
    """One conversation by id (whatever its status)."""
    c = conversations.c
    query = select(*_COLUMNS).where(c.id == conversation_id)
    if owner is not None:
        query = query.where(c.owner_id == owner)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError("conversation", conversation_id)
    return from_row(Conversation, row)


def update_fields(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    changes: dict[str, Any],
) -> Conversation:
    """Set ``title``, ``intent`` and/or ``metadata``."""
    current = get(conn, owner, conversation_id, lock=True)
    if not changes:
        return current
    now = utcnow()
    conn.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(**changes, updated_at=now)
    )
    return replace(current, **changes, updated_at=now)


def transition(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, action: str
) -> Conversation:
    """Apply a life-cycle ``action`` (see :data:`TRANSITIONS`)."""
    sources, target = TRANSITIONS[action]
    current = get(conn, owner, conversation_id, lock=True)
    if current.status == target:
        return current
    if current.status not in sources:
        raise ConflictError(f"cannot {action} a {current.status} conversation", field="status")
    now = utcnow()
    archived_at: datetime | None = current.archived_at
    if target == "archived":
        archived_at = now
    elif target == "active":
        archived_at = None
    conn.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(status=target, archived_at=archived_at, updated_at=now)
    )
    return replace(current, status=target, archived_at=archived_at, updated_at=now)


def delete_hard(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> None:
    """Delete the conversation and, by cascade, its messages."""
    c = conversations.c
    stmt = delete(conversations).where(c.id == conversation_id)
    if owner is not None:
        stmt = stmt.where(c.owner_id == owner)
    if conn.execute(stmt).rowcount != 1:
        raise NotFoundError("conversation", conversation_id)


def statuses(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Validate a status filter; ``None`` means every status but ``deleted``."""
    if value is None:
        return None
    chosen = (value,) if isinstance(value, str) else tuple(value)
    if not chosen:
        raise ValidationError("status", "must name at least one status")
    for status in chosen:
        if status not in CONVERSATION_STATUSES:
            raise ValidationError(
                "status",
                f"{status!r} is not one of: {', '.join(CONVERSATION_STATUSES)}",
                limit=CONVERSATION_STATUSES,
            )
    return chosen


def _filtered(owner_id: uuid.UUID | None, status: tuple[str, ...] | None) -> Any:
    c = conversations.c
    condition = true() if owner_id is None else c.owner_id == owner_id
    if status is None:
        return condition & (c.status != _HIDDEN)
    if len(status) == 1:
        return condition & (c.status == status[0])
    return condition & c.status.in_(status)


#: Reads back the sort key of this listing's cursors: (last activity, id).
decode_cursor = _cursors.decoder(_KIND, _cursors.TIME, _cursors.ID)


@cache
def _page_statement(status: tuple[str, ...] | None, descending: bool, keyed: bool) -> Prepared:
    """The sidebar query for one (status filter, direction, keyed or first page), built once:
    the owner, the key and the limit are bind parameters."""
    c = conversations.c
    condition = c.owner_id == bindparam("b_owner")
    if status is None:
        condition &= c.status != _HIDDEN
    else:
        # One bind parameter per status (not an expanding IN): the statement stays fixed.
        condition &= c.status.in_([bindparam(f"b_status{i}", s) for i, s in enumerate(status)])
    key = None
    if keyed:
        key = [bindparam("b_at", type_=UTCDateTime()), bindparam("b_id", type_=Uuid())]
    return Prepared(
        keyset_query(
            select(*_COLUMNS).where(condition),
            [c.last_activity_at, c.id],
            key,
            descending=descending,
            limit=bindparam("b_limit", type_=Integer()),
        )
    )


_LOAD: Final = RecordLoader(Conversation, _COLUMNS)


def _cursor_key(conversation: Conversation) -> tuple[str, str]:
    return (conversation.last_activity_at.isoformat(), conversation.id.hex)


def page(
    conn: Connection,
    owner_id: uuid.UUID,
    *,
    status: tuple[str, ...] | None,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[Conversation]:
    """A keyset page of ``owner_id``'s conversations by last activity."""
    forward = before is None
    key = after if forward else before
    statement = _page_statement(status, (order == "desc") == forward, key is not None)
    params: dict[str, Any] = {"b_owner": owner_id, "b_limit": limit + 1}
    if key is not None:
        params["b_at"], params["b_id"] = key
    return page_of(
        statement.rows(conn, params),
        limit,
        forward=forward,
        kind=_KIND,
        convert=_LOAD(conn.dialect),
        cursor_key=_cursor_key,
    )


#: Reads back the sort key of the all-conversations listing's cursors: the id.
decode_all_cursor = _cursors.decoder("all_conversations", _cursors.ID)


def page_all(
    conn: Connection,
    owner: uuid.UUID | None,
    *,
    status: tuple[str, ...] | None,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[Conversation]:
    """A keyset page of every owner's conversations (``owner``: a user scope's only) by id,
    i.e. creation order: the primary key's range, so a page costs the same at any depth."""
    return paginate(
        conn,
        select(*_COLUMNS).where(_filtered(owner, status)),
        [conversations.c.id],
        kind="all_conversations",
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_conversation,
        cursor_key=lambda conversation: (conversation.id.hex,),
    )


def count(conn: Connection, owner_id: uuid.UUID | None, status: tuple[str, ...] | None) -> int:
    """How many conversations ``owner_id`` has (``None``: every owner), with the status
    filter."""
    query = select(func.count()).select_from(conversations).where(_filtered(owner_id, status))
    return int(conn.execute(query).scalar_one())
