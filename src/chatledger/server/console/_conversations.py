"""The conversations pages: the list by last activity and one conversation's messages.

The conversation page shows one branch of the conversation's tree: the active path by
default, another branch through a message on demand (``?at=<message id>``: the path through
it down to its newest leaf, without moving the active leaf). A message is shown through
:class:`MessageView`, which holds what its template slot needs: the message, its ratings and
citations, its siblings ("< 2 / 3 >", each arrow a link to the sibling's branch), the text of
a reply still streaming, and a slot for tool calls. The template renders each slot only when
it is set; its HTML is cached by :attr:`MessageView.version`.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..._async._store import run_op
from ..._ops import branch_view as _branch_view
from ..._ops.branch_view import BranchView
from ...errors import NotFoundError
from ...records import Citation, Feedback, Message, ToolCall, User
from ._base import Console, View, page
from ._render import FOLD_CHARS, fragments_bytes

__all__ = ["Branch", "MessageView", "message_url", "message_views", "router"]

router = APIRouter(include_in_schema=False)

STATUSES: Final = ("active", "archived", "closed", "deleted")
#: Messages per conversation page (up to MAX_MESSAGES with ``limit``).
MESSAGES_PER_PAGE: Final = 200
MAX_MESSAGES: Final = 1000


@dataclass(frozen=True, slots=True)
class Branch:
    """Where a message sits among its siblings (message trees): ``index`` of ``count``, with
    links to the branches through the previous and the next sibling. The links depend on the
    conversation only (never on the viewer): they may sit in the cached fragment."""

    index: int
    count: int
    previous_url: str | None
    next_url: str | None


@dataclass(slots=True)
class MessageView:
    """One message as the conversation page shows it: the message (its ``status`` says
    whether it is still streaming, or was cut short), its ratings and citations, its place
    among its siblings (``branch``), the text flushed so far of a reply still streaming
    (``streamed``) and ``tool_calls``: the calls an assistant message asked for (name,
    arguments, state, latency), or the call a ``tool`` message answered."""

    message: Message
    feedback: Sequence[Feedback] = ()
    citations: Sequence[Citation] = ()
    branch: Branch | None = None
    tool_calls: Sequence[dict[str, Any]] = ()
    streamed: str | None = None

    @property
    def version(self) -> Hashable:
        """What the rendered fragment depends on, and so its cache key: the message (its id
        and its status: a streamed reply's text and usage change exactly once, when its status
        does; its hidden/erased marks: an erasure empties its content), its ratings' and
        citations' ids and update times, its siblings, how much of a streaming reply was
        flushed (the flushed text only grows) and its tool calls. Ids go in as integers:
        hashing them is C work, and this runs once per message per page."""
        message = self.message
        return (
            message.id.int,
            message.status,
            tuple((f.id.int, f.updated_at) for f in self.feedback) if self.feedback else (),
            tuple(c.id.int for c in self.citations) if self.citations else (),
            self.branch,
            repr(self.tool_calls) if self.tool_calls else None,
            None if self.streamed is None else len(self.streamed),
            message.hidden_at,
            message.erased_at,
        )

    @property
    def folded(self) -> bool:
        """Whether the content is long enough to fold."""
        return len(self.message.content) > FOLD_CHARS


def message_url(conversation_id: uuid.UUID, message_id: uuid.UUID) -> str:
    """The conversation page showing ``message_id``: the branch through it (the active path
    when it is on it), at the page holding it, scrolled to it."""
    return f"/console/conversations/{conversation_id}?at={message_id}#m-{message_id}"


def _branches(shown: BranchView) -> dict[uuid.UUID, Branch]:
    """The "< 2 / 3 >" of each shown message that has siblings."""
    if not shown.siblings:
        return {}
    found: dict[uuid.UUID, Branch] = {}
    cid = shown.conversation.id
    for message in shown.messages:
        ids = shown.siblings.get(message.parent_seq)
        if ids is None:
            continue
        index = ids.index(message.id)
        found[message.id] = Branch(
            index=index + 1,
            count=len(ids),
            previous_url=message_url(cid, ids[index - 1]) if index > 0 else None,
            next_url=message_url(cid, ids[index + 1]) if index + 1 < len(ids) else None,
        )
    return found


def _call_view(call: ToolCall) -> dict[str, Any]:
    """What the page shows of a tool call."""
    return {
        "id": call.call_id,
        "name": call.name,
        "arguments": call.arguments,
        "status": call.status,
        "latency_ms": call.latency_ms,
    }


def message_views(shown: BranchView) -> list[MessageView]:
    """The shown messages with what each fragment needs."""
    feedback = {key.int: value for key, value in shown.notes.feedback.items()}
    citations = {key.int: value for key, value in shown.notes.citations.items()}
    branches = _branches(shown)
    streamed = shown.streamed
    calls = {seq: [_call_view(call) for call in asked] for seq, asked in shown.calls.items()}
    calls.update({seq: [_call_view(call)] for seq, call in shown.answers.items()})
    views = []
    for message in shown.messages:
        key = message.id.int
        views.append(
            MessageView(
                message,
                feedback=feedback.get(key, ()),
                citations=citations.get(key, ()),
                branch=branches.get(message.id) if branches else None,
                streamed=streamed.get(message.id) if streamed else None,
                tool_calls=calls.get(message.seq, ()) if calls else (),
            )
        )
    return views


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
    """One conversation: the messages of its active path (or of the branch through the
    message ``at``) with their usage, ratings, citations, siblings ("< 2 / 3 >") and streaming
    state, a window of ``limit`` messages from depth ``from`` (a 404 when the conversation is
    not the viewer's)."""
    raw = request.path_params["conversation_id"]
    try:
        conversation_id = uuid.UUID(raw)
    except ValueError:
        raise NotFoundError("conversation", raw) from None
    size = view.query_int("limit", MESSAGES_PER_PAGE, 1, MAX_MESSAGES)
    start = None if view.query("from") is None else view.query_int("from", 0, 0, 10**9)
    shown: BranchView = await run_op(
        view.store,
        _branch_view.branch_view,
        view.owner,
        conversation_id,
        at=view.query_uuid("at"),
        start=start,
        limit=size,
    )
    end = shown.start + len(shown.messages)
    console = Console.of(request)
    return console.render_with_fragments(
        request,
        "conversation.html",
        {
            "view": view,
            "conversation": shown.conversation,
            "owner": shown.owner,
            "shown": shown,
            "end": end,
            "earlier_url": view.with_query(**{"from": max(shown.start - size, 0)})
            if shown.start > 0
            else None,
            "later_url": view.with_query(**{"from": end}) if end < shown.length else None,
            "active_url": f"/console/conversations/{conversation_id}",
        },
        fragments_bytes(console.templates, "_message.html", message_views(shown)),
    )
