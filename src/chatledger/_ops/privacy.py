"""A user's data: export it all, erase it all, and retention of inactive conversations.

Which rows are a user's is said once, per table, in :data:`USER_ROWS`; every table of the
schema is either there or in :data:`NOT_USER_DATA` with the reason, and export and erasure walk
``Base.metadata.sorted_tables``, so a table added later without being classified makes them
fail loudly instead of silently leaving data behind (tests/test_privacy.py checks the
classification against the foreign keys too).
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    Table,
    delete,
    func,
    or_,
    select,
    update,
)

from .. import _validate as check
from .._schema import (
    Base,
    api_keys,
    audit_events,
    citations,
    conversations,
    graph_blobs,
    graph_checkpoints,
    graph_threads,
    graph_writes,
    hidden_messages,
    idempotent_requests,
    message_feedback,
    message_streams,
    messages,
    stream_chunks,
    survey_responses,
    token_balances,
    token_ledger,
    tool_calls,
    users,
)
from ..errors import NotFoundError, ValidationError
from ..records import ErasureReport
from . import audit as _audit
from ._common import utcnow

__all__ = [
    "ERASE_ORDER",
    "EXPORT_FORMAT",
    "NOT_USER_DATA",
    "RETENTION_DAYS_MAX",
    "SECRET_COLUMNS",
    "USER_ROWS",
    "erase",
    "export",
    "retention_arguments",
    "retention_batch",
    "retention_preview",
]

logger = logging.getLogger(__name__)

#: The version of the export document's layout.
EXPORT_FORMAT: Final = 1


def _conversations_of(user_id: uuid.UUID) -> Select[Any]:
    return select(conversations.c.id).where(conversations.c.owner_id == user_id)


def _threads_of(user_id: uuid.UUID) -> Select[Any]:
    return select(graph_threads.c.id).where(
        graph_threads.c.conversation_id.in_(_conversations_of(user_id))
    )


#: Per table holding a user's data: the condition that selects that user's rows.
USER_ROWS: Final[dict[str, Callable[[uuid.UUID], ColumnElement[bool]]]] = {
    "users": lambda u: users.c.id == u,
    "conversations": lambda u: conversations.c.owner_id == u,
    "messages": lambda u: messages.c.conversation_id.in_(_conversations_of(u)),
    # Ratings they gave (on anyone's messages) and ratings of their messages (by anyone).
    "message_feedback": lambda u: or_(
        message_feedback.c.rater_id == u,
        message_feedback.c.conversation_id.in_(_conversations_of(u)),
    ),
    "citations": lambda u: citations.c.conversation_id.in_(_conversations_of(u)),
    "survey_responses": lambda u: survey_responses.c.user_id == u,
    "token_balances": lambda u: token_balances.c.user_id == u,
    "token_ledger": lambda u: token_ledger.c.user_id == u,
    "api_keys": lambda u: api_keys.c.user_id == u,
    "audit_events": lambda u: audit_events.c.user_id == u,
    # Replayable HTTP responses of their API keys (they can hold their messages).
    "idempotent_requests": lambda u: idempotent_requests.c.api_key_id.in_(
        select(api_keys.c.id).where(api_keys.c.user_id == u)
    ),
    # LangGraph threads bound to their conversations, and everything checkpointed in them.
    "graph_threads": lambda u: graph_threads.c.conversation_id.in_(_conversations_of(u)),
    "graph_checkpoints": lambda u: graph_checkpoints.c.thread_key.in_(_threads_of(u)),
    "graph_blobs": lambda u: graph_blobs.c.thread_key.in_(_threads_of(u)),
    "graph_writes": lambda u: graph_writes.c.thread_key.in_(_threads_of(u)),
    "hidden_messages": lambda u: hidden_messages.c.conversation_id.in_(_conversations_of(u)),
    # The tool calls of their assistant messages and the answers' links (docs/tools.md).
    "tool_calls": lambda u: tool_calls.c.conversation_id.in_(_conversations_of(u)),
    # Their streaming replies and the chunks flushed so far.
    "message_streams": lambda u: message_streams.c.conversation_id.in_(_conversations_of(u)),
    "stream_chunks": lambda u: stream_chunks.c.message_id.in_(
        select(message_streams.c.message_id).where(
            message_streams.c.conversation_id.in_(_conversations_of(u))
        )
    ),
}

#: Tables that hold nobody's personal data, and why.
NOT_USER_DATA: Final[dict[str, str]] = {
    "product_feedback": "anonymous forms: no user column",
    "knowledge_chunks": "the application's documents, not a user's",
    "knowledge_sources": "embedding settings of the application's documents",
    "visitors": "anonymous visitors: not linked to users",
    "visitor_answers": "answers of anonymous visitors",
    "audit_chain": "the head of the audit hash chain",
}

#: Columns never exported: credentials.
SECRET_COLUMNS: Final[dict[str, frozenset[str]]] = {
    "users": frozenset({"password_hash"}),
    "api_keys": frozenset({"secret_hash"}),
}

#: Erasure deletes in this order, children first, so cascades find nothing left and every
#: count is exact. ``audit_events`` are redacted, not deleted (the chain must stay verifiable).
ERASE_ORDER: Final = (
    "message_feedback",
    "citations",
    "token_ledger",
    "idempotent_requests",
    "api_keys",
    "survey_responses",
    "graph_writes",
    "graph_blobs",
    "graph_checkpoints",
    "graph_threads",
    "hidden_messages",
    "stream_chunks",
    "message_streams",
    "tool_calls",
    "messages",
    "conversations",
    "token_balances",
    "users",
)
_REDACTED: Final = "audit_events"


def _classified(table: Table) -> bool:
    """Whether ``table`` holds user data; raises for a table nobody classified."""
    if table.name in USER_ROWS:
        return True
    if table.name in NOT_USER_DATA:
        return False
    raise RuntimeError(
        f"table {table.name!r} is not classified for export and erasure: add it to "
        "chatledger._ops.privacy.USER_ROWS or NOT_USER_DATA"
    )


def _json(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def export(conn: Connection, user_id: uuid.UUID) -> dict[str, Any]:
    """Everything stored about one user, as one JSON-serialisable document: per table, the
    user's rows (columns by name; ids, times and decimals as strings; no credentials)."""
    if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
        raise NotFoundError("user", user_id)
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in Base.metadata.sorted_tables:
        if not _classified(table):
            continue
        hidden = SECRET_COLUMNS.get(table.name, frozenset())
        columns = [column for column in table.columns if column.name not in hidden]
        query = (
            select(*columns)
            .where(USER_ROWS[table.name](user_id))
            .order_by(*table.primary_key.columns)
        )
        tables[table.name] = [
            {name: _json(value) for name, value in row._mapping.items()}
            for row in conn.execute(query)
        ]
    return {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "user_id": str(user_id),
        "tables": tables,
    }


#: Conversations locked per statement (the ids go into an IN list).
_LOCK_CHUNK: Final = 1000


def _lock_conversations(conn: Connection, ids: Sequence[uuid.UUID]) -> list[Row[Any]]:
    """Lock conversations by primary key, in key order, and return their current
    (id, status, last_activity_at, message_count). Through the primary key only, never through
    the (owner, last activity) index: on InnoDB an append holds the primary key record and then
    moves its index entry, so a locking read through that index could deadlock with it."""
    c = conversations.c
    wanted = sorted(set(ids))
    rows: list[Row[Any]] = []
    for start in range(0, len(wanted), _LOCK_CHUNK):
        chunk = wanted[start : start + _LOCK_CHUNK]
        rows.extend(
            conn.execute(
                select(c.id, c.status, c.last_activity_at, c.message_count)
                .where(c.id.in_(chunk))
                .order_by(c.id)
                .with_for_update()
            )
        )
    return rows


def erase(conn: Connection, user_id: uuid.UUID) -> ErasureReport:
    """Delete every row of the user's in every table, count them per table, redact the audit
    events that mention the user (keeping the chain verifiable) and record the erasure in the
    audit log without naming the user. One transaction."""
    for table in Base.metadata.sorted_tables:
        if _classified(table) and table.name not in ERASE_ORDER and table.name != _REDACTED:
            raise RuntimeError(f"table {table.name!r} holds user data but erasure skips it")
    # Lock their conversations first, then the user: on InnoDB an append holds the
    # conversation's row and then checks the owner (a shared lock on the user row, as moving
    # the (owner, last activity) index entry checks the foreign key), so the other order would
    # deadlock with it. Appends then wait, and find nothing.
    exists = select(users.c.id).where(users.c.id == user_id)
    identity = conn.execute(
        select(users.c.email, users.c.username, users.c.external_id).where(users.c.id == user_id)
    ).first()
    if identity is None:
        raise NotFoundError("user", user_id)
    theirs = select(conversations.c.id).where(conversations.c.owner_id == user_id)
    held = {row.id for row in _lock_conversations(conn, conn.execute(theirs).scalars().all())}
    if conn.execute(exists.with_for_update()).first() is None:
        raise NotFoundError("user", user_id)
    # Created meanwhile (none can be now: creating one needs the user row).
    _lock_conversations(conn, [i for i in conn.execute(theirs).scalars() if i not in held])
    tables = Base.metadata.tables
    deleted: dict[str, int] = {}
    for name in ERASE_ORDER:
        result = conn.execute(delete(tables[name]).where(USER_ROWS[name](user_id)))
        deleted[name] = int(result.rowcount)
    names = [value for value in identity if value is not None]
    redacted = _audit.redact_user(conn, user_id, names)
    _audit.append(
        conn,
        _audit.NewAuditEvent(
            event_type="user.erased",
            user_id=None,
            category="compliance",
            severity="info",
            description="a user and their data were erased",
            metadata={"deleted": deleted, "redacted_audit_events": redacted},
        ),
    )
    logger.info("erased a user: %s rows deleted, %d audit events redacted", deleted, redacted)
    return ErasureReport(user_id=user_id, deleted=deleted, redacted_audit_events=redacted)


#: Retention works in days from 1 to this (a century).
RETENTION_DAYS_MAX: Final = 36_500
#: Retention actions -> the statuses they apply to (``None``: every status).
_RETAINABLE: Final[dict[str, tuple[str, ...] | None]] = {
    "archive": ("active", "closed"),
    "delete": None,
}


def _whole(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(field, f"{value} is outside {low}..{high}", limit=high)
    return value


def retention_arguments(
    limits: check.Limits, inactive_days: object, action: object, dry_run: object, batch_size: object
) -> tuple[int, Literal["archive", "delete"], int]:
    """Validate a retention run's arguments: (days, action, batch size)."""
    days = _whole("inactive_days", inactive_days, 1, RETENTION_DAYS_MAX)
    kind: Literal["archive", "delete"] = (
        "archive" if check.choice("action", action, tuple(_RETAINABLE)) == "archive" else "delete"
    )
    if not isinstance(dry_run, bool):
        raise ValidationError("dry_run", f"must be a bool, not {type(dry_run).__name__}")
    size = _whole("batch_size", batch_size, 1, limits.max_batch_size)
    return days, kind, size


def _inactive(owner: uuid.UUID | None, cutoff: datetime, action: str) -> ColumnElement[bool]:
    c = conversations.c
    condition = c.last_activity_at < cutoff
    statuses = _RETAINABLE[action]
    if statuses is not None:
        condition = condition & c.status.in_(statuses)
    if owner is not None:
        condition = condition & (c.owner_id == owner)
    return condition


def retention_preview(
    conn: Connection, owner: uuid.UUID | None, cutoff: datetime, action: str
) -> tuple[int, int]:
    """How many conversations (and messages in them) a retention run would touch."""
    query = select(func.count(), func.coalesce(func.sum(conversations.c.message_count), 0)).where(
        _inactive(owner, cutoff, action)
    )
    found, total = conn.execute(query).one()
    return int(found), int(total)


def retention_batch(
    conn: Connection,
    owner: uuid.UUID | None,
    cutoff: datetime,
    action: Literal["archive", "delete"],
    limit: int,
) -> tuple[int, int, int]:
    """Archive or delete up to ``limit`` of the conversations inactive since before ``cutoff``,
    least recently active first. Returns (conversations examined, conversations changed, their
    messages): the rows are locked, then checked again, so one that an append revived
    meanwhile is left alone; fewer examined than ``limit`` means none is left."""
    c = conversations.c
    candidates = (
        conn.execute(
            select(c.id)
            .where(_inactive(owner, cutoff, action))
            .order_by(c.last_activity_at, c.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not candidates:
        return 0, 0, 0
    statuses = _RETAINABLE[action]
    chosen = [
        row
        for row in _lock_conversations(conn, candidates)
        if row.last_activity_at < cutoff and (statuses is None or row.status in statuses)
    ]
    ids = [row.id for row in chosen]
    if not ids:
        return len(candidates), 0, 0
    if action == "delete":
        conn.execute(delete(conversations).where(c.id.in_(ids)))
    else:
        now = utcnow()
        conn.execute(
            update(conversations)
            .where(c.id.in_(ids))
            .values(status="archived", archived_at=now, updated_at=now)
        )
    return len(candidates), len(chosen), sum(int(row.message_count) for row in chosen)
