"""Tool calls: the calls an assistant message asks for, the ``tool`` messages answering them,
and history windows that never split the two (docs/tools.md).

A call is written with the assistant message that carries it, in the append's transaction
(:func:`record`); a ``tool`` message naming a ``tool_call_id`` answers that call in its own
append's transaction: the call must exist in the conversation, still be pending, and be asked
by a message on the answer's path (its ancestors: the answer is the active leaf once
appended). Any refusal raises before the transaction commits, so nothing is written.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from .. import _cursors
from .. import _validate as check
from .._prepared import Prepared
from .._schema import (
    TOOL_CALL_ID_MAX,
    TOOL_CALLS_PER_MESSAGE_MAX,
    TOOL_NAME_MAX,
    conversations,
    messages,
    tool_calls,
)
from ..errors import ConflictError, NotFoundError, ValidationError
from ..records import Message, Order, Page, ToolCall, ToolStats
from ._common import from_row, paginate, record_columns

__all__ = [
    "ANSWERS",
    "NewToolCall",
    "ToolAnswer",
    "calls_and_answers",
    "calls_of",
    "decode_cursor",
    "decode_stats_cursor",
    "get",
    "lenient",
    "of_message",
    "page",
    "pair_window",
    "paired",
    "pending",
    "prepare_answer",
    "prepare_calls",
    "record",
    "record_many",
    "stats",
    "usable",
    "usable_id",
    "window_links",
    "without_leading_results",
]

#: How a ``tool`` message can end a call.
ANSWERS: Final = ("success", "error")
_COLUMNS: Final = record_columns(tool_calls, ToolCall)
_KIND: Final = "tool_calls"
_STATS_KIND: Final = "tool_stats"
#: Keys of a call mapping understood besides ``id``, ``name`` and the arguments, and the
#: ``type`` values that only say "this is a tool call" (LangChain, OpenAI, Anthropic).
_CALL_KEYS: Final = frozenset({"id", "name", "arguments", "args", "input", "metadata", "type"})
_PLAIN_TYPES: Final = frozenset({"tool_call", "function", "tool_use"})


@dataclass(frozen=True, slots=True)
class NewToolCall:
    """A validated tool call, ready to store with its message."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    metadata: dict[str, Any] | None
    #: ``False`` for framework histories: a call id the conversation holds already is
    #: skipped instead of refused.
    strict: bool = True


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    """What a ``tool`` message says about the call it answers."""

    call_id: str
    status: str
    latency_ms: int | None
    #: ``False`` for framework histories (LangChain, LlamaIndex): an answer to a call that
    #: is not recorded, answered already or on another branch is stored unlinked instead of
    #: refused (the framework's message is the source of truth).
    strict: bool = True


def _arguments(field: str, value: object, limits: check.Limits) -> dict[str, Any]:
    """A call's arguments: a JSON object, or its JSON text (OpenAI sends a string)."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ValidationError(field, "is not a JSON object (not valid JSON)") from None
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a JSON object, not {type(value).__name__}")
    checked = check.metadata(field, value, limits)
    assert checked is not None
    return checked


def _one_call(field: str, item: object, limits: check.Limits) -> NewToolCall:
    if not isinstance(item, Mapping):
        raise ValidationError(field, f"must be a mapping, not {type(item).__name__}")
    function = item.get("function")
    if isinstance(function, Mapping) and "name" not in item:
        # OpenAI's {"id", "type": "function", "function": {"name", "arguments"}}.
        item = {**{k: v for k, v in item.items() if k != "function"}, **function}
    unknown = set(item) - _CALL_KEYS
    if unknown:
        raise ValidationError(field, f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
    given = [key for key in ("arguments", "args", "input") if key in item]
    if len(given) > 1:
        raise ValidationError(field, f"give the arguments once, not as {' and '.join(given)}")
    metadata = check.metadata(f"{field}.metadata", item.get("metadata"), limits)
    kind = item.get("type")
    if kind is not None and kind not in _PLAIN_TYPES:
        if not isinstance(kind, str):
            raise ValidationError(f"{field}.type", "must be a string")
        metadata = {**(metadata or {}), "type": kind}
    return NewToolCall(
        call_id=check.nonblank(f"{field}.id", item.get("id"), TOOL_CALL_ID_MAX),
        name=check.nonblank(f"{field}.name", item.get("name"), TOOL_NAME_MAX),
        arguments=_arguments(
            f"{field}.{given[0] if given else 'arguments'}",
            item.get(given[0]) if given else None,
            limits,
        ),
        metadata=metadata,
    )


def prepare_calls(
    limits: check.Limits, value: object, role: str, field: str = "tool_calls"
) -> tuple[NewToolCall, ...]:
    """Validate the tool calls of a message: a list of mappings with ``id``, ``name`` and
    ``arguments`` (also read as LangChain's ``args``, Anthropic's ``input`` or OpenAI's
    ``function``), only on an assistant message, at most ``TOOL_CALLS_PER_MESSAGE_MAX``, ids
    unique within the message."""
    if value is None:
        return ()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(field, "must be a list of tool calls")
    items = list(value)
    if not items:
        return ()
    if role != "assistant":
        raise ValidationError(field, f"only an assistant message carries tool calls, not {role}")
    if len(items) > TOOL_CALLS_PER_MESSAGE_MAX:
        raise ValidationError(
            field,
            f"{len(items)} tool calls exceed the limit of {TOOL_CALLS_PER_MESSAGE_MAX}",
            limit=TOOL_CALLS_PER_MESSAGE_MAX,
        )
    calls = tuple(_one_call(f"{field}[{i}]", item, limits) for i, item in enumerate(items))
    seen: set[str] = set()
    for index, call in enumerate(calls):
        if call.call_id in seen:
            raise ValidationError(f"{field}[{index}].id", "repeats a call id of this message")
        seen.add(call.call_id)
    return calls


def prepare_answer(
    role: str, call_id: object, status: object, latency_ms: object
) -> ToolAnswer | None:
    """Validate what a ``tool`` message answers: ``tool_call_id`` (only on a tool message),
    ``tool_status`` (``success`` or ``error``) and the tool's ``tool_latency_ms``."""
    if call_id is None:
        if status is not None and status != "success":
            raise ValidationError("tool_status", "needs a tool_call_id")
        if latency_ms is not None:
            raise ValidationError("tool_latency_ms", "needs a tool_call_id")
        return None
    if role != "tool":
        raise ValidationError("tool_call_id", f"only a tool message answers a call, not {role}")
    return ToolAnswer(
        call_id=check.nonblank("tool_call_id", call_id, TOOL_CALL_ID_MAX),
        status=check.choice("tool_status", "success" if status is None else status, ANSWERS),
        latency_ms=check.count("tool_latency_ms", latency_ms),
    )


# -- writing ------------------------------------------------------------------------------------


def _insert_calls(conn: Connection, message: Message, calls: Sequence[NewToolCall]) -> None:
    t = tool_calls.c
    taken = set(
        conn.execute(
            select(t.call_id).where(
                t.conversation_id == message.conversation_id,
                t.call_id.in_([call.call_id for call in calls]),
            )
        ).scalars()
    )
    if taken and not all(call.strict for call in calls):
        calls = [call for call in calls if call.call_id not in taken]
        if not calls:
            return
    for index, call in enumerate(calls):
        if call.call_id in taken:
            raise ConflictError(
                f"tool call {call.call_id} was asked already in this conversation",
                field=f"tool_calls[{index}].id",
            )
    conn.execute(
        insert(tool_calls),
        [
            {
                "conversation_id": message.conversation_id,
                "call_id": call.call_id,
                "message_id": message.id,
                "message_seq": message.seq,
                "position": position,
                "name": call.name,
                "arguments": call.arguments,
                "metadata": call.metadata,
                "status": "pending",
                "result_message_id": None,
                "result_seq": None,
                "requested_at": message.created_at,
                "answered_at": None,
                "latency_ms": None,
            }
            for position, call in enumerate(calls)
        ],
    )


_CALL_STATE: Final = (
    select(
        tool_calls.c.status,
        tool_calls.c.requested_at,
        messages.c.on_active_path,
    )
    .join(
        messages,
        and_(
            messages.c.conversation_id == tool_calls.c.conversation_id,
            messages.c.seq == tool_calls.c.message_seq,
        ),
    )
    .with_for_update()
)


def _answer(conn: Connection, message: Message, answer: ToolAnswer) -> None:
    """Mark the call ``answer`` names as answered by ``message`` (the active leaf now)."""
    t = tool_calls.c
    where = and_(t.conversation_id == message.conversation_id, t.call_id == answer.call_id)
    row = conn.execute(_CALL_STATE.where(where)).first()
    if not answer.strict and (row is None or row[0] != "pending" or not row[2]):
        return
    if row is None:
        raise NotFoundError("tool call", answer.call_id, field="tool_call_id")
    status, requested_at, on_path = row
    if status != "pending":
        raise ConflictError(
            f"tool call {answer.call_id} is answered already (one result per call)",
            field="tool_call_id",
        )
    if not on_path:
        raise ConflictError(
            f"tool call {answer.call_id} was asked on another branch of the conversation",
            field="tool_call_id",
        )
    latency = answer.latency_ms
    if latency is None:
        latency = max(0, int((message.created_at - requested_at).total_seconds() * 1000))
    conn.execute(
        update(tool_calls)
        .where(where)
        .values(
            status=answer.status,
            result_message_id=message.id,
            result_seq=message.seq,
            answered_at=message.created_at,
            latency_ms=latency,
        )
    )


def record(
    conn: Connection,
    message: Message,
    calls: Sequence[NewToolCall],
    answer: ToolAnswer | None,
) -> None:
    """Store the calls ``message`` carries, or the answer it gives, in its append's
    transaction (after the message row is in)."""
    if calls:
        _insert_calls(conn, message, calls)
    if answer is not None:
        _answer(conn, message, answer)


def record_many(
    conn: Connection,
    written: Iterable[tuple[Message, Sequence[NewToolCall], ToolAnswer | None]],
) -> None:
    """:func:`record` for a batch, in its order (an answer may follow its call in the batch)."""
    for message, calls, answer in written:
        record(conn, message, calls, answer)


# -- reading ------------------------------------------------------------------------------------


def _to_call(row: Any) -> ToolCall:
    return from_row(ToolCall, row)


def _scoped(query: Any, owner: uuid.UUID | None) -> Any:
    if owner is None:
        return query
    return query.where(
        tool_calls.c.conversation_id.in_(
            select(conversations.c.id).where(conversations.c.owner_id == owner)
        )
    )


def get(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, call_id: str
) -> ToolCall:
    """One call by its id in the conversation."""
    t = tool_calls.c
    query = select(*_COLUMNS).where(t.conversation_id == conversation_id, t.call_id == call_id)
    row = conn.execute(_scoped(query, owner)).first()
    if row is None:
        raise NotFoundError("tool call", call_id)
    return _to_call(row)


def of_message(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> list[ToolCall]:
    """The calls a message asked for, in their order (none for a message without calls)."""
    m, c = messages.c, conversations.c
    query = select(m.id).where(m.id == message_id)
    if owner is not None:
        query = query.join(conversations, c.id == m.conversation_id).where(c.owner_id == owner)
    if conn.execute(query).first() is None:
        raise NotFoundError("message", message_id)
    t = tool_calls.c
    rows = conn.execute(select(*_COLUMNS).where(t.message_id == message_id).order_by(t.position))
    return [_to_call(row) for row in rows]


def calls_of(
    conn: Connection, conversation_id: uuid.UUID, seqs: Sequence[int]
) -> dict[int, list[ToolCall]]:
    """The calls asked by the messages ``seqs`` of a conversation, by message seq (for
    readers that rebuild framework messages)."""
    found: dict[int, list[ToolCall]] = {}
    if not seqs:
        return found
    t = tool_calls.c
    rows = conn.execute(
        select(*_COLUMNS)
        .where(t.conversation_id == conversation_id, t.message_seq.in_(sorted(set(seqs))))
        .order_by(t.message_seq, t.position)
    )
    for row in rows:
        call = _to_call(row)
        found.setdefault(call.message_seq, []).append(call)
    return found


def calls_and_answers(
    conn: Connection, conversation_id: uuid.UUID, asked: Sequence[int], answers: Sequence[int]
) -> tuple[dict[int, list[ToolCall]], dict[int, ToolCall]]:
    """The calls asked by the messages ``asked`` (as :func:`calls_of`) and the calls
    answered by the ``tool`` messages ``answers`` (by the answer's seq), in one statement."""
    if not asked and not answers:
        return {}, {}
    t = tool_calls.c
    rows = conn.execute(
        select(*_COLUMNS)
        .where(
            t.conversation_id == conversation_id,
            or_(t.message_seq.in_(sorted(set(asked))), t.result_seq.in_(sorted(set(answers)))),
        )
        .order_by(t.message_seq, t.position)
    )
    wanted, answering = set(asked), set(answers)
    calls: dict[int, list[ToolCall]] = {}
    answered: dict[int, ToolCall] = {}
    for call in map(_to_call, rows):
        if call.message_seq in wanted:
            calls.setdefault(call.message_seq, []).append(call)
        if call.result_seq is not None and call.result_seq in answering:
            answered[call.result_seq] = call
    return calls, answered


def pending(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID
) -> list[ToolCall]:
    """The calls on the conversation's active path that nothing answered yet, oldest first:
    what the app must still run before the next model call."""
    from .messages import require_conversation

    require_conversation(conn, owner, conversation_id)
    t, m = tool_calls.c, messages.c
    query = (
        select(*_COLUMNS)
        .join(
            messages,
            and_(m.conversation_id == t.conversation_id, m.seq == t.message_seq),
        )
        .where(
            t.conversation_id == conversation_id,
            t.status == "pending",
            m.on_active_path == true(),
        )
        .order_by(t.message_seq, t.position)
    )
    return [_to_call(row) for row in conn.execute(query)]


#: Reads back the sort key of the calls listing: ``(requested_at, conversation_id, call_id)``.
decode_cursor = _cursors.decoder(_KIND, _cursors.TIME, _cursors.ID, _cursors.TEXT)
#: Reads back the sort key of the per-tool statistics: the tool's name.
decode_stats_cursor = _cursors.decoder(_STATS_KIND, _cursors.TEXT)


def _filters(
    conversation_id: uuid.UUID | None,
    name: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    t = tool_calls.c
    found: list[ColumnElement[bool]] = []
    if conversation_id is not None:
        found.append(t.conversation_id == conversation_id)
    if name is not None:
        found.append(t.name == name)
    if status is not None:
        found.append(t.status == status)
    if since is not None:
        found.append(t.requested_at >= since)
    if until is not None:
        found.append(t.requested_at < until)
    return found


def page(
    conn: Connection,
    owner: uuid.UUID | None,
    *,
    conversation_id: uuid.UUID | None,
    name: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[ToolCall]:
    """A keyset page of calls by ``(requested_at, conversation_id, call_id)``, filtered by
    conversation, tool name, status (``error``: the failures) and time window."""
    if conversation_id is not None:
        from .messages import require_conversation

        require_conversation(conn, owner, conversation_id)
    t = tool_calls.c
    query = select(*_COLUMNS).where(*_filters(conversation_id, name, status, since, until))
    return paginate(
        conn,
        _scoped(query, owner),
        [t.requested_at, t.conversation_id, t.call_id],
        kind=_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_call,
        cursor_key=_call_key,
    )


def _call_key(call: ToolCall) -> tuple[str, str, str]:
    return (call.requested_at.isoformat(), str(call.conversation_id), call.call_id)


def stats(
    conn: Connection,
    owner: uuid.UUID | None,
    *,
    conversation_id: uuid.UUID | None,
    name: str | None,
    since: datetime | None,
    until: datetime | None,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[ToolStats]:
    """Calls per tool name (by state) with the latency of the answered ones, a keyset page
    by name."""
    if conversation_id is not None:
        from .messages import require_conversation

        require_conversation(conn, owner, conversation_id)
    t = tool_calls.c

    def counted(state: str) -> Any:
        return func.coalesce(func.sum(case((t.status == state, 1), else_=0)), 0)

    query = (
        select(
            t.name,
            func.count(),
            counted("success"),
            counted("error"),
            counted("pending"),
            func.avg(t.latency_ms),
            func.max(t.latency_ms),
        )
        .where(*_filters(conversation_id, name, None, since, until))
        .group_by(t.name)
    )
    return paginate(
        conn,
        _scoped(query, owner),
        [t.name],
        kind=_STATS_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_stats,
        cursor_key=_stats_key,
    )


def _to_stats(row: Any) -> ToolStats:
    name, calls, succeeded, failed, waiting, average, longest = row
    return ToolStats(
        name=name,
        calls=int(calls),
        succeeded=int(succeeded),
        failed=int(failed),
        pending=int(waiting),
        avg_latency_ms=None if average is None else float(average),
        max_latency_ms=None if longest is None else int(longest),
    )


def _stats_key(row: ToolStats) -> tuple[str]:
    return (row.name,)


# -- history windows ----------------------------------------------------------------------------


def pair_window(window: Sequence[Message], asked_at: Mapping[int, int]) -> list[Message]:
    """``window`` (an unbroken end of a path, oldest first) without the ``tool`` messages
    whose call was asked before the window starts: a window never begins with, or holds, a
    result whose call it dropped. ``asked_at`` maps a tool message's seq to the seq of the
    message that asked its call; a tool message not in it answers a call inside the window
    or no recorded call (an app's plain ``tool`` message), and is kept: only a recorded pair
    can be split. A call in the window keeps every answer on the path, since an answer
    always follows its call."""
    if not window:
        return []
    first = window[0].seq
    return [
        message
        for message in window
        if message.role != "tool" or asked_at.get(message.seq, first) >= first
    ]


#: The tool messages of a window ``[b_lo, b_hi]`` answering a call asked before it: one range
#: of ``ix_tool_calls_result``, built once (the hot path of ``messages.last``).
_ANSWERED_BEFORE: Final = Prepared(
    select(tool_calls.c.result_seq, tool_calls.c.message_seq).where(
        tool_calls.c.conversation_id == bindparam("b_cid"),
        tool_calls.c.result_seq >= bindparam("b_lo", type_=Integer()),
        tool_calls.c.result_seq <= bindparam("b_hi", type_=Integer()),
        tool_calls.c.message_seq < bindparam("b_lo", type_=Integer()),
    )
)


def window_links(
    conn: Connection, conversation_id: uuid.UUID, window: Sequence[Message]
) -> dict[int, int]:
    """For the ``tool`` messages of ``window`` (an unbroken end of a path, oldest first)
    whose call was asked before it: the seq of the asking message. A tool message not in the
    result answers a call inside the window, or no recorded call."""
    if not window:
        return {}
    params = {"b_cid": conversation_id, "b_lo": window[0].seq, "b_hi": window[-1].seq}
    return {int(result): int(asked) for result, asked in _ANSWERED_BEFORE.rows(conn, params)}


def without_leading_results(window: list[Message]) -> list[Message]:
    """``window`` without the ``tool`` messages at its start: a model's context cannot begin
    with a result (the framework histories and ``ConversationMemory`` read this way, where a
    plain ``messages.last`` keeps an app's tool message that answers no recorded call)."""
    start = 0
    while start < len(window) and window[start].role == "tool":
        start += 1
    return window[start:] if start else window


def paired(conn: Connection, conversation_id: uuid.UUID, window: list[Message]) -> list[Message]:
    """:func:`pair_window` of ``window``, reading the links it needs."""
    if not any(message.role == "tool" for message in window):
        return window
    return pair_window(window, window_links(conn, conversation_id, window))


def lenient(batch: list[Any]) -> list[Any]:
    """``batch`` (``NewMessage`` items) with its answers not strict (framework histories)."""
    from dataclasses import replace

    relaxed = []
    for new in batch:
        if new.tool_answer is not None:
            new = replace(new, tool_answer=replace(new.tool_answer, strict=False))
        if new.tool_calls:
            new = replace(new, tool_calls=tuple(replace(c, strict=False) for c in new.tool_calls))
        relaxed.append(new)
    return relaxed


def usable(calls: Iterable[object], limits: check.Limits | None = None) -> list[Any]:
    """The calls of a framework message that can be records (valid, ids not repeated, at
    most ``TOOL_CALLS_PER_MESSAGE_MAX``); the framework's message itself keeps all of them."""
    found: list[Any] = []
    seen: set[str] = set()
    for item in calls:
        try:
            call = _one_call("tool_calls", item, limits or check.Limits())
        except ValidationError:
            continue
        if call.call_id not in seen and len(found) < TOOL_CALLS_PER_MESSAGE_MAX:
            seen.add(call.call_id)
            found.append(item)
    return found


def usable_id(value: object) -> str | None:
    """A framework answer's call id when it can name a record."""
    if isinstance(value, str) and value.strip() and len(value) <= TOOL_CALL_ID_MAX:
        return value
    return None
