"""The visitor registry (admin keys: a visit merges answers into a visitor found by a name anyone
could guess, so only the service records visits) and product-feedback forms (any key submits,
admin keys read)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from ...records import ProductFeedback, Visitor
from ..auth import Admin, Caller
from ..errors import ERROR_RESPONSES
from ..models import PageOut, ProductFeedbackCreate, VisitIn, VisitorAnswers, page_out
from ._params import After, Before, Limit, Order

__all__ = ["router"]

router = APIRouter(responses={403: ERROR_RESPONSES[403], 409: ERROR_RESPONSES[409]})


@router.post("/visitors", tags=["visitors"])
async def record_visit(body: VisitIn, caller: Admin) -> Visitor:
    """Record a visit (admin); a known visitor (by ``visitor_key``, else name and agent type)
    counts one more visit and merges the answers."""
    return await caller.ledger.visitors.record_visit(
        body.name,
        agent_type=body.agent_type,
        purpose=body.purpose,
        answers=body.answers,
        visitor_key=body.visitor_key,
    )


@router.get("/visitors", tags=["visitors"])
async def list_visitors(
    caller: Admin,
    limit: Limit = 20,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
) -> PageOut[Visitor]:
    """A page of visitors by last visit, newest first by default (admin)."""
    page = await caller.ledger.visitors.page(limit=limit, after=after, before=before, order=order)
    return PageOut[Visitor].model_validate(page_out(page))


@router.get("/visitors/{visitor_id}", tags=["visitors"])
async def get_visitor(visitor_id: uuid.UUID, caller: Admin) -> Visitor:
    """One visitor with its answers (admin)."""
    return await caller.ledger.visitors.get(visitor_id)


@router.put("/visitors/{visitor_id}/answers", tags=["visitors"])
async def set_visitor_answers(
    visitor_id: uuid.UUID, body: VisitorAnswers, caller: Admin
) -> Visitor:
    """Set answers of a visitor without counting a visit (admin)."""
    return await caller.ledger.visitors.set_answers(visitor_id, body.answers, replace=body.replace)


@router.delete("/visitors/{visitor_id}", tags=["visitors"], status_code=204)
async def delete_visitor(visitor_id: uuid.UUID, caller: Admin) -> Response:
    """Delete a visitor and its answers (admin)."""
    await caller.ledger.visitors.delete(visitor_id)
    return Response(status_code=204)


@router.post("/product-feedback", tags=["product feedback"], status_code=201)
async def submit_product_feedback(body: ProductFeedbackCreate, caller: Caller) -> ProductFeedback:
    """Store a product-feedback form."""
    return await caller.ledger.product_feedback.submit(**body.model_dump())


@router.get("/product-feedback", tags=["product feedback"])
async def list_product_feedback(
    caller: Admin,
    limit: Limit = 20,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
) -> PageOut[ProductFeedback]:
    """A page of forms, newest first by default (admin)."""
    page = await caller.ledger.product_feedback.page(
        limit=limit, after=after, before=before, order=order
    )
    return PageOut[ProductFeedback].model_validate(page_out(page))


@router.get("/product-feedback/{feedback_id}", tags=["product feedback"])
async def get_product_feedback(feedback_id: uuid.UUID, caller: Admin) -> ProductFeedback:
    """One form (admin)."""
    return await caller.ledger.product_feedback.get(feedback_id)
