# This file is generated from ../_async/_feedback.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The feedback resources: ratings of messages, and standalone product-feedback forms."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from .. import _validate as check
from .._ops import feedback as _feedback
from .._ops import product_feedback as _forms
from .._validate import Id
from ..errors import NotFoundError, ValidationError
from ..records import Feedback, FeedbackSummary, Order, Page, ProductFeedback, Thumb

if TYPE_CHECKING:
    from ._store import _Store

__all__ = ["MessageFeedback", "ProductFeedbackForms"]


class MessageFeedback:
    """Ratings of messages: thumbs, scores on a declared scale, categories, comments; one current
    rating per rater per message. In a user scope the rater is that user and only their
    conversations' messages can be rated."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def _rater(self, rater_id: Id | None) -> uuid.UUID:
        bound = self._store._owner
        if rater_id is None:
            if bound is None:
                raise ValidationError("rater_id", "is required outside a user scope")
            return bound
        key = check.identifier("rater_id", rater_id)
        if bound is not None and key != bound:
            raise NotFoundError("user", key)
        return key

    def rate(
        self,
        message_id: Id,
        *,
        rater_id: Id | None = None,
        thumb: Thumb | None = None,
        score: float | None = None,
        scale: tuple[float, float] = (1, 5),
        categories: Sequence[str] | None = None,
        comment: str | None = None,
    ) -> Feedback:
        """Rate a message: a ``thumb`` (``"up"``/``"down"``), a ``score`` on ``scale``
        (``(min, max)``, inclusive; stored with the score), or both; plus up to 20 distinct
        ``categories`` and a ``comment``.

        A rater has one current rating per message: rating again replaces it (same id,
        ``created_at`` kept, ``updated_at`` moved), also when two first ratings race. In a user
        scope the rater is the acting user; outside one ``rater_id`` is required.
        """
        message = check.identifier("message_id", message_id)
        rater = self._rater(rater_id)
        rating = _feedback.prepare_rating(
            thumb=thumb, score=score, scale=scale, categories=categories, comment=comment
        )
        return self._store._call(
            _feedback.rate, self._store._owner, message, rater, rating, write=True
        )

    def for_message(self, message_id: Id) -> builtins.list[Feedback]:
        """Every rater's current rating of the message, oldest first."""
        message = check.identifier("message_id", message_id)
        return self._store._call(_feedback.for_message, self._store._owner, message)

    def get(self, message_id: Id, rater_id: Id | None = None) -> Feedback:
        """The rater's current rating of the message (in a user scope the acting user is the
        default rater). NotFoundError if the rater has not rated it."""
        message = check.identifier("message_id", message_id)
        # Reading another rater's rating of one's own message is allowed; writing is not.
        rater = self._rater(None) if rater_id is None else check.identifier("rater_id", rater_id)
        return self._store._call(_feedback.get, self._store._owner, message, rater)

    def remove(self, message_id: Id, rater_id: Id | None = None) -> None:
        """Delete the rater's rating of the message (in a user scope: the acting user's own).
        NotFoundError if there is none."""
        message = check.identifier("message_id", message_id)
        rater = self._rater(rater_id)
        self._store._call(
            _feedback.remove,
            self._store._owner,
            message,
            rater,
            write=True,
            settle=_feedback.removed(message, rater),
        )

    def summary(
        self,
        by: Literal["conversation", "model", "day"],
        *,
        conversation_id: Id | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> builtins.list[FeedbackSummary]:
        """Ratings aggregated per conversation (key: its id), per model of the rated message
        (``''`` for none) or per UTC day of the rating (``'YYYY-MM-DD'``), ordered by key.

        Each group counts its ratings and thumbs up/down. ``average_score`` is the mean of the
        scores normalised to 0..1 on their own scale, ``(score - min) / (max - min)``, so
        ratings on different scales aggregate; ``None`` when no rating has a score. ``since``
        (inclusive) and ``until`` (exclusive) bound the ratings' ``created_at``. In a user
        scope, only the acting user's conversations count.
        """
        grouping = check.choice("by", by, _feedback.SUMMARY_KEYS)
        conversation = (
            None
            if conversation_id is None
            else check.identifier("conversation_id", conversation_id)
        )
        start, end = _feedback.window(since, until)
        return self._store._call(
            _feedback.summary,
            self._store._owner,
            grouping,
            conversation_id=conversation,
            since=start,
            until=end,
        )


class ProductFeedbackForms:
    """Standalone product-feedback forms, as anonymous visitors or agents submit them."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def submit(
        self,
        agent_name: str,
        *,
        agent_type: str | None = None,
        issues: str | None = None,
        feature_requests: str | None = None,
        additional_comments: str | None = None,
        usability_rating: int | None = None,
    ) -> ProductFeedback:
        """Store a form. ``agent_name`` is required (at most 100 characters, stored trimmed),
        ``agent_type`` at most 500, each free-text field at most 2,000, ``usability_rating``
        an integer from 1 to 10."""
        form = _forms.prepare(
            agent_name=agent_name,
            agent_type=agent_type,
            issues=issues,
            feature_requests=feature_requests,
            additional_comments=additional_comments,
            usability_rating=usability_rating,
        )
        return self._store._call(_forms.submit, form, write=True, settle=_forms.SUBMITTED)

    def get(self, feedback_id: Id) -> ProductFeedback:
        """The form with this id."""
        key = check.identifier("feedback_id", feedback_id)
        return self._store._call(_forms.get, key)

    def list(self, *, limit: int = 20) -> builtins.list[ProductFeedback]:
        """The newest ``limit`` forms, newest first (:meth:`page` reads further)."""
        return (self.page(limit=limit)).items

    def page(
        self,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: Order = "desc",
    ) -> Page[ProductFeedback]:
        """A page of forms by submission time, newest first by default; pass
        ``after=page.last_cursor`` for the next one."""
        keys = check.paging(_forms.decode_cursor, after, before, limit, self._store.limits)
        return self._store._call(_forms.page, order=check.order(order), **keys)
