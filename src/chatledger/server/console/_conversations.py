"""The conversations pages: the list by last activity and one conversation's messages.

A message is shown through :class:`MessageView`, which holds what its template slot needs:
the message, its ratings and citations, and the places later features fill (``branch`` for
message trees' "< 2 / 3 >", ``tool_calls`` and ``streaming`` for streamed replies). The
template renders each slot only when it is set.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..._async._store import run_op
from ..._ops import reports as _reports
from ...errors import NotFoundError
from ...records import Citation, Feedback, Message, User
from ._base import Console, View, page
from ._render import FOLD_CHARS, fragments_html

__all__ = ["MessageView", "router"]

router = APIRouter(include_in_schema=False)

STATUSES: Final = ("active", "archived", "closed", "deleted")
#: Messages per conversation page (up to MAX_MESSAGES with ``limit``).
MESSAGES_PER_PAGE: Final = 200
MAX_MESSAGES: Final = 1000


@dataclass(frozen=True, slots=True)
class Branch:
    """Where a message sits among its siblings (message trees): ``index`` of ``count``."""

    index: int
    count: int
    previous_url: str | None
    next_url: str | None


@dataclass(slots=True)
class MessageView:
    """One message as the conversation page shows it."""

    message: Message
    feedback: list[Feedback] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    branch: Branch | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    streaming: str | None = None

    @property
    def version(self) -> Hashable:
        """What the rendered fragment depends on: the message (its id, and its hidden/erased
        marks, the only changes a stored message's text sees after its finish), its
        ratings' and citations' ids and update times, and the later features' slots."""
        return (
            self.message.id,
            tuple((f.id, f.updated_at) for f in self.feedback),
            tuple(c.id for c in self.citations),
            self.branch,
            repr(self.tool_calls) if self.tool_calls else None,
            self.streaming,
            # Hiding and erasing change a message's row (an erasure empties its content):
            # a cached fragment must not outlive them.
            self.message.hidden_at,
            self.message.erased_at,
        )

    @property
    def folded(self) -> bool:
        """Whether the content is long enough to fold."""
        return len(self.message.content) > FOLD_CHARS


async def _owners(view: View) -> list[User]:
    """The users an admin may pick from (the first page, by creation)."""
    if not view.admin:
        return []
    return (await view.ledger.users.list(limit=200)).items


@router.get("/console/conversations")
@page
async def conversations(request: Request, view: View) -> Response:
    """The viewer's conversations by last activity (an admin picks whose), with a status
    filter and keyset paging."""
    status = view.query_choice("status", STATUSES)
    owner = view.query_uuid("user") if view.admin else None
    owner = owner or view.caller.user.id
    size = view.query_int("limit", 25, 1, 100)
    listing = await view.store.conversations.list(
        owner,
        status=status,  # type: ignore[arg-type]
        limit=size,
        after=view.query("after", 512),
        before=view.query("before", 512),
    )
    owner_user = await view.user(owner)
    return view.render(
        "conversations.html",
        page=listing,
        status=status,
        statuses=STATUSES,
        owner=owner_user,
        owners=await _owners(view),
        paged=view.query("after", 512) is not None or view.query("before", 512) is not None,
        backwards=view.query("before", 512) is not None,
    )


@router.get("/console/conversations/{conversation_id}")
@page
async def conversation(request: Request, view: View) -> Response:
    """One conversation: every message with its usage, ratings and citations (a 404 when the
    conversation is not the viewer's)."""
    raw = request.path_params["conversation_id"]
    try:
        conversation_id = uuid.UUID(raw)
    except ValueError:
        raise NotFoundError("conversation", raw) from None
    found = await view.store.conversations.get(conversation_id)
    size = view.query_int("limit", MESSAGES_PER_PAGE, 1, MAX_MESSAGES)
    listing = await view.store.messages.list(
        conversation_id,
        limit=size,
        after=view.query("after", 512),
        before=view.query("before", 512),
    )
    notes: _reports.Annotations = await run_op(
        view.store, _reports.conversation_notes, view.owner, conversation_id
    )
    messages = [
        MessageView(
            message,
            feedback=notes.feedback.get(message.id, []),
            citations=notes.citations.get(message.id, []),
        )
        for message in listing.items
    ]
    return view.render(
        "conversation.html",
        conversation=found,
        owner=await view.user(found.owner_id),
        messages_html=fragments_html(Console.of(request).templates, "_message.html", messages),
        page=listing,
    )
