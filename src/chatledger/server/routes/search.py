"""Full-text search over the caller's messages and conversation titles."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import APIRouter, Query
from pydantic import BaseModel

from ..._ops.search_syntax import QUERY_MAX_CHARS
from ...records import ConversationHit, ConversationStatus, MessageHit, Role, SearchPage
from ..auth import Caller
from ._params import After, Before, Limit, Since, Until

__all__ = ["router"]

router = APIRouter(tags=["search"])

T = TypeVar("T")

SearchQuery = Annotated[
    str,
    Query(
        max_length=QUERY_MAX_CHARS,
        description='Words (all must match), "phrases", prefixes (`lisb*`), excluded `-words`.',
    ),
]
SearchOrder = Annotated[
    Literal["relevance", "newest", "oldest"], Query(description="Most relevant first, or by time.")
]
SearchBranch = Annotated[
    Literal["all", "active"],
    Query(
        description="Every branch of each conversation (`all`), or only the messages on "
        "their conversation's active path (`active`)."
    ),
]


class SearchOut(BaseModel, Generic[T]):
    """One page of search results; ``ignored`` lists the query's words no backend searches
    (shorter than 3 characters, or stop words)."""

    data: list[T]
    has_more: bool
    first_cursor: str | None
    last_cursor: str | None
    ignored: list[str]


def _out(page: SearchPage[Any]) -> dict[str, Any]:
    return {
        "data": page.items,
        "has_more": page.has_more,
        "first_cursor": page.first_cursor,
        "last_cursor": page.last_cursor,
        "ignored": list(page.ignored),
    }


@router.get("/search")
async def search_messages(
    caller: Caller,
    q: SearchQuery,
    conversation_id: uuid.UUID | None = None,
    role: Annotated[list[Role] | None, Query()] = None,
    model: Annotated[list[Annotated[str, Query(max_length=200)]] | None, Query()] = None,
    status: Annotated[list[ConversationStatus] | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    branch: SearchBranch = "all",
    order: SearchOrder = "relevance",
    limit: Limit = 20,
    after: After = None,
    before: Before = None,
) -> SearchOut[MessageHit]:
    """The caller's messages matching ``q`` (an admin key: everyone's), each with a
    snippet and the offsets of the matched words in it."""
    page = await caller.store.search.messages(
        q,
        conversation_id=conversation_id,
        role=role or None,
        model=model or None,
        status=status or None,
        since=since,
        until=until,
        branch=branch,
        order=order,
        limit=limit,
        after=after,
        before=before,
    )
    return SearchOut[MessageHit].model_validate(_out(page))


@router.get("/conversations/{conversation_id}/search")
async def search_conversation(
    conversation_id: uuid.UUID,
    caller: Caller,
    q: SearchQuery,
    role: Annotated[list[Role] | None, Query()] = None,
    branch: SearchBranch = "all",
    order: SearchOrder = "relevance",
    limit: Limit = 20,
    after: After = None,
    before: Before = None,
) -> SearchOut[MessageHit]:
    """The messages of one conversation matching ``q`` (404 if it is not the caller's)."""
    page = await caller.store.search.messages(
        q,
        conversation_id=conversation_id,
        role=role or None,
        status=["active", "archived", "closed", "deleted"],
        branch=branch,
        order=order,
        limit=limit,
        after=after,
        before=before,
    )
    return SearchOut[MessageHit].model_validate(_out(page))


@router.get("/search/conversations")
async def search_titles(
    caller: Caller,
    q: SearchQuery,
    status: Annotated[list[ConversationStatus] | None, Query()] = None,
    order: SearchOrder = "relevance",
    limit: Limit = 20,
    after: After = None,
    before: Before = None,
) -> SearchOut[ConversationHit]:
    """The caller's conversations whose title matches ``q`` (the sidebar's search box)."""
    page = await caller.store.search.conversations(
        q, status=status or None, order=order, limit=limit, after=after, before=before
    )
    return SearchOut[ConversationHit].model_validate(_out(page))
