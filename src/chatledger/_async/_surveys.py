"""The surveys resource: users' answers to named surveys, with optional token grants."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import _validate as check
from .._ops import surveys as _surveys
from .._schema import SURVEY_NAME_MAX
from .._validate import Id
from ..errors import ValidationError
from ..records import Order, Page, SurveyResponse
from ._tokens import acting_user

if TYPE_CHECKING:
    from ._store import _AsyncStore

__all__ = ["AsyncSurveys"]


class AsyncSurveys:
    """Users' answers to named surveys. A survey can grant tokens, at most once per user per
    survey, in the same transaction as the answers. In a user scope, that user's only."""

    def __init__(self, store: _AsyncStore) -> None:
        self._store = store

    async def submit(
        self,
        survey: str,
        answers: Mapping[str, Any],
        *,
        user_id: Id | None = None,
        grant: int = 0,
    ) -> SurveyResponse:
        """Store the user's ``answers`` (a JSON object) to ``survey`` (a name, stripped, up to
        100 characters).

        With ``grant > 0`` the user's balance is credited in the same transaction, under the
        grant key ``"survey:<survey>"``: the first submission of a survey grants, later ones
        store their answers with ``tokens_granted == 0``.
        """
        user = acting_user(self._store, user_id)
        name = check.nonblank("survey", survey, SURVEY_NAME_MAX)
        stored = check.metadata("answers", answers, self._store.limits)
        if stored is None:
            raise ValidationError("answers", "is required (a mapping)")
        tokens = check.token_amount("grant", grant, minimum=0)
        return await self._store._call(
            _surveys.submit, user, name, stored, tokens, write=True, settle=_surveys.SUBMITTED
        )

    async def get(self, response_id: Id) -> SurveyResponse:
        """The survey response with this id."""
        key = check.identifier("response_id", response_id)
        return await self._store._call(_surveys.get, self._store._owner, key)

    async def list(
        self,
        *,
        user_id: Id | None = None,
        survey: str | None = None,
        limit: int = 100,
        after: str | None = None,
        before: str | None = None,
        order: Order = "desc",
    ) -> Page[SurveyResponse]:
        """A page of responses by submission time, newest first by default: of ``user_id``
        (in a user scope, of that user; on a ledger without ``user_id``, of every user), of
        one ``survey`` if given. Follow ``after=page.last_cursor`` for the next page."""
        user = None
        if user_id is not None or self._store._owner is not None:
            user = acting_user(self._store, user_id)
        name = None if survey is None else check.nonblank("survey", survey, SURVEY_NAME_MAX)
        keys = check.paging(_surveys.decode_cursor, after, before, limit, self._store.limits)
        return await self._store._call(_surveys.page, user, name, order=check.order(order), **keys)
