"""Message trees: appends with a parent (edit, regenerate), switches, paths, siblings,
children, leaves, the whole tree, forks (docs/trees.md).

The active path is materialised in ``messages.on_active_path``, so that the hot read (the
last n messages of the active path, :func:`.messages.last`) is one index range. Whatever
moves the active leaf rewrites that flag for the messages that leave or join the path, in
the same transaction and under the conversation's row lock: a regenerate or an edit below
the active path clears the path below the parent (one ranged update), a switch or an append
under another branch walks the new leaf's ancestors (bounded by its depth) and sets them.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy import Connection, Integer, Select, bindparam, func, select, true, update
from sqlalchemy.exc import IntegrityError

from .. import _ids
from .._backends import backend_of
from .._prepared import Prepared
from .._schema import conversations, messages, tool_calls
from ..errors import ConflictError, NotFoundError
from ..records import Conversation, Message
from . import messages as _messages
from . import tool_calls as _tools
from ._common import from_row, record_columns, record_values, utcnow

__all__ = [
    "append_under",
    "children",
    "fork",
    "leaves",
    "path",
    "sibling_of",
    "siblings",
    "switch",
    "tree",
]

_COLUMNS: Final = record_columns(messages, Message)
_CONVERSATION_COLUMNS: Final = record_columns(conversations, Conversation)


def _message(
    conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID, field: str
) -> Message:
    """The message ``message_id`` (of ``owner``'s conversations), else NotFoundError naming
    ``field``."""
    try:
        return _messages.get(conn, owner, message_id)
    except NotFoundError:
        raise NotFoundError("message", message_id, field=field) from None


def _lock(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> Conversation:
    """The conversation, its row locked (writers of one conversation queue here)."""
    c = conversations.c
    query = select(*_CONVERSATION_COLUMNS).where(c.id == conversation_id)
    if owner is not None:
        query = query.where(c.owner_id == owner)
    row = conn.execute(query.with_for_update()).first()
    if row is None:
        raise NotFoundError("conversation", conversation_id)
    return from_row(Conversation, row)


def _in_conversation(
    conn: Connection, conversation_id: uuid.UUID, message_id: uuid.UUID, field: str
) -> Message:
    m = messages.c
    row = conn.execute(
        select(*_COLUMNS).where(m.conversation_id == conversation_id, m.id == message_id)
    ).first()
    if row is None:
        raise NotFoundError("message", message_id, field=field)
    return from_row(Message, row)


def _lock_status(scoped: bool) -> Any:
    c = conversations.c
    query = select(c.status).where(c.id == bindparam("b_cid"))
    if scoped:
        query = query.where(c.owner_id == bindparam("b_owner"))
    return query.with_for_update()


#: The conversation's status, its row locked (writers of one conversation queue here).
_LOCK_STATUS: Final = {scoped: Prepared(_lock_status(scoped)) for scoped in (True, False)}


def _probe() -> Any:
    m = messages.c
    child = messages.alias("child")
    children = (
        select(func.count())
        .where(child.c.conversation_id == m.conversation_id, child.c.parent_seq == m.seq)
        .scalar_subquery()
    )
    return select(m.seq, m.depth, m.on_active_path, children).where(
        m.conversation_id == bindparam("b_cid"), m.id == bindparam("b_pid")
    )


#: The parent of an append (by id, in the conversation): its seq, depth, whether it is on the
#: active path, and how many children it has (the new child's sibling index).
_PARENT: Final = Prepared(_probe())
_ROOTS: Final = Prepared(
    select(func.count()).where(
        messages.c.conversation_id == bindparam("b_cid"), messages.c.parent_seq.is_(None)
    )
)
#: The active path's messages after ``b_below`` leave it.
_LEAVE_BELOW: Final = Prepared(
    update(messages)
    .where(
        messages.c.conversation_id == bindparam("b_cid"),
        messages.c.on_active_path == true(),
        messages.c.seq > bindparam("b_below", type_=Integer()),
    )
    .values(on_active_path=False)
)


def append_under(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    new: _messages.NewMessage,
    parent_id: uuid.UUID | None,
    charge: tuple[int, str] | None = None,
) -> Message:
    """Append ``new`` as a child of ``parent_id`` (``None``: a new root) and make it the
    active leaf; the messages below the parent on the old active path leave it. With an
    idempotency key already used in the conversation, return that message, writing nothing."""
    params: dict[str, Any] = {"b_cid": conversation_id}
    if owner is not None:
        params["b_owner"] = owner
    status = _LOCK_STATUS[owner is not None].first_value(conn, params)
    if status is None:
        raise NotFoundError("conversation", conversation_id)
    if status not in _messages.APPENDABLE:
        raise ConflictError(f"cannot append to a {status} conversation", field="status")
    key = new.idempotency_key
    if key is not None and (found := _messages.existing(conn, None, conversation_id, key)):
        return found
    if parent_id is None:
        parent_seq, depth, on_path = None, 0, True
        sibling_index = int(_ROOTS.first_value(conn, {"b_cid": conversation_id}))
    else:
        rows = _PARENT.rows(conn, {"b_cid": conversation_id, "b_pid": parent_id})
        if not rows:
            raise NotFoundError("message", parent_id, field="parent_id")
        parent_seq, parent_depth, on_path, sibling_index = rows[0]
        depth = parent_depth + 1
    seq = _messages.bump_under(conn, conversation_id, depth)
    if on_path:
        _LEAVE_BELOW.execute(conn, {"b_cid": conversation_id, "b_below": parent_seq or 0})
    else:
        assert parent_seq is not None  # roots count as on the path
        _activate(conn, conversation_id, parent_seq)
    message = _messages.stored(
        new,
        conversation_id,
        seq,
        utcnow(),
        parent_seq=parent_seq,
        depth=depth,
        sibling_index=int(sibling_index),
    )
    _messages.insert_one(conn, message)
    _messages.record_tools(conn, message, new)
    _messages.charge_for(conn, owner, conversation_id, message, charge)
    return message


def sibling_of(
    conn: Connection,
    owner: uuid.UUID | None,
    message_id: uuid.UUID,
    new: _messages.NewMessage,
    role: str,
    charge: tuple[int, str] | None = None,
) -> Message:
    """Append ``new`` as a sibling of ``message_id`` (same parent; a new root for a root),
    which must have ``role`` (``user`` for an edit, ``assistant`` for a regenerate)."""
    original = _message(conn, owner, message_id, "message_id")
    if original.role != role:
        raise ConflictError(
            f"message {message_id} is a {original.role} message, not a {role} message",
            field="message_id",
        )
    parent_id = None
    if original.parent_seq is not None:
        m = messages.c
        parent_id = conn.execute(
            select(m.id).where(
                m.conversation_id == original.conversation_id, m.seq == original.parent_seq
            )
        ).scalar_one()
    return append_under(conn, owner, original.conversation_id, new, parent_id, charge)


def _ancestry(conversation_id: uuid.UUID, seq: int) -> Any:
    """A recursive CTE of the message ``seq`` and its ancestors (``seq`` column)."""
    m = messages.c
    up = (
        select(m.seq, m.parent_seq)
        .where(m.conversation_id == conversation_id, m.seq == seq)
        .cte("ancestry", recursive=True)
    )
    parent = messages.alias("parent")
    return up.union_all(
        select(parent.c.seq, parent.c.parent_seq).where(
            parent.c.conversation_id == conversation_id, parent.c.seq == up.c.parent_seq
        )
    )


def _activate(conn: Connection, conversation_id: uuid.UUID, leaf_seq: int) -> None:
    """Make the path to ``leaf_seq`` the active path: the old path's messages below the two
    paths' last common message leave it, the new path's below it join it."""
    m = messages.c
    up = _ancestry(conversation_id, leaf_seq)
    rows = conn.execute(
        select(m.seq, m.on_active_path)
        .join(up, m.seq == up.c.seq)
        .where(m.conversation_id == conversation_id)
    ).all()
    common = max((seq for seq, on in rows if on), default=0)
    joining = sorted(seq for seq, on in rows if not on)
    conn.execute(
        update(messages)
        .where(m.conversation_id == conversation_id, m.on_active_path == true(), m.seq > common)
        .values(on_active_path=False)
    )
    if joining:
        conn.execute(
            update(messages)
            .where(m.conversation_id == conversation_id, m.seq.in_(joining))
            .values(on_active_path=True)
        )


def _newest_leaf_under(conn: Connection, conversation_id: uuid.UUID, seq: int) -> int:
    """The newest leaf of the subtree of ``seq``: its highest ``seq`` (a child always comes
    after its parent, so the newest descendant has no child)."""
    m = messages.c
    down = (
        select(m.seq)
        .where(m.conversation_id == conversation_id, m.seq == seq)
        .cte("subtree", recursive=True)
    )
    child = messages.alias("child")
    down = down.union_all(
        select(child.c.seq).where(
            child.c.conversation_id == conversation_id, child.c.parent_seq == down.c.seq
        )
    )
    return int(conn.execute(select(func.max(down.c.seq))).scalar_one())


def switch(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> Message:
    """Move the active leaf to the newest leaf under ``message_id`` (itself, if a leaf), as a
    chat UI does when the user picks a sibling; returns that leaf."""
    _lock(conn, owner, conversation_id)
    chosen = _in_conversation(conn, conversation_id, message_id, "message_id")
    leaf_seq = _newest_leaf_under(conn, conversation_id, chosen.seq)
    _activate(conn, conversation_id, leaf_seq)
    m = messages.c
    leaf = from_row(
        Message,
        conn.execute(
            select(*_COLUMNS).where(m.conversation_id == conversation_id, m.seq == leaf_seq)
        ).one(),
    )
    c = conversations.c
    conn.execute(
        update(conversations)
        .where(c.id == conversation_id)
        .values(active_leaf_seq=leaf.seq, path_length=leaf.depth + 1, updated_at=utcnow())
    )
    return leaf


def _ordered(query: Select[Any]) -> Select[Any]:
    return query.order_by(messages.c.seq)


def path(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID | None,
    include_hidden: bool = False,
) -> list[Message]:
    """The messages from the root to ``message_id`` (``None``: the active path), root
    first; hidden ones only with ``include_hidden`` (the path stays one path: its other
    messages keep their places)."""
    m = messages.c
    if message_id is None:
        _messages.require_conversation(conn, owner, conversation_id)
        query = select(*_COLUMNS).where(
            m.conversation_id == conversation_id, m.on_active_path == true()
        )
        if not include_hidden:
            query = query.where(m.hidden_at.is_(None))
        return [from_row(Message, row) for row in conn.execute(_ordered(query))]
    end = _message(conn, owner, message_id, "message_id")
    if end.conversation_id != conversation_id:
        raise NotFoundError("message", message_id, field="message_id")
    found = _path_to(conn, conversation_id, end.seq)
    return found if include_hidden else [one for one in found if one.hidden_at is None]


def _path_to(conn: Connection, conversation_id: uuid.UUID, seq: int) -> list[Message]:
    m = messages.c
    up = _ancestry(conversation_id, seq)
    query = (
        select(*_COLUMNS).join(up, m.seq == up.c.seq).where(m.conversation_id == conversation_id)
    )
    return [from_row(Message, row) for row in conn.execute(_ordered(query))]


def siblings(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> list[Message]:
    """The children of ``message_id``'s parent (the roots, for a root), the message among
    them, in ``sibling_index`` order: a UI shows ``message.sibling_index + 1`` of ``len``."""
    message = _message(conn, owner, message_id, "message_id")
    return _children_of(conn, message.conversation_id, message.parent_seq)


def children(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> list[Message]:
    """The children of ``message_id``, in ``sibling_index`` order."""
    message = _message(conn, owner, message_id, "message_id")
    return _children_of(conn, message.conversation_id, message.seq)


def _children_of(
    conn: Connection, conversation_id: uuid.UUID, parent_seq: int | None
) -> list[Message]:
    m = messages.c
    parent = m.parent_seq.is_(None) if parent_seq is None else m.parent_seq == parent_seq
    query = select(*_COLUMNS).where(m.conversation_id == conversation_id, parent)
    return [from_row(Message, row) for row in conn.execute(_ordered(query))]


def tree(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> list[Message]:
    """Every message of the conversation, every branch, in ``seq`` order (parents first):
    what a UI needs to draw the tree in one read."""
    _messages.require_conversation(conn, owner, conversation_id)
    query = select(*_COLUMNS).where(messages.c.conversation_id == conversation_id)
    return [from_row(Message, row) for row in conn.execute(_ordered(query))]


def leaves(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> list[Message]:
    """The messages without children (one per branch), oldest first."""
    _messages.require_conversation(conn, owner, conversation_id)
    m = messages.c
    child = messages.alias("child")
    has_child = (
        select(child.c.seq)
        .where(child.c.conversation_id == m.conversation_id, child.c.parent_seq == m.seq)
        .exists()
    )
    query = select(*_COLUMNS).where(m.conversation_id == conversation_id, ~has_child)
    return [from_row(Message, row) for row in conn.execute(_ordered(query))]


def fork(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    new_owner: uuid.UUID | None,
    title: str | None,
) -> Conversation:
    """A new conversation (of ``new_owner``, else the source's owner) holding copies of the
    path from the root to ``message_id``, not the siblings; it records where it came from.
    The copies keep role, content, intent, metadata, model and times, not usage: the tokens
    were spent once, in the source."""
    c = conversations.c
    source_query = select(*_CONVERSATION_COLUMNS).where(c.id == conversation_id)
    if owner is not None:
        source_query = source_query.where(c.owner_id == owner)
    source_row = conn.execute(source_query).first()
    if source_row is None:
        raise NotFoundError("conversation", conversation_id)
    source = from_row(Conversation, source_row)
    end = _in_conversation(conn, conversation_id, message_id, "message_id")
    copied = _path_to(conn, conversation_id, end.seq)
    now = utcnow()
    fork_id = _ids.new_id()
    copies = [
        Message(
            id=_ids.new_id(),
            conversation_id=fork_id,
            seq=index + 1,
            role=original.role,
            content=original.content,
            intent=original.intent,
            metadata=original.metadata,
            model=original.model,
            input_tokens=None,
            output_tokens=None,
            cost=None,
            latency_ms=None,
            request_id=original.request_id,
            idempotency_key=original.idempotency_key,
            created_at=original.created_at,
            parent_seq=index or None,
            depth=index,
            sibling_index=0,
            on_active_path=True,
            # A reply still streaming is copied as far as its message row goes: ended.
            status="incomplete" if original.status == "streaming" else original.status,
            status_reason=(
                "forked while streaming"
                if original.status == "streaming"
                else original.status_reason
            ),
            # A hidden or erased message stays so in the fork (the fork is one more read).
            hidden_at=original.hidden_at,
            hidden_by=original.hidden_by,
            erased_at=original.erased_at,
        )
        for index, original in enumerate(copied)
        for streaming in (original.status == "streaming",)
    ]
    newest = max(copy.created_at for copy in copies)
    conversation = Conversation(
        id=fork_id,
        owner_id=source.owner_id if new_owner is None else new_owner,
        title=source.title if title is None else title,
        intent=source.intent,
        status="active",
        message_count=len(copies),
        last_message_at=newest,
        last_activity_at=max(newest, now),
        archived_at=None,
        metadata=source.metadata,
        created_at=now,
        updated_at=now,
        active_leaf_seq=len(copies),
        path_length=len(copies),
        forked_from_conversation_id=conversation_id,
        forked_from_message_id=message_id,
    )
    try:
        conn.execute(conversations.insert(), record_values(conversation))
    except IntegrityError as exc:
        if backend_of(conn).violation(exc).kind == "foreign_key":
            raise NotFoundError("user", new_owner, field="owner_id") from exc
        raise
    _messages.insert_batch(conn, copies)
    _copy_tool_calls(conn, conversation_id, copied, copies)
    return conversation


def _copy_tool_calls(
    conn: Connection, source: uuid.UUID, copied: list[Message], copies: list[Message]
) -> None:
    """Copy the tool calls of the copied messages to their copies; a call whose answer was
    not copied (it was on another branch) is pending in the fork."""
    asked = _tools.calls_of(conn, source, [original.seq for original in copied])
    if not asked:
        return
    copy_of = {original.seq: copy for original, copy in zip(copied, copies, strict=True)}
    rows: list[dict[str, Any]] = []
    for seq, calls in asked.items():
        for call in calls:
            values = record_values(call)
            copy = copy_of[seq]
            answer = copy_of.get(call.result_seq) if call.result_seq is not None else None
            values.update(
                conversation_id=copy.conversation_id, message_id=copy.id, message_seq=copy.seq
            )
            if answer is None:
                values.update(
                    status="pending",
                    result_message_id=None,
                    result_seq=None,
                    answered_at=None,
                    latency_ms=None,
                )
            else:
                values.update(result_message_id=answer.id, result_seq=answer.seq)
            rows.append(values)
    conn.execute(tool_calls.insert(), rows)
