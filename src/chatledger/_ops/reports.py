"""Reports for people reading the ledger (the console): a conversation's ratings and citations
in one read each, ratings to review (thumbs-down first) and the heaviest users and
conversations by usage.

Every function takes ``owner``: ``None`` reads across users, a user id restricts to that user's
conversations (the ``as_user`` rule: anything else does not exist).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, case, func, null, select

from .._schema import citations, conversations, message_feedback, messages
from ..records import Citation, Feedback
from . import messages as _messages
from ._common import from_row, record_columns

__all__ = [
    "Annotations",
    "Rated",
    "TopUsage",
    "conversation_notes",
    "notes_of",
    "ratings",
    "top_usage",
]

_FEEDBACK = record_columns(message_feedback, Feedback)
_CITATIONS = record_columns(citations, Citation)


@dataclass(frozen=True, slots=True)
class Annotations:
    """A conversation's ratings and citations, per message id (ratings oldest first,
    citations by rank)."""

    feedback: dict[uuid.UUID, list[Feedback]]
    citations: dict[uuid.UUID, list[Citation]]


def conversation_notes(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID
) -> Annotations:
    """Every rating and citation of the conversation (two indexed reads, by
    ``conversation_id``); ``NotFoundError`` when it is not ``owner``'s."""
    _messages.require_conversation(conn, owner, conversation_id)
    return notes_of(conn, conversation_id)


def notes_of(conn: Connection, conversation_id: uuid.UUID) -> Annotations:
    """Every rating and citation of the conversation, unscoped (the caller checked it)."""
    f, k = message_feedback.c, citations.c
    ratings: dict[uuid.UUID, list[Feedback]] = defaultdict(list)
    query = select(*_FEEDBACK).where(f.conversation_id == conversation_id)
    for row in conn.execute(query.order_by(f.created_at, f.id)):
        rating = from_row(Feedback, row)
        ratings[rating.message_id].append(rating)
    cited: dict[uuid.UUID, list[Citation]] = defaultdict(list)
    unranked = case((k.rank.is_(None), 1), else_=0)
    query = select(*_CITATIONS).where(k.conversation_id == conversation_id)
    for row in conn.execute(query.order_by(unranked, k.rank, k.created_at, k.id)):
        citation = from_row(Citation, row)
        cited[citation.message_id].append(citation)
    return Annotations(feedback=dict(ratings), citations=dict(cited))


@dataclass(frozen=True, slots=True)
class Rated:
    """A rating with what a reviewer needs beside it: the rated message's seq, role, model and
    the start of its content, and its conversation's title."""

    feedback: Feedback
    seq: int
    role: str
    model: str | None
    excerpt: str
    conversation_title: str | None


#: How many characters of the rated message a review shows.
EXCERPT_CHARS = 280


def ratings(
    conn: Connection,
    owner: uuid.UUID | None,
    *,
    thumb: Literal["up", "down"] | None,
    category: str | None,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[Rated], bool]:
    """A page of ratings, thumbs-down first, then the newest first, and whether more follow.
    Filters: the thumb, a category the rating names, the rated message's model (``''``: none)
    and the rating's ``created_at`` window. Categories are JSON lists (no portable index), so
    that filter is applied to the rows the others select."""
    f, m, c = message_feedback.c, messages.c, conversations.c
    query = (
        select(
            *_FEEDBACK, m.seq, m.role, m.model, func.substr(m.content, 1, EXCERPT_CHARS), c.title
        )
        .select_from(message_feedback)
        .join(messages, m.id == f.message_id)
        .join(conversations, c.id == f.conversation_id)
    )
    if owner is not None:
        query = query.where(c.owner_id == owner)
    if thumb is not None:
        query = query.where(f.thumb == thumb)
    if model is not None:
        query = query.where(func.coalesce(m.model, "") == model)
    if since is not None:
        query = query.where(f.created_at >= since)
    if until is not None:
        query = query.where(f.created_at < until)
    down_first = case((f.thumb == "down", 0), else_=1)
    query = query.order_by(down_first, f.created_at.desc(), f.id.desc())
    if category is None:
        query = query.limit(limit + 1).offset(offset)
    width = len(_FEEDBACK)
    found: list[Rated] = []
    skipped = 0
    for row in conn.execute(query):
        rating = Feedback(*row[:width])
        if category is not None:
            if category not in (rating.categories or ()):
                continue
            if skipped < offset:
                skipped += 1
                continue
        seq, role, rated_model, excerpt, title = row[width:]
        found.append(Rated(rating, seq, role, rated_model, excerpt, title))
        if len(found) > limit:
            break
    return found[:limit], len(found) > limit


@dataclass(frozen=True, slots=True)
class TopUsage:
    """One of the heaviest users or conversations: its id, title (conversations) and totals."""

    key: uuid.UUID
    title: str | None
    messages: int
    tokens: int
    cost: Decimal


def top_usage(
    conn: Connection,
    by: Literal["user", "conversation"],
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[TopUsage]:
    """The ``limit`` users (conversation owners) or conversations with the highest cost (then
    tokens) over the messages' ``created_at`` window, across all users."""
    m, c = messages.c, conversations.c
    tokens = func.sum(func.coalesce(m.input_tokens, 0) + func.coalesce(m.output_tokens, 0))
    cost = func.sum(m.cost, type_=messages.c.cost.type)
    key: Any = c.owner_id if by == "user" else c.id
    title: Any = func.max(c.title) if by == "conversation" else null()
    query = (
        select(key, title, func.count(), tokens, cost)
        .select_from(messages)
        .join(conversations, c.id == m.conversation_id)
    )
    if since is not None:
        query = query.where(m.created_at >= since)
    if until is not None:
        query = query.where(m.created_at < until)
    query = query.group_by(key).order_by(func.coalesce(cost, 0).desc(), tokens.desc()).limit(limit)
    return [
        TopUsage(
            key=row[0],
            title=row[1],
            messages=int(row[2]),
            tokens=int(row[3] or 0),
            cost=Decimal(0) if row[4] is None else row[4],
        )
        for row in conn.execute(query)
    ]
