"""Usage: token and cost totals of messages, per conversation, user, model or UTC day.

Cost sums stay exact: ``SUM`` keeps the :class:`~chatledger._types.Money` type, so on SQLite
(integer billionths) the sum is an exact integer turned back into a decimal, and on PostgreSQL
and MariaDB a ``NUMERIC`` sum. Missing token counts and costs count as zero.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Connection, Select, func, select

from .._backends import backend_of
from .._schema import conversations, messages, users
from .._types import Money
from ..errors import NotFoundError
from ..records import UsageTotals
from . import messages as _messages

__all__ = ["TOTALS_KEYS", "overall", "totals"]

#: The groupings :func:`totals` offers.
TOTALS_KEYS: Final = ("conversation", "user", "model", "day")

Grouping = Literal["conversation", "user", "model", "day"]


def _aggregates() -> list[ColumnElement[Any]]:
    m = messages.c
    return [
        func.count(),
        func.sum(m.input_tokens),
        func.sum(m.output_tokens),
        func.sum(m.cost, type_=Money()),
        func.sum(m.cached_input_tokens),
        func.sum(m.reasoning_tokens),
    ]


def _filtered(
    conn: Connection,
    query: Select[Any],
    owner: uuid.UUID | None,
    *,
    user_id: uuid.UUID | None,
    conversation_id: uuid.UUID | None,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    joined: bool,
) -> Select[Any]:
    """``query`` restricted by the filters; checks that a named user or conversation exists
    (and, in a scope, is the acting user's)."""
    m, c = messages.c, conversations.c
    user = owner if owner is not None else user_id
    known = select(users.c.id).where(users.c.id == user)
    if user is not None and owner is None and conn.execute(known).first() is None:
        raise NotFoundError("user", user)
    if conversation_id is not None:
        _messages.require_conversation(conn, owner, conversation_id)
        query = query.where(m.conversation_id == conversation_id)
    if user is not None or joined:
        query = query.join(conversations, c.id == m.conversation_id)
    if user is not None:
        query = query.where(c.owner_id == user)
    if model is not None:
        query = query.where(func.coalesce(m.model, "") == model)
    if since is not None:
        query = query.where(m.created_at >= since)
    if until is not None:
        query = query.where(m.created_at < until)
    return query


def _totals(key: str, row: Any) -> UsageTotals:
    count, input_tokens, output_tokens, cost, cached_input_tokens, reasoning_tokens = row
    return UsageTotals(
        key=key,
        messages=int(count),
        input_tokens=int(input_tokens or 0),
        output_tokens=int(output_tokens or 0),
        cost=Decimal(0) if cost is None else cost,
        cached_input_tokens=int(cached_input_tokens or 0),
        reasoning_tokens=int(reasoning_tokens or 0),
    )


def totals(
    conn: Connection,
    owner: uuid.UUID | None,
    by: Grouping,
    *,
    user_id: uuid.UUID | None,
    conversation_id: uuid.UUID | None,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[UsageTotals]:
    """Totals per group, ordered by key. Keys: the conversation or user id, the model name
    (``''`` for messages without one), or the UTC day ``'YYYY-MM-DD'``."""
    m, c = messages.c, conversations.c
    key: ColumnElement[Any]
    if by == "conversation":
        key = m.conversation_id
    elif by == "user":
        key = c.owner_id
    elif by == "model":
        key = func.coalesce(m.model, "")
    else:
        key = backend_of(conn).day(m.created_at)
    keyed = key.label("group_key")
    query = _filtered(
        conn,
        select(keyed, *_aggregates()).select_from(messages),
        owner,
        user_id=user_id,
        conversation_id=conversation_id,
        model=model,
        since=since,
        until=until,
        joined=by == "user",
    )
    rows = conn.execute(query.group_by(keyed)).all()
    result = [_totals(str(row[0]), row[1:]) for row in rows]
    result.sort(key=lambda item: item.key)
    return result


def overall(
    conn: Connection,
    owner: uuid.UUID | None,
    *,
    user_id: uuid.UUID | None,
    conversation_id: uuid.UUID | None,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
) -> UsageTotals:
    """The totals of every message the filters select, under the key ``''``."""
    query = _filtered(
        conn,
        select(*_aggregates()).select_from(messages),
        owner,
        user_id=user_id,
        conversation_id=conversation_id,
        model=model,
        since=since,
        until=until,
        joined=False,
    )
    return _totals("", conn.execute(query).one())
