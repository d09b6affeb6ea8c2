"""The search page: full-text search over the viewer's messages and conversation titles
(docs/search.md), scoped as the API scopes it: a user searches their own conversations, an
admin everyone's or one user's."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from starlette.responses import Response

from ..._async.ledger import AsyncLedger, AsyncUserScope
from ..._ops.search import SORTS
from ..._schema import ROLES
from ...errors import ValidationError
from ...records import ConversationHit, MessageHit
from ._base import View, page
from ._conversations import message_url

__all__ = ["marked", "router"]

router = APIRouter(include_in_schema=False)

#: Message hits per page, and title hits shown above them.
HITS_PER_PAGE: Final = 20
TITLES_SHOWN: Final = 10


def marked(hit: MessageHit | ConversationHit) -> Markup:
    """The hit's snippet, escaped, with its matched words in ``<mark>``."""
    text = hit.snippet
    parts: list[str] = []
    position = 0
    for start, end in hit.highlights:
        parts += [escape(text[position:start]), Markup("<mark>%s</mark>") % text[start:end]]
        position = end
    parts.append(escape(text[position:]))
    return Markup("".join(parts))  # every piece escaped above


def _scope(view: View) -> AsyncLedger | AsyncUserScope:
    """Whose messages the viewer searches: their own; an admin, one user's or everyone's."""
    if not view.admin:
        return view.store
    user = view.query_uuid("user")
    return view.ledger if user is None else view.ledger.as_user(user)


@router.get("/console/search")
@page
async def search(request: Request, view: View) -> Response:
    """Messages (and, on the first page of an unfiltered search, conversation titles)
    matching ``q``, most relevant first or by time, with highlighted snippets linking to each
    message in its conversation (on its branch)."""
    query = view.query("q", 1000)
    conversation = view.query_uuid("conversation")
    role = view.query_choice("role", ROLES)
    order = view.query_choice("order", SORTS) or "relevance"
    after, before = view.query("after", 512), view.query("before", 512)
    context: dict[str, Any] = {
        "q": query,
        "conversation": conversation,
        "role": role,
        "order": order,
        "roles": ROLES,
        "orders": SORTS,
        "user": view.query_uuid("user") if view.admin else None,
        "hits": None,
        "titles": [],
        "error": None,
        "message_url": message_url,
        "marked": marked,
    }
    if view.admin:
        context["owners"] = (await view.ledger.users.list(limit=200)).items
    if query is None:
        return view.render("search.html", **context)
    scope = _scope(view)
    try:
        hits = await scope.search.messages(
            query,
            conversation_id=conversation,
            role=role,  # type: ignore[arg-type]
            order=order,  # type: ignore[arg-type]
            limit=HITS_PER_PAGE,
            after=after,
            before=before,
        )
        if conversation is None and role is None and after is None and before is None:
            titles = await scope.search.conversations(query, order=order, limit=TITLES_SHOWN)  # type: ignore[arg-type]
            context["titles"] = titles.items
    except ValidationError as exc:
        context["error"] = str(exc)
        return view.render("search.html", http_status=400, **context)
    context["hits"] = hits
    return view.render("search.html", **context)
