"""A message, its ratings and its citations."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Response

from ...records import Citation, Feedback, FeedbackSummary, Message, MessageDetail
from ..auth import Admin, Caller, audit
from ..errors import ERROR_RESPONSES
from ..models import CitationCreate, RatingIn
from ._params import Since, Until

__all__ = ["router"]

router = APIRouter(tags=["messages"], responses={409: ERROR_RESPONSES[409]})


@router.get("/messages/{message_id}")
async def get_message(message_id: uuid.UUID, caller: Caller) -> Message:
    """One message."""
    return await caller.store.messages.get(message_id)


@router.post("/messages/{message_id}/hide")
async def hide_message(message_id: uuid.UUID, caller: Caller) -> Message:
    """Hide the message from history reads (listings, ``last``, the path, search), recording
    the caller and the time; the row, its place in the tree, the counts and usage stay.
    Hiding a hidden message changes nothing."""
    return await caller.store.messages.hide(message_id, by=caller.user.id)


@router.post("/messages/{message_id}/unhide")
async def unhide_message(message_id: uuid.UUID, caller: Caller) -> Message:
    """Show a hidden message again (409 for an erased one)."""
    return await caller.store.messages.unhide(message_id)


@router.post("/messages/{message_id}/erase")
async def erase_message(message_id: uuid.UUID, caller: Admin) -> Message:
    """Erase the message for good (admin; audited): content emptied, metadata, intent and
    request id cleared, hidden; usage and counts stay. 409 while a reply is streaming."""
    erased = await caller.ledger.messages.erase(message_id, by=caller.user.id)
    await audit(
        caller.ledger,
        "message.erased",
        user_id=caller.user.id,
        category="compliance",
        metadata={
            "message_id": str(erased.id),
            "conversation_id": str(erased.conversation_id),
            "seq": erased.seq,
        },
    )
    return erased


@router.get("/messages/{message_id}/detail")
async def get_message_detail(message_id: uuid.UUID, caller: Caller) -> MessageDetail:
    """The message with every rater's current rating and its citations, read at once."""
    return await caller.store.messages.get_detail(message_id)


@router.get("/messages/{message_id}/feedback")
async def list_feedback(message_id: uuid.UUID, caller: Caller) -> list[Feedback]:
    """Every rater's current rating of the message, oldest first."""
    return await caller.store.feedback.for_message(message_id)


@router.get("/messages/{message_id}/feedback/mine")
async def get_my_rating(message_id: uuid.UUID, caller: Caller) -> Feedback:
    """The caller's current rating of the message (404 if they have not rated it)."""
    return await caller.store.feedback.get(message_id, caller.user.id)


@router.put("/messages/{message_id}/feedback/mine")
async def rate_message(message_id: uuid.UUID, body: RatingIn, caller: Caller) -> Feedback:
    """Rate the message as the caller; rating again replaces the caller's rating."""
    return await caller.store.feedback.rate(
        message_id,
        rater_id=caller.user.id,
        thumb=body.thumb,
        score=body.score,
        scale=body.scale,
        categories=body.categories,
        comment=body.comment,
    )


@router.delete("/messages/{message_id}/feedback/mine", status_code=204)
async def remove_rating(message_id: uuid.UUID, caller: Caller) -> Response:
    """Delete the caller's rating of the message (404 if there is none)."""
    await caller.store.feedback.remove(message_id, caller.user.id)
    return Response(status_code=204)


@router.get("/feedback/summary")
async def feedback_summary(
    caller: Caller,
    by: Literal["conversation", "model", "day"],
    conversation_id: uuid.UUID | None = None,
    since: Since = None,
    until: Until = None,
) -> list[FeedbackSummary]:
    """Ratings per conversation, model or UTC day, scores normalised to 0..1 (of the caller's
    conversations; an admin key: of all)."""
    return await caller.store.feedback.summary(
        by, conversation_id=conversation_id, since=since, until=until
    )


@router.get("/messages/{message_id}/citations")
async def list_citations(message_id: uuid.UUID, caller: Caller) -> list[Citation]:
    """The message's citations by rank."""
    return await caller.store.citations.for_message(message_id)


@router.post("/messages/{message_id}/citations", status_code=201)
async def add_citation(message_id: uuid.UUID, body: CitationCreate, caller: Caller) -> Citation:
    """Attach a citation to an assistant message (409 on another role)."""
    return await caller.store.citations.add(message_id, **body.model_dump())
