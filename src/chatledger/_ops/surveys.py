"""Survey responses, and the token grants a survey can make.

A submission with a grant is one transaction: lock the user's balance row (creating it if
missing), look up the grant key ``survey:<name>`` in the user's ledger under that lock, insert
the response (``tokens_granted`` = the grant, or 0 when the key was used before), then credit
the balance and write the ledger entry. Racing submissions queue on the balance row lock, and
under READ COMMITTED each sees the grant the one before it committed, so the grant happens at
most once per user and survey without a failed statement (which would abort a PostgreSQL
transaction). ``UNIQUE (user_id, grant_key)`` on the ledger backs this up.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import IntegrityError

from .. import _cursors, _ids
from .._backends import backend_of
from .._schema import survey_responses
from ..errors import NotFoundError
from ..records import Order, Page, SurveyResponse
from . import _once
from . import tokens as _tokens
from ._common import from_row, paginate, record_columns, record_values, utcnow

__all__ = ["decode_cursor", "get", "grant_key", "page", "submit"]

_COLUMNS: Final = record_columns(survey_responses, SurveyResponse)


def grant_key(survey: str) -> str:
    """The ledger grant key of a survey: at most one grant per user and key."""
    return f"survey:{survey}"


#: A retried submission learns whether an earlier attempt committed (see ``_once``).
SUBMITTED: Final = _once.inserted("survey response", survey_responses, SurveyResponse)


def submit(
    conn: Connection,
    user_id: uuid.UUID,
    survey: str,
    answers: dict[str, Any],
    grant: int,
) -> SurveyResponse:
    """Store a response; with ``grant > 0``, credit the user in the same transaction unless
    this survey granted the user tokens before."""
    granted = 0
    key = grant_key(survey)
    if grant > 0:
        _tokens.lock_balance(conn, user_id)
        if _tokens.find_grant(conn, user_id, key) is None:
            granted = grant
    response = SurveyResponse(
        id=_ids.new_id(),
        user_id=user_id,
        survey=survey,
        answers=answers,
        tokens_granted=granted,
        submitted_at=utcnow(),
    )
    try:
        conn.execute(survey_responses.insert(), record_values(response))
    except IntegrityError as exc:
        if backend_of(conn).violation(exc).kind == "foreign_key":
            raise NotFoundError("user", user_id) from exc
        raise
    if granted:
        _tokens.apply_credit(
            conn,
            user_id,
            granted,
            f"survey grant: {survey}",
            grant_key=key,
            survey_response_id=response.id,
        )
    return response


def _to_response(row: Row[Any]) -> SurveyResponse:
    return from_row(SurveyResponse, row)


def get(conn: Connection, owner: uuid.UUID | None, response_id: uuid.UUID) -> SurveyResponse:
    """One response by id (in a user scope, only the user's)."""
    s = survey_responses.c
    query = select(*_COLUMNS).where(s.id == response_id)
    if owner is not None:
        query = query.where(s.user_id == owner)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError("survey_response", response_id)
    return _to_response(row)


#: Reads back the sort key of this listing's cursors: (submitted at, id).
decode_cursor = _cursors.decoder("survey_responses", _cursors.TIME, _cursors.ID)


def page(
    conn: Connection,
    user_id: uuid.UUID | None,
    survey: str | None,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[SurveyResponse]:
    """A keyset page of responses by submission time: of one user and/or one survey, or
    (``None``) every one."""
    s = survey_responses.c
    query = select(*_COLUMNS)
    if user_id is not None:
        query = query.where(s.user_id == user_id)
    if survey is not None:
        query = query.where(s.survey == survey)
    return paginate(
        conn,
        query,
        [s.submitted_at, s.id],
        kind="survey_responses",
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_response,
        cursor_key=lambda r: (r.submitted_at.isoformat(), r.id.hex),
    )
