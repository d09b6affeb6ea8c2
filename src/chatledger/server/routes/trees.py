"""Message trees: edit, regenerate, switch, paths, siblings, children, leaves, the whole
tree, forks (docs/trees.md). Appending with a parent is ``POST .../messages`` with
``parent_id``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from ...records import Conversation, Message
from ..auth import Caller
from ..errors import ERROR_RESPONSES
from ..models import EditIn, ForkIn, RegenerateIn, SwitchIn
from ._params import IncludeHidden

__all__ = ["router"]

router = APIRouter(tags=["trees"], responses={409: ERROR_RESPONSES[409]})


@router.get("/conversations/{conversation_id}/path")
async def get_path(
    conversation_id: uuid.UUID,
    caller: Caller,
    message_id: uuid.UUID | None = None,
    include_hidden: IncludeHidden = False,
) -> list[Message]:
    """The messages from the root to ``message_id`` (without it: the active path), root
    first."""
    return await caller.store.trees.path(conversation_id, message_id, include_hidden=include_hidden)


@router.get("/conversations/{conversation_id}/tree")
async def get_tree(conversation_id: uuid.UUID, caller: Caller) -> list[Message]:
    """Every message of every branch, parents first, with ``parent_seq``, ``depth``,
    ``sibling_index`` and ``on_active_path``: enough to draw the tree."""
    return await caller.store.trees.tree(conversation_id)


@router.get("/conversations/{conversation_id}/leaves")
async def get_leaves(conversation_id: uuid.UUID, caller: Caller) -> list[Message]:
    """The messages without children (one per branch), oldest first."""
    return await caller.store.trees.leaves(conversation_id)


@router.post("/conversations/{conversation_id}/switch")
async def switch_branch(conversation_id: uuid.UUID, body: SwitchIn, caller: Caller) -> Message:
    """Make the newest leaf under ``message_id`` the active leaf; returns that leaf."""
    return await caller.store.trees.switch(conversation_id, body.message_id)


@router.post("/conversations/{conversation_id}/fork", status_code=201)
async def fork_conversation(
    conversation_id: uuid.UUID, body: ForkIn, caller: Caller
) -> Conversation:
    """A new conversation with copies of the path from the root to ``message_id``; it names
    its source (``forked_from_conversation_id``, ``forked_from_message_id``)."""
    owner = caller.user_id(body.user_id)
    return await caller.store.trees.fork(
        conversation_id, body.message_id, owner_id=owner, title=body.title
    )


@router.get("/messages/{message_id}/siblings")
async def get_siblings(message_id: uuid.UUID, caller: Caller) -> list[Message]:
    """The message and its siblings in ``sibling_index`` order ("2 / 3" is the message's
    ``sibling_index + 1`` of the count)."""
    return await caller.store.trees.siblings(message_id)


@router.get("/messages/{message_id}/children")
async def get_children(message_id: uuid.UUID, caller: Caller) -> list[Message]:
    """The message's children in ``sibling_index`` order."""
    return await caller.store.trees.children(message_id)


@router.post("/messages/{message_id}/edit", status_code=201)
async def edit_message(message_id: uuid.UUID, body: EditIn, caller: Caller) -> Message:
    """Edit a user message: the new version is appended as its sibling (a new root for the
    first message) and becomes the active leaf."""
    return await caller.store.trees.edit(message_id, body.content, **body.message_fields())


@router.post("/messages/{message_id}/regenerate", status_code=201)
async def regenerate_message(message_id: uuid.UUID, body: RegenerateIn, caller: Caller) -> Message:
    """Store a regenerated answer as a sibling of the assistant message; it becomes the
    active leaf."""
    return await caller.store.trees.regenerate(
        message_id,
        body.content,
        **body.message_fields(),
        charge=body.charge,
        charge_reason=body.charge_reason,
        tool_calls=body.tool_call_list(),
    )
