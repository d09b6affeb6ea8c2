"""A user's tokens, usage totals and survey responses."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from ..._schema import MODEL_MAX, SURVEY_NAME_MAX
from ...records import SurveyResponse, TokenEntry, UsageTotals
from ..auth import Admin, Caller, audit
from ..errors import ERROR_RESPONSES, ApiError
from ..models import NO_NUL, NOT_BLANK, PageOut, SurveySubmit, TokenCredit, TokenDebit, page_out
from ._params import After, Before, Limit, Order, Since, Until

__all__ = ["router"]

router = APIRouter(responses={403: ERROR_RESPONSES[403], 409: ERROR_RESPONSES[409]})

SurveyPath = Path(
    min_length=1, max_length=SURVEY_NAME_MAX, pattern=NOT_BLANK, description="The survey's name."
)


class Balance(BaseModel):
    """A user's token balance."""

    user_id: uuid.UUID
    balance: int


@router.get("/tokens/balance", tags=["tokens"])
async def token_balance(caller: Caller, user_id: uuid.UUID | None = None) -> Balance:
    """The caller's token balance (an admin key may give ``user_id``)."""
    user = caller.user_id(user_id)
    return Balance(user_id=user, balance=await caller.store.tokens.balance(user))


@router.get("/tokens/ledger", tags=["tokens"])
async def token_ledger(
    caller: Caller,
    user_id: uuid.UUID | None = None,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
) -> PageOut[TokenEntry]:
    """A page of the caller's token ledger entries, newest first by default."""
    page = await caller.store.tokens.history(
        user_id=caller.user_id(user_id), limit=limit, after=after, before=before, order=order
    )
    return PageOut[TokenEntry].model_validate(page_out(page))


@router.post("/tokens/credit", tags=["tokens"], status_code=201)
async def credit_tokens(body: TokenCredit, caller: Admin) -> TokenEntry:
    """Credit a user's tokens (admin). With ``grant_key``, at most once per user and key."""
    entry = await caller.ledger.tokens.credit(
        body.amount, user_id=body.user_id, reason=body.reason, grant_key=body.grant_key
    )
    await audit(
        caller.ledger,
        "admin.tokens_credited",
        user_id=caller.user.id,
        metadata={"target_user_id": str(body.user_id), "amount": body.amount},
    )
    return entry


@router.post("/tokens/debit", tags=["tokens"], status_code=201)
async def debit_tokens(body: TokenDebit, caller: Admin) -> TokenEntry:
    """Debit a user's tokens (admin); 409 ``insufficient_balance`` when they do not cover it."""
    entry = await caller.ledger.tokens.debit(body.amount, user_id=body.user_id, reason=body.reason)
    await audit(
        caller.ledger,
        "admin.tokens_debited",
        user_id=caller.user.id,
        metadata={"target_user_id": str(body.user_id), "amount": body.amount},
    )
    return entry


@router.get("/usage", tags=["usage"])
async def usage_overall(
    caller: Caller,
    user_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    model: Annotated[str | None, Query(max_length=MODEL_MAX, pattern=NO_NUL)] = None,
    since: Since = None,
    until: Until = None,
) -> UsageTotals:
    """Token and cost totals of the caller's messages (an admin key: of everyone, or of
    ``user_id``), filtered by conversation, model and time."""
    user = None if user_id is None and caller.is_admin else caller.user_id(user_id)
    return await caller.store.usage.overall(
        user_id=user, conversation_id=conversation_id, model=model, since=since, until=until
    )


@router.get("/usage/totals", tags=["usage"])
async def usage_totals(
    caller: Caller,
    by: Literal["conversation", "user", "model", "day"],
    user_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    model: Annotated[str | None, Query(max_length=MODEL_MAX, pattern=NO_NUL)] = None,
    since: Since = None,
    until: Until = None,
) -> list[UsageTotals]:
    """Totals per conversation, user, model or UTC day, with the filters of ``/usage``."""
    user = None if user_id is None and caller.is_admin else caller.user_id(user_id)
    return await caller.store.usage.totals(
        by, user_id=user, conversation_id=conversation_id, model=model, since=since, until=until
    )


@router.post("/surveys/{survey}/responses", tags=["surveys"], status_code=201)
async def submit_survey(
    survey: Annotated[str, SurveyPath], body: SurveySubmit, caller: Caller
) -> SurveyResponse:
    """Store the caller's answers to ``survey``. ``grant`` (admin keys only; 403 otherwise)
    credits that many tokens with the first submission of the survey by the user."""
    if body.grant and not caller.is_admin:
        raise ApiError(403, "forbidden", "grant: only an admin key may grant tokens", field="grant")
    return await caller.store.surveys.submit(
        survey, body.answers, user_id=caller.user_id(body.user_id), grant=body.grant
    )


@router.get("/survey-responses", tags=["surveys"])
async def list_survey_responses(
    caller: Caller,
    user_id: uuid.UUID | None = None,
    survey: Annotated[
        str | None, Query(min_length=1, max_length=SURVEY_NAME_MAX, pattern=NOT_BLANK)
    ] = None,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
) -> PageOut[SurveyResponse]:
    """A page of the caller's survey responses, newest first by default (an admin key:
    everyone's, or ``user_id``'s), of one ``survey`` if given."""
    user = None if user_id is None and caller.is_admin else caller.user_id(user_id)
    page = await caller.store.surveys.list(
        user_id=user, survey=survey, limit=limit, after=after, before=before, order=order
    )
    return PageOut[SurveyResponse].model_validate(page_out(page))


@router.get("/survey-responses/{response_id}", tags=["surveys"])
async def get_survey_response(response_id: uuid.UUID, caller: Caller) -> SurveyResponse:
    """One survey response."""
    return await caller.store.surveys.get(response_id)
