"""One branch of a conversation as a reader sees it (the console's conversation page): a
window of the path from the root to a leaf, each message's siblings ("2 / 3"), the other
branches' leaves, the streamed text of replies still being written, and the ratings and
citations, in one read transaction.

The shown branch is the **active path** unless the reader asks for a message off it; then it
is the path through that message down to the newest leaf under it (what
:func:`.trees.switch` would make active), read without moving the active leaf: looking never
changes what the app's model sees next.

On a path, a message's ``depth`` is its position (the root is 0), so a window of the path is
a range of depths, and a page holding a given message is the one of its depth.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from sqlalchemy import ColumnElement, Connection, Integer, bindparam, func, or_, select, true

from .._prepared import Prepared
from .._schema import messages, users
from ..errors import NotFoundError
from ..records import Conversation, Message, ToolCall, User
from . import conversations as _conversations
from . import messages as _messages
from . import streams as _streams
from . import tool_calls as _tool_calls
from ._common import from_row, record_columns
from .reports import Annotations, notes_of
from .trees import _ancestry, _newest_leaf_under

__all__ = ["BranchView", "Leaf", "branch_view"]

#: How many branches (leaves) a page lists at most, newest first.
MAX_LEAVES: Final = 100
#: How many characters of a leaf's text the list of branches shows.
LEAF_EXCERPT: Final = 100


@dataclass(frozen=True, slots=True)
class Leaf:
    """The end of one branch: where it is, who wrote it and how it starts."""

    id: uuid.UUID
    seq: int
    depth: int
    role: str
    excerpt: str
    on_active_path: bool


@dataclass(frozen=True, slots=True)
class BranchView:
    """A window of one branch of a conversation and what its messages show beside them.

    ``messages`` are the path's messages at depths ``start`` to ``start + len(messages) - 1``
    of ``length``; ``active`` says whether the path is the active one. ``siblings`` maps a
    parent's ``seq`` (``None``: the roots) to its children's ids in ``sibling_index`` order,
    for the page's messages that have siblings only; ``streamed`` the text flushed so far of
    the page's replies still streaming. ``leaves`` lists the branches (newest first, up to
    :data:`MAX_LEAVES`; empty when there is one branch). ``calls`` maps an assistant
    message's ``seq`` to the tool calls it asked for, ``answers`` a ``tool`` message's ``seq``
    to the call it answered (page's messages only)."""

    conversation: Conversation
    owner: User
    messages: list[Message]
    start: int
    length: int
    active: bool
    siblings: dict[int | None, tuple[uuid.UUID, ...]]
    leaves: list[Leaf]
    streamed: dict[uuid.UUID, str]
    notes: Annotations
    calls: dict[int, list[ToolCall]]
    answers: dict[int, ToolCall]


def _window_statement(active: bool) -> Prepared:
    m = messages.c
    query = select(*_messages._IN_CONVERSATION).where(
        m.conversation_id == bindparam("b_cid"),
        m.depth >= bindparam("b_from", type_=Integer()),
        m.depth < bindparam("b_to", type_=Integer()),
    )
    if active:
        # One range of ix_messages_active_path, in seq (= depth) order.
        return Prepared(query.where(m.on_active_path == true()).order_by(m.seq))
    return Prepared(query)


#: The window of the active path.
_ACTIVE_WINDOW: Final = _window_statement(True)
_PLACE: Final = Prepared(
    select(messages.c.seq, messages.c.depth, messages.c.on_active_path).where(
        messages.c.conversation_id == bindparam("b_cid"), messages.c.id == bindparam("b_id")
    )
)
_DEPTH: Final = Prepared(
    select(messages.c.depth).where(
        messages.c.conversation_id == bindparam("b_cid"), messages.c.seq == bindparam("b_seq")
    )
)


def _window(
    conn: Connection, conversation_id: uuid.UUID, leaf_seq: int | None, first: int, last: int
) -> list[Message]:
    """The messages of depths ``first`` to ``last - 1`` on the path to ``leaf_seq`` (``None``:
    the active path), root first."""
    if leaf_seq is None:
        load = _messages._LOAD_IN_CONVERSATION(conn.dialect)
        params = {"b_cid": conversation_id, "b_from": first, "b_to": last}
        return [load(row, conversation_id) for row in _ACTIVE_WINDOW.rows(conn, params)]
    m = messages.c
    up = _ancestry(conversation_id, leaf_seq)
    query = (
        select(*_messages._IN_CONVERSATION)
        .join(up, m.seq == up.c.seq)
        .where(m.conversation_id == conversation_id, m.depth >= first, m.depth < last)
        .order_by(m.seq)
    )
    return [_messages._in_conversation(conversation_id, row) for row in conn.execute(query)]


def _siblings(
    conn: Connection, conversation_id: uuid.UUID, shown: list[Message]
) -> dict[int | None, tuple[uuid.UUID, ...]]:
    """The children of the shown messages' parents, for the parents with more than one
    (reads ix_messages_parent)."""
    parents = {message.parent_seq for message in shown}
    if not parents:
        return {}
    m = messages.c
    numbered = [seq for seq in parents if seq is not None]
    wanted: list[ColumnElement[bool]] = [m.parent_seq.in_(numbered)] if numbered else []
    if None in parents:
        wanted.append(m.parent_seq.is_(None))
    query = (
        select(m.parent_seq, m.id)
        .where(m.conversation_id == conversation_id, or_(*wanted))
        .order_by(m.parent_seq, m.sibling_index)
    )
    groups: dict[int | None, list[uuid.UUID]] = defaultdict(list)
    for parent_seq, message_id in conn.execute(query):
        groups[parent_seq].append(message_id)
    return {parent: tuple(ids) for parent, ids in groups.items() if len(ids) > 1}


def _leaves(conn: Connection, conversation_id: uuid.UUID) -> list[Leaf]:
    m = messages.c
    child = messages.alias("child")
    has_child = (
        select(child.c.seq)
        .where(child.c.conversation_id == m.conversation_id, child.c.parent_seq == m.seq)
        .exists()
    )
    query = (
        select(
            m.id,
            m.seq,
            m.depth,
            m.role,
            func.substr(m.content, 1, LEAF_EXCERPT),
            m.on_active_path,
        )
        .where(m.conversation_id == conversation_id, ~has_child)
        .order_by(m.seq.desc())
        .limit(MAX_LEAVES)
    )
    return [Leaf(*row) for row in conn.execute(query)]


_USER_COLUMNS: Final = record_columns(users, User)


def branch_view(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    *,
    at: uuid.UUID | None,
    start: int | None,
    limit: int,
) -> BranchView:
    """The page of the conversation's branch through ``at`` (``None``: the active path)
    starting at depth ``start`` (``None``: the page holding ``at``, else the root), at most
    ``limit`` messages. ``NotFoundError`` when the conversation is not ``owner``'s or ``at``
    is not one of its messages."""
    conversation = _conversations.get(conn, owner, conversation_id)
    leaf_seq: int | None = None
    length = conversation.path_length
    first = start or 0
    if at is not None:
        place = _PLACE.rows(conn, {"b_cid": conversation_id, "b_id": at})
        if not place:
            raise NotFoundError("message", at, field="at")
        seq, depth, on_path = place[0]
        if not on_path:
            leaf_seq = _newest_leaf_under(conn, conversation_id, seq)
            length = int(_DEPTH.first_value(conn, {"b_cid": conversation_id, "b_seq": leaf_seq}))
            length += 1
        if start is None:
            first = depth // limit * limit
    shown = _window(conn, conversation_id, leaf_seq, first, first + limit)
    branched = leaf_seq is not None or conversation.message_count != conversation.path_length
    streamed = {
        message.id: _streams._text(conn, message.id)
        for message in shown
        if message.status == "streaming"
    }
    user_row = conn.execute(select(*_USER_COLUMNS).where(users.c.id == conversation.owner_id))
    calls, answers = _tool_calls.calls_and_answers(
        conn,
        conversation_id,
        [m.seq for m in shown if m.role == "assistant"],
        [m.seq for m in shown if m.role == "tool"],
    )
    return BranchView(
        conversation=conversation,
        owner=from_row(User, user_row.one()),
        messages=shown,
        start=first,
        length=length,
        active=leaf_seq is None,
        siblings=_siblings(conn, conversation_id, shown) if branched else {},
        leaves=_leaves(conn, conversation_id) if branched else [],
        streamed=streamed,
        notes=notes_of(conn, conversation_id),
        calls=calls,
        answers=answers,
    )
