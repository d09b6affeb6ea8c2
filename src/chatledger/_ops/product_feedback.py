"""Product-feedback forms: standalone forms that anonymous visitors or agents submit (the
visitor-registry apps' ``feedback`` table), with the limits of those apps' CHECK constraints.
Not tied to a message or a user; read back by id or in pages by submission time."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Row, select

from .. import _cursors, _ids
from .. import _validate as check
from .._schema import AGENT_NAME_MAX, AGENT_TYPE_MAX, FORM_TEXT_MAX, product_feedback
from ..errors import NotFoundError, ValidationError
from ..records import Order, Page, ProductFeedback
from . import _once
from ._common import from_row, paginate, record_columns, record_values, utcnow

__all__ = [
    "SUBMITTED",
    "USABILITY_RANGE",
    "NewForm",
    "decode_cursor",
    "get",
    "page",
    "prepare",
    "submit",
]

#: The inclusive range of a product-feedback form's usability rating.
USABILITY_RANGE: Final = (1, 10)

_COLUMNS: Final = record_columns(product_feedback, ProductFeedback)
_KIND: Final = "product_feedback"


@dataclass(frozen=True, slots=True)
class NewForm:
    """A validated product-feedback form."""

    agent_name: str
    agent_type: str | None
    issues: str | None
    feature_requests: str | None
    additional_comments: str | None
    usability_rating: int | None


def prepare(
    *,
    agent_name: object,
    agent_type: object,
    issues: object,
    feature_requests: object,
    additional_comments: object,
    usability_rating: object,
) -> NewForm:
    """Validate a form: the limits of the visitor-registry app's CHECK constraints."""
    rating: int | None = None
    if usability_rating is not None:
        low, high = USABILITY_RANGE
        if isinstance(usability_rating, bool) or not isinstance(usability_rating, int):
            raise ValidationError(
                "usability_rating",
                f"must be an integer, not {type(usability_rating).__name__}",
                limit=USABILITY_RANGE,
            )
        if not low <= usability_rating <= high:
            raise ValidationError(
                "usability_rating",
                f"{usability_rating} is outside {low}..{high}",
                limit=USABILITY_RANGE,
            )
        rating = usability_rating
    return NewForm(
        agent_name=check.nonblank("agent_name", agent_name, AGENT_NAME_MAX),
        agent_type=check.optional_text("agent_type", agent_type, AGENT_TYPE_MAX),
        issues=check.optional_text("issues", issues, FORM_TEXT_MAX),
        feature_requests=check.optional_text("feature_requests", feature_requests, FORM_TEXT_MAX),
        additional_comments=check.optional_text(
            "additional_comments", additional_comments, FORM_TEXT_MAX
        ),
        usability_rating=rating,
    )


#: A retried form learns whether an earlier attempt committed (see ``_once``).
SUBMITTED: Final = _once.inserted("product feedback", product_feedback, ProductFeedback)


def submit(conn: Connection, form: NewForm) -> ProductFeedback:
    """Store a product-feedback form."""
    stored = ProductFeedback(
        id=_ids.new_id(),
        agent_name=form.agent_name,
        agent_type=form.agent_type,
        issues=form.issues,
        feature_requests=form.feature_requests,
        additional_comments=form.additional_comments,
        usability_rating=form.usability_rating,
        submitted_at=utcnow(),
    )
    conn.execute(product_feedback.insert(), record_values(stored))
    return stored


def _to_form(row: Row[Any]) -> ProductFeedback:
    return from_row(ProductFeedback, row)


def get(conn: Connection, form_id: uuid.UUID) -> ProductFeedback:
    """One product-feedback form by id."""
    row = conn.execute(select(*_COLUMNS).where(product_feedback.c.id == form_id)).first()
    if row is None:
        raise NotFoundError("product feedback", form_id)
    return _to_form(row)


#: Reads back the sort key, (submitted_at, id), of product-feedback form cursors.
decode_cursor = _cursors.decoder(_KIND, _cursors.TIME, _cursors.ID)


def page(
    conn: Connection,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[ProductFeedback]:
    """A keyset page of the forms by submission time."""
    p = product_feedback.c
    return paginate(
        conn,
        select(*_COLUMNS),
        [p.submitted_at, p.id],
        kind=_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_form,
        cursor_key=lambda form: (form.submitted_at.isoformat(), form.id.hex),
    )
