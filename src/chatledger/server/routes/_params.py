"""Query parameters shared by the listing routes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, Request

from ..auth import authenticate_first
from ..errors import ApiError
from ..models import Instant
from ..operations import OperationIndex
from ..settings import MAX_PAGE

__all__ = [
    "After",
    "Before",
    "IncludeHidden",
    "Limit",
    "Order",
    "Since",
    "Until",
    "reject_unknown_query",
]

#: Page size: 1 to 100 (a larger ``limit`` is a 422 naming the limit).
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, 1 to {MAX_PAGE}.")]
After = Annotated[
    str | None,
    Query(
        max_length=512,
        description="A page's `last_cursor`: read the items after it. Not with `before`; a "
        "cursor this listing did not issue is a 422.",
    ),
]
Before = Annotated[
    str | None,
    Query(
        max_length=512,
        description="A page's `first_cursor`: read the items before it. Not with `after`.",
    ),
]
Order = Annotated[
    Literal["asc", "desc"], Query(description="`asc`: oldest first; `desc`: newest first.")
]
IncludeHidden = Annotated[
    bool, Query(description="`true`: hidden and erased messages too, marked by `hidden_at`.")
]
Since = Annotated[Instant | None, Query(description="From this time (inclusive, with offset).")]
Until = Annotated[
    Instant | None,
    Query(description="Until this time (exclusive, with offset); not before `since`."),
]


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the operation does not take is a 422 naming it (a misspelt ``limit``
    would otherwise be ignored silently)."""
    if not request.query_params:
        return
    names = OperationIndex.of(request.app).query_names(request.method, request.url.path)
    if names is None:
        return
    unknown = sorted(set(request.query_params) - names)
    if unknown:
        await authenticate_first(request)
        raise ApiError(
            422,
            "invalid_request",
            f"{unknown[0]}: unknown query parameter",
            field=unknown[0],
            limit=sorted(names),
        )
