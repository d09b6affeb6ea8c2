# This file is generated from ../_async/_usage.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The usage resource: token and cost totals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from .. import _validate as check
from .._ops import feedback as _feedback
from .._ops import usage as _usage
from .._schema import MODEL_MAX
from .._validate import Id
from ..errors import NotFoundError
from ..records import UsageTotals

if TYPE_CHECKING:
    from ._store import _Store

__all__ = ["Usage"]


@dataclass(frozen=True, slots=True)
class _Filters:
    user_id: uuid.UUID | None
    conversation_id: uuid.UUID | None
    model: str | None
    since: datetime | None
    until: datetime | None


class Usage:
    """Token and cost totals per conversation, user, model and UTC day (exact decimals). In a user
    scope, over that user's conversations only."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def _filters(
        self,
        user_id: Id | None,
        conversation_id: Id | None,
        model: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> _Filters:
        user = None if user_id is None else check.identifier("user_id", user_id)
        bound = self._store._owner
        if bound is not None and user is not None and user != bound:
            raise NotFoundError("user", user)
        start, end = _feedback.window(since, until)
        return _Filters(
            user_id=user,
            conversation_id=(
                None
                if conversation_id is None
                else check.identifier("conversation_id", conversation_id)
            ),
            model=check.optional_text("model", model, MODEL_MAX),
            since=start,
            until=end,
        )

    def totals(
        self,
        by: Literal["conversation", "user", "model", "day"],
        *,
        user_id: Id | None = None,
        conversation_id: Id | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageTotals]:
        """Totals per conversation, user (the conversations' owner), model (``''`` for messages
        without one) or UTC day (``'YYYY-MM-DD'``), ordered by key (the id as a string, the
        model name, the day).

        Each group counts its messages (every role) and sums their input and output tokens and
        cost, exactly (missing values count as 0). Filters: the owner ``user_id``, one
        ``conversation_id``, one ``model`` (``''`` selects messages without a model), and the
        messages' ``created_at`` from ``since`` (inclusive) to ``until`` (exclusive). In a user
        scope only the acting user's conversations count.
        """
        grouping = check.choice("by", by, _usage.TOTALS_KEYS)
        chosen = self._filters(user_id, conversation_id, model, since, until)
        return self._store._call(
            _usage.totals,
            self._store._owner,
            grouping,
            user_id=chosen.user_id,
            conversation_id=chosen.conversation_id,
            model=chosen.model,
            since=chosen.since,
            until=chosen.until,
        )

    def overall(
        self,
        *,
        user_id: Id | None = None,
        conversation_id: Id | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageTotals:
        """The totals of all messages the filters of :meth:`totals` select, under the key
        ``''`` (zeros when there are none)."""
        chosen = self._filters(user_id, conversation_id, model, since, until)
        return self._store._call(
            _usage.overall,
            self._store._owner,
            user_id=chosen.user_id,
            conversation_id=chosen.conversation_id,
            model=chosen.model,
            since=chosen.since,
            until=chosen.until,
        )
