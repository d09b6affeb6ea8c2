"""Feedback: ratings of messages (one current rating per rater per message), their aggregates,
and a message read back with its ratings and citations. (Standalone product-feedback forms
are :mod:`.product_feedback`.)

Rating again replaces the rater's rating in place (same id, ``created_at`` kept). It is
race-safe without dialect-specific upserts: update the existing row; if there is none, insert
inside a savepoint; if a concurrent first rating won the unique key meanwhile, roll back to the
savepoint and update the row it committed.
"""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    case,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from .. import _ids
from .. import _validate as check
from .._backends import backend_of
from .._schema import (
    CATEGORY_MAX,
    FEEDBACK_COMMENT_MAX,
    THUMBS,
    conversations,
    message_feedback,
    messages,
    users,
)
from ..errors import NotFoundError, ValidationError
from ..records import Feedback, FeedbackSummary, MessageDetail
from . import _once
from . import citations as _citations
from . import messages as _messages
from ._common import from_row, record_columns, record_values, utcnow

__all__ = [
    "MAX_CATEGORIES",
    "SUMMARY_KEYS",
    "Rating",
    "detail",
    "for_message",
    "get",
    "prepare_rating",
    "rate",
    "remove",
    "summary",
    "window",
]

#: Most categories one rating may carry.
MAX_CATEGORIES: Final = 20
#: The groupings :func:`summary` offers.
SUMMARY_KEYS: Final = ("conversation", "model", "day")

_COLUMNS: Final = record_columns(message_feedback, Feedback)


# --- validation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rating:
    """A validated rating, ready to store. ``scale_min``/``scale_max`` are set with a score."""

    thumb: str | None
    score: float | None
    scale_min: float | None
    scale_max: float | None
    categories: list[str] | None
    comment: str | None


def _finite(field: str, value: object) -> float:
    """A finite real number (``bool`` is not one), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(field, f"must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except (OverflowError, ValueError):
        raise ValidationError(field, f"{value!r} is not representable as a float") from None
    if not math.isfinite(number):
        raise ValidationError(field, "must be finite")
    return number


def _scale(value: object) -> tuple[float, float]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValidationError("scale", "must be a pair (min, max)")
    low, high = _finite("scale", value[0]), _finite("scale", value[1])
    if not low < high:
        raise ValidationError("scale", f"min {low:g} must be less than max {high:g}")
    return low, high


def _categories(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValidationError(
            "categories", f"must be a list of strings, not {type(value).__name__}"
        )
    if len(value) > MAX_CATEGORIES:
        raise ValidationError(
            "categories",
            f"{len(value)} categories exceeds the limit of {MAX_CATEGORIES}",
            limit=MAX_CATEGORIES,
        )
    result: list[str] = []
    for index, item in enumerate(value):
        try:
            name = check.nonblank("categories", item, CATEGORY_MAX)
        except ValidationError as exc:
            raise ValidationError(
                "categories", f"item {index}: {exc.problem}", limit=exc.limit
            ) from None
        if name in result:
            raise ValidationError("categories", f"item {index}: {name!r} is given twice")
        result.append(name)
    return result


def prepare_rating(
    *,
    thumb: object,
    score: object,
    scale: object,
    categories: object,
    comment: object,
) -> Rating:
    """Validate a rating before anything is read or written."""
    low, high = _scale(scale)
    thumb_value = None if thumb is None else check.choice("thumb", thumb, THUMBS)
    score_value: float | None = None
    if score is not None:
        score_value = _finite("score", score)
        if not low <= score_value <= high:
            raise ValidationError(
                "score",
                f"{score_value:g} is outside the scale {low:g}..{high:g}",
                limit=low if score_value < low else high,
            )
    if thumb_value is None and score_value is None:
        raise ValidationError("thumb", "give a thumb, a score, or both")
    return Rating(
        thumb=thumb_value,
        score=score_value,
        scale_min=None if score_value is None else low,
        scale_max=None if score_value is None else high,
        categories=_categories(categories),
        comment=check.optional_text("comment", comment, FEEDBACK_COMMENT_MAX),
    )


def window(since: object, until: object) -> tuple[datetime | None, datetime | None]:
    """Validate a time window: ``since`` inclusive, ``until`` exclusive, both aware."""
    start = check.optional_aware_datetime("since", since)
    end = check.optional_aware_datetime("until", until)
    if start is not None and end is not None and end < start:
        raise ValidationError("until", "must not be before since")
    return start, end


# --- ratings ----------------------------------------------------------------------------------


def _to_feedback(row: Row[Any]) -> Feedback:
    return from_row(Feedback, row)


def _visible_message(owner: uuid.UUID | None, message_id: uuid.UUID) -> Any:
    """``SELECT messages.conversation_id`` of the message (of ``owner``'s conversations)."""
    m, c = messages.c, conversations.c
    query = select(m.conversation_id).where(m.id == message_id)
    if owner is not None:
        query = query.join(conversations, c.id == m.conversation_id).where(c.owner_id == owner)
    return query


def _require_message(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> None:
    if conn.execute(_visible_message(owner, message_id)).first() is None:
        raise NotFoundError("message", message_id)


def _owned_feedback(owner: uuid.UUID | None) -> ColumnElement[bool] | None:
    """The condition that a rating lies in ``owner``'s conversations (None: no scope)."""
    if owner is None:
        return None
    c = conversations.c
    return exists().where(c.id == message_feedback.c.conversation_id, c.owner_id == owner)


def _changes(rating: Rating, now: datetime) -> dict[str, Any]:
    return {
        "thumb": rating.thumb,
        "score": rating.score,
        "scale_min": rating.scale_min,
        "scale_max": rating.scale_max,
        "categories": rating.categories,
        "comment": rating.comment,
        "updated_at": now,
    }


def _replace(
    conn: Connection, message_id: uuid.UUID, rater_id: uuid.UUID, rating: Rating
) -> Feedback | None:
    """Overwrite the rater's existing rating; ``None`` if there is none."""
    f = message_feedback.c
    stmt = (
        update(message_feedback)
        .where(f.message_id == message_id, f.rater_id == rater_id)
        .values(_changes(rating, utcnow()))
    )
    if backend_of(conn).update_returning:
        row = conn.execute(stmt.returning(*_COLUMNS)).first()
        return None if row is None else _to_feedback(row)
    if conn.execute(stmt).rowcount != 1:
        return None
    return _select_one(conn, message_id, rater_id)


def _select_one(conn: Connection, message_id: uuid.UUID, rater_id: uuid.UUID) -> Feedback | None:
    f = message_feedback.c
    query = select(*_COLUMNS).where(f.message_id == message_id, f.rater_id == rater_id)
    row = conn.execute(query).first()
    return None if row is None else _to_feedback(row)


def rate(
    conn: Connection,
    owner: uuid.UUID | None,
    message_id: uuid.UUID,
    rater_id: uuid.UUID,
    rating: Rating,
) -> Feedback:
    """Store ``rater_id``'s rating of the message, replacing the rater's previous one."""
    rater_known = exists().where(users.c.id == rater_id)
    found = conn.execute(
        _visible_message(owner, message_id).add_columns(rater_known.label("rater"))
    ).first()
    if found is None:
        raise NotFoundError("message", message_id)
    conversation_id, rater_exists = found
    if not rater_exists:
        raise NotFoundError("user", rater_id)
    replaced = _replace(conn, message_id, rater_id, rating)
    if replaced is not None:
        return replaced
    now = utcnow()
    feedback = Feedback(
        id=_ids.new_id(),
        conversation_id=conversation_id,
        message_id=message_id,
        rater_id=rater_id,
        thumb=rating.thumb,  # type: ignore[arg-type]  # validated against THUMBS
        score=rating.score,
        scale_min=rating.scale_min,
        scale_max=rating.scale_max,
        categories=rating.categories,
        comment=rating.comment,
        created_at=now,
        updated_at=now,
    )
    try:
        with conn.begin_nested():
            conn.execute(message_feedback.insert(), record_values(feedback))
    except IntegrityError as exc:
        violation = backend_of(conn).violation(exc)
        if violation.kind == "foreign_key":
            # The message or the rater was deleted since we looked.
            if violation.name and "rater" in violation.name:
                raise NotFoundError("user", rater_id) from exc
            raise NotFoundError("message", message_id) from exc
        if violation.kind != "unique":
            raise
        # A concurrent first rating by the same rater committed: replace it.
        replaced = _replace(conn, message_id, rater_id, rating)
        if replaced is None:
            raise
        return replaced
    return feedback


def _ratings_of(owner: uuid.UUID | None, message_id: uuid.UUID) -> Any:
    f = message_feedback.c
    query = select(*_COLUMNS).where(f.message_id == message_id)
    scoped = _owned_feedback(owner)
    if scoped is not None:
        query = query.where(scoped)
    return query.order_by(f.created_at, f.id)


def for_message(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> list[Feedback]:
    """Every rater's current rating of the message, oldest first."""
    rows = conn.execute(_ratings_of(owner, message_id)).all()
    if not rows:
        _require_message(conn, owner, message_id)
    return [_to_feedback(row) for row in rows]


def get(
    conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID, rater_id: uuid.UUID
) -> Feedback:
    """The rater's current rating of the message."""
    query = _ratings_of(owner, message_id).where(message_feedback.c.rater_id == rater_id)
    row = conn.execute(query).first()
    if row is None:
        _require_message(conn, owner, message_id)
        raise NotFoundError("feedback")
    return _to_feedback(row)


def remove(
    conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID, rater_id: uuid.UUID
) -> None:
    """Delete the rater's rating of the message."""
    f = message_feedback.c
    stmt = delete(message_feedback).where(f.message_id == message_id, f.rater_id == rater_id)
    scoped = _owned_feedback(owner)
    if scoped is not None:
        stmt = stmt.where(scoped)
    if conn.execute(stmt).rowcount != 1:
        _require_message(conn, owner, message_id)
        raise NotFoundError("feedback")


def _removed(
    conn: Connection, drawn: list[Any], message_id: uuid.UUID, rater_id: uuid.UUID
) -> _once.NotWritten | None:
    f = message_feedback.c
    row = conn.execute(
        select(f.id).where(f.message_id == message_id, f.rater_id == rater_id)
    ).first()
    return None if row is None else _once.NOT_WRITTEN


def removed(message_id: uuid.UUID, rater_id: uuid.UUID) -> _once.Settle[None]:
    """How a retried :func:`remove` learns that an earlier attempt deleted the rating."""
    return _once.Settle("feedback removal", _removed, (message_id, rater_id))


def summary(
    conn: Connection,
    owner: uuid.UUID | None,
    by: Literal["conversation", "model", "day"],
    *,
    conversation_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
) -> list[FeedbackSummary]:
    """Ratings aggregated per conversation, per model of the rated message, or per UTC day of
    the rating's ``created_at``; ordered by key. Scores are normalised to 0..1 on their own
    scale before averaging, so ratings on different scales aggregate."""
    f, m, c = message_feedback.c, messages.c, conversations.c
    if conversation_id is not None:
        _messages.require_conversation(conn, owner, conversation_id)
    key: ColumnElement[Any]
    if by == "conversation":
        key = f.conversation_id
    elif by == "model":
        key = func.coalesce(m.model, "")
    else:
        key = backend_of(conn).day(f.created_at)
    keyed = key.label("group_key")
    normalised = (f.score - f.scale_min) / func.nullif(f.scale_max - f.scale_min, 0)
    query = select(
        keyed,
        func.count(),
        func.sum(case((f.thumb == "up", 1), else_=0)),
        func.sum(case((f.thumb == "down", 1), else_=0)),
        func.avg(normalised),
    ).select_from(message_feedback)
    if by == "model":
        query = query.join(messages, m.id == f.message_id)
    if owner is not None:
        query = query.join(conversations, c.id == f.conversation_id).where(c.owner_id == owner)
    if conversation_id is not None:
        query = query.where(f.conversation_id == conversation_id)
    if since is not None:
        query = query.where(f.created_at >= since)
    if until is not None:
        query = query.where(f.created_at < until)
    rows = conn.execute(query.group_by(keyed)).all()
    result = [
        FeedbackSummary(
            key=str(group),
            ratings=int(ratings),
            thumbs_up=int(up or 0),
            thumbs_down=int(down or 0),
            average_score=None if average is None else float(average),
        )
        for group, ratings, up, down, average in rows
    ]
    result.sort(key=lambda item: item.key)
    return result


def detail(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> MessageDetail:
    """The message with its ratings (oldest first) and citations (by rank)."""
    message = _messages.get(conn, owner, message_id)
    ratings = [_to_feedback(row) for row in conn.execute(_ratings_of(None, message_id))]
    return MessageDetail(
        message=message,
        feedback=ratings,
        citations=_citations.of_message(conn, message_id),
    )
