"""Messages: append (the hot path), reads by position, keyset pages, counts.

An append is one transaction that bumps the conversation's ``message_count`` (taking its row
lock, which serialises appends to one conversation), uses the new count as the message's
``seq`` and inserts the message. So ``seq`` is gap-free and ``message_count`` always equals the
number of messages, under any concurrency, on every backend.

Messages form a tree (docs/trees.md). An append without a parent continues the active leaf:
its bump matches only while the active leaf is the newest message (the common case, then the
parent is ``seq - 1``) or equals the leaf read just before (after a switch), and moves the
leaf in the same statement. Appends with a parent are in :mod:`.trees`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Integer,
    Row,
    Select,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from .. import _cursors, _ids
from .. import _validate as check
from .._backends import backend_of
from .._bulk import copy_rows
from .._prepared import Prepared, RecordLoader, record_maker
from .._schema import (
    IDEMPOTENCY_KEY_MAX,
    INTENT_MAX,
    MODEL_MAX,
    REQUEST_ID_MAX,
    ROLES,
    conversations,
    messages,
)
from .._types import UTCDateTime, result_loader
from ..errors import ConflictError, NotFoundError, TransientError, ValidationError
from ..records import Message, Order, Page
from . import _once, tokens
from . import tool_calls as _tools
from ._common import from_row, keyset_query, page_of, record_columns, record_values, utcnow

__all__ = [
    "APPENDABLE",
    "NewMessage",
    "append",
    "append_many",
    "bump_under",
    "charge_for",
    "count",
    "existing",
    "get",
    "insert_batch",
    "insert_one",
    "last",
    "page",
    "prepare",
    "prepare_many",
    "record_tools",
    "stored",
]

APPENDABLE: Final = ("active", "archived")
_COLUMNS: Final = record_columns(messages, Message)
_KIND: Final = "messages"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message, ready to append."""

    role: str
    content: str
    intent: str | None
    metadata: dict[str, Any] | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost: Decimal | None
    latency_ms: int | None
    request_id: str | None
    idempotency_key: str | None
    #: For imports: when the message was originally written (``None``: now).
    created_at: datetime | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    #: ``streaming`` for the begin of a streamed reply (``_ops.streams``).
    status: str = "completed"
    #: The id, when the caller drew it before the first attempt (``None``: drawn here).
    id: uuid.UUID | None = None
    #: The tool calls an assistant message asks for (docs/tools.md).
    tool_calls: tuple[_tools.NewToolCall, ...] = ()
    #: The call a ``tool`` message answers.
    tool_answer: _tools.ToolAnswer | None = None

    @property
    def has_tools(self) -> bool:
        """Whether storing this message writes tool call rows too."""
        return bool(self.tool_calls) or self.tool_answer is not None


#: ``NewMessage(...)`` without the frozen dataclass ``__init__`` (batches build thousands).
_make_new_message: Final = record_maker(NewMessage)


def prepare(
    limits: check.Limits,
    *,
    role: object,
    content: object,
    intent: object = None,
    metadata: object = None,
    model: object = None,
    input_tokens: object = None,
    output_tokens: object = None,
    cost: object = None,
    latency_ms: object = None,
    request_id: object = None,
    idempotency_key: object = None,
    created_at: object = None,
    cached_input_tokens: object = None,
    reasoning_tokens: object = None,
    tool_calls: object = None,
    tool_call_id: object = None,
    tool_status: object = None,
    tool_latency_ms: object = None,
) -> NewMessage:
    """Validate a message before anything is written."""
    kind = check.choice("role", role, ROLES)
    return _make_new_message(
        role=kind,
        content=check.text("content", content, limits.max_content_chars),
        intent=check.optional_text("intent", intent, INTENT_MAX),
        metadata=check.metadata("metadata", metadata, limits),
        model=check.optional_text("model", model, MODEL_MAX),
        input_tokens=check.count("input_tokens", input_tokens),
        output_tokens=check.count("output_tokens", output_tokens),
        cost=check.money("cost", cost),
        latency_ms=check.count("latency_ms", latency_ms),
        request_id=check.optional_text("request_id", request_id, REQUEST_ID_MAX),
        idempotency_key=check.optional_text(
            "idempotency_key", idempotency_key, IDEMPOTENCY_KEY_MAX
        ),
        created_at=check.optional_aware_datetime("created_at", created_at),
        cached_input_tokens=check.count("cached_input_tokens", cached_input_tokens),
        reasoning_tokens=check.count("reasoning_tokens", reasoning_tokens),
        status="completed",
        id=None,
        tool_calls=_tools.prepare_calls(limits, tool_calls, kind),
        tool_answer=_tools.prepare_answer(kind, tool_call_id, tool_status, tool_latency_ms),
    )


_BATCH_FIELDS: Final = frozenset(
    (
        "role",
        "content",
        "intent",
        "metadata",
        "model",
        "input_tokens",
        "output_tokens",
        "cost",
        "latency_ms",
        "request_id",
        "idempotency_key",
        "created_at",
        "cached_input_tokens",
        "reasoning_tokens",
        "tool_calls",
        "tool_call_id",
        "tool_status",
        "tool_latency_ms",
    )
)


def prepare_many(limits: check.Limits, batch: object) -> list[NewMessage]:
    """Validate a batch of message mappings; errors name the item (``messages[3].content``)."""
    if isinstance(batch, str | bytes) or not isinstance(batch, Iterable):
        raise ValidationError("messages", "must be a list of mappings")
    prepared: list[NewMessage] = []
    keys: set[str] = set()
    for index, item in enumerate(batch):
        where = f"messages[{index}]"
        if len(prepared) >= limits.max_batch_size:
            raise ValidationError(
                "messages",
                f"more than {limits.max_batch_size:,} messages in one batch",
                limit=limits.max_batch_size,
            )
        if not isinstance(item, Mapping):
            raise ValidationError(where, f"must be a mapping, not {type(item).__name__}")
        unknown = set(item) - _BATCH_FIELDS
        if unknown:
            raise ValidationError(where, f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        if "role" not in item or "content" not in item:
            raise ValidationError(where, "role and content are required")
        try:
            new = prepare(limits, **item)
        except ValidationError as exc:
            raise ValidationError(f"{where}.{exc.field}", exc.problem, limit=exc.limit) from None
        if new.idempotency_key is not None:
            if new.idempotency_key in keys:
                raise ValidationError(f"{where}.idempotency_key", "repeats a key of this batch")
            keys.add(new.idempotency_key)
        prepared.append(new)
    return prepared


def _bump(returning: bool, scoped: bool, leaf: str = "newest") -> Any:
    """``UPDATE conversations`` that counts one more message, makes it the active leaf and
    moves the activity time forward (never backward: ``created_at`` is the caller's clock,
    ``seq`` is the order).

    ``leaf`` says where the new message hangs: ``"newest"`` (under the active leaf while it is
    the newest message: its parent is ``seq - 1``), ``"given"`` (under the active leaf while
    it is still ``b_leaf``, read before) or ``"parent"`` (an append with a parent: the path
    becomes ``b_depth + 1`` long). Returns the new ``message_count`` and ``path_length``, and
    the ``owner_id`` (whom a charge debits: no look-up after the bump)."""
    c = conversations.c
    now = bindparam("b_now", type_=UTCDateTime())
    # The statuses are rendered into the SQL: an expanding IN parameter costs post-compile
    # work on every append.
    appendable = c.status.in_([literal_column(f"'{status}'") for status in APPENDABLE])
    stmt = update(conversations).where(c.id == bindparam("b_cid"), appendable)
    if scoped:
        stmt = stmt.where(c.owner_id == bindparam("b_owner"))
    path_length: Any = c.path_length + 1
    if leaf == "newest":
        stmt = stmt.where(or_(c.active_leaf_seq == c.message_count, c.active_leaf_seq.is_(None)))
    elif leaf == "given":
        stmt = stmt.where(c.active_leaf_seq == bindparam("b_leaf", type_=Integer()))
    else:
        path_length = bindparam("b_depth", type_=Integer()) + 1
    count_value: Any = c.message_count + 1
    if not returning:
        # MariaDB has no UPDATE ... RETURNING: LAST_INSERT_ID(expr) hands the new count back in
        # the statement's OK packet (cursor.lastrowid), without another round trip.
        count_value = func.last_insert_id(count_value)
    # Ordered: MariaDB evaluates SET left to right with the values already assigned, the
    # others with the old row; reading message_count before assigning it agrees on both.
    stmt = stmt.ordered_values(
        (c.active_leaf_seq, c.message_count + 1),
        (c.path_length, path_length),
        (c.message_count, count_value),
        (
            c.last_message_at,
            case(
                (c.last_message_at.is_(None) | (c.last_message_at < now), now),
                else_=c.last_message_at,
            ),
        ),
        (c.last_activity_at, case((c.last_activity_at < now, now), else_=c.last_activity_at)),
        (c.updated_at, now),
    )
    return stmt.returning(c.message_count, c.path_length, c.owner_id) if returning else stmt


_BUMP: Final = {
    (r, s, leaf): Prepared(_bump(r, s, leaf))
    for r in (True, False)
    for s in (True, False)
    for leaf in ("newest", "given", "parent")
}


def _bump_and_insert(scoped: bool, leaf: str) -> Any:
    """The append in one statement, where the database has writable CTEs (PostgreSQL):
    ``WITH bump AS (UPDATE conversations ... RETURNING message_count, path_length) INSERT
    INTO messages ... SELECT ..., bump.message_count, ... FROM bump RETURNING seq, ...``. No
    conversation row matched: nothing is inserted and no row comes back."""
    bump = _bump(True, scoped, leaf).cte("bump")
    parent: Any = (
        func.nullif(bump.c.message_count - 1, 0)
        if leaf == "newest"
        else bindparam("b_leaf", type_=Integer())
    )
    computed = {
        "seq": bump.c.message_count,
        "parent_seq": parent,
        "depth": bump.c.path_length - 1,
    }
    row = [
        computed[column.name]
        if column.name in computed
        else bindparam(
            "b_cid" if column.name == "conversation_id" else f"m_{column.name}",
            type_=column.type,
        )
        for column in _COLUMNS
    ]
    m = messages.c
    return (
        messages.insert()
        .from_select([column.name for column in _COLUMNS], select(*row).select_from(bump))
        .returning(m.seq, m.parent_seq, m.depth)
    )


_BUMP_INSERT: Final = {
    (scoped, leaf): Prepared(_bump_and_insert(scoped, leaf))
    for scoped in (True, False)
    for leaf in ("newest", "given")
}

# After a lost race on an idempotency key: undo the bump of an append under the active leaf
# (the leaf goes back to the parent, the path one shorter). Runs under the row lock.
_UNBUMP: Final = (
    update(conversations)
    .where(conversations.c.id == bindparam("b_cid"))
    .values(
        message_count=conversations.c.message_count - 1,
        active_leaf_seq=bindparam("b_leaf", type_=Integer()),
        path_length=conversations.c.path_length - 1,
        last_message_at=(
            select(func.max(messages.c.created_at))
            .where(messages.c.conversation_id == bindparam("b_cid"))
            .scalar_subquery()
        ),
        last_activity_at=func.coalesce(
            select(func.max(messages.c.created_at))
            .where(messages.c.conversation_id == bindparam("b_cid"))
            .scalar_subquery(),
            conversations.c.created_at,
        ),
    )
)
_INSERT: Final = messages.insert()


def _insert_reading_depth() -> Any:
    """The insert where the bump returned no path length (MariaDB): the depth is the
    conversation's new path length less one, read by the insert from the row it locked."""
    c = conversations.c
    depth = (
        select(c.path_length - 1)
        .where(c.id == bindparam("conversation_id", type_=c.id.type))
        .scalar_subquery()
    )
    values = {
        column.name: bindparam(column.name, type_=column.type)
        for column in messages.columns
        if column.name != "depth"
    }
    return messages.insert().values(depth=depth, **values)


#: Every column, bound by name: the append's insert, run on the driver's cursor.
_INSERT_ONE: Final = Prepared(_INSERT)
#: MariaDB's append insert: it reads the depth and hands it back (``INSERT ... RETURNING``).
_INSERT_READING_DEPTH: Final = Prepared(_insert_reading_depth().returning(messages.c.depth))


def _owned(scoped: bool) -> Any:
    """``EXISTS`` the conversation (owned by ``b_owner`` when scoped)."""
    c = conversations.c
    condition = c.id == bindparam("b_cid")
    if scoped:
        condition = condition & (c.owner_id == bindparam("b_owner"))
    return exists().where(condition)


#: The columns of a message but its conversation id, which the caller knows already.
_IN_CONVERSATION: Final = [column for column in _COLUMNS if column.name != "conversation_id"]


def _in_conversation(conversation_id: uuid.UUID, row: Row[Any]) -> Message:
    """A message from a row selected with :data:`_IN_CONVERSATION`."""
    return Message(row[0], conversation_id, *row[1:])  # type: ignore[call-arg]


@cache
def _select(scoped: bool, role: bool, by_key: bool = False) -> Select[Any]:
    m = messages.c
    stmt = select(*_IN_CONVERSATION).where(m.conversation_id == bindparam("b_cid"))
    if scoped:
        stmt = stmt.where(_owned(True))
    if role:
        stmt = stmt.where(m.role == bindparam("b_role"))
    if by_key:
        stmt = stmt.where(m.idempotency_key == bindparam("b_key"))
    return stmt


@cache
def _last(scoped: bool, role: bool, hidden: bool = False) -> Select[Any]:
    # The active path is one range of ix_messages_active_path, in seq order (a parent always
    # precedes its child, so the path's seq order is its root-to-leaf order). Hidden messages
    # are skipped by a test of the rows the range reads anyway.
    query = _select(scoped, role).where(messages.c.on_active_path == true())
    if not hidden:
        query = query.where(messages.c.hidden_at.is_(None))
    return query.order_by(messages.c.seq.desc()).limit(bindparam("b_n", type_=Integer()))


_LAST: Final = {
    (scoped, role, hidden): Prepared(_last(scoped, role, hidden))
    for scoped in (True, False)
    for role in (True, False)
    for hidden in (True, False)
}
#: Messages from rows selected with :data:`_IN_CONVERSATION`: ``load(row, conversation_id)``.
_LOAD_IN_CONVERSATION: Final = RecordLoader(Message, _IN_CONVERSATION, given=("conversation_id",))


def _to_message(row: Row[Any]) -> Message:
    return from_row(Message, row)


def _params(owner: uuid.UUID | None, conversation_id: uuid.UUID) -> dict[str, Any]:
    if owner is None:
        return {"b_cid": conversation_id}
    return {"b_cid": conversation_id, "b_owner": owner}


_BY_KEY: Final = {scoped: Prepared(_select(scoped, False, True)) for scoped in (True, False)}


def existing(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, key: str
) -> Message | None:
    params = _params(owner, conversation_id)
    params["b_key"] = key
    rows = _BY_KEY[owner is not None].rows(conn, params)
    return _LOAD_IN_CONVERSATION(conn.dialect)(rows[0], conversation_id) if rows else None


_EXISTS: Final = {scoped: Prepared(select(_owned(scoped))) for scoped in (True, False)}


def require_conversation(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID
) -> None:
    """Raise NotFoundError unless the conversation exists (and is ``owner``'s)."""
    if not _EXISTS[owner is not None].first_value(conn, _params(owner, conversation_id)):
        raise NotFoundError("conversation", conversation_id)


def _leaf_or_refusal(conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID) -> int:
    """Why an append's bump matched no conversation row: missing (or not owner's), its
    status, or an active leaf that is not the newest message (then its ``seq`` is returned,
    for the bump that continues it)."""
    c = conversations.c
    query = select(c.status, c.active_leaf_seq).where(c.id == conversation_id)
    if owner is not None:
        query = query.where(c.owner_id == owner)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError("conversation", conversation_id)
    status, leaf = row
    if status not in APPENDABLE:
        raise ConflictError(f"cannot append to a {status} conversation", field="status")
    return int(leaf)


#: Bumps lost to concurrent switches before an append gives up (each loss means another
#: transaction moved the active leaf between our read and our bump).
_LEAF_ATTEMPTS: Final = 100


#: A retried append learns whether an earlier attempt committed (see ``_once``).
APPENDED: Final = _once.inserted("message", messages, Message)


def append(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    new: NewMessage,
    charge: tuple[int, str] | None = None,
) -> Message:
    """Append ``new`` to the conversation, under its active leaf; with an idempotency key
    already used there, return the message it stored instead and write nothing. With
    ``charge=(amount, reason)``, debit the conversation's owner in the same transaction
    (nothing is written if the balance does not cover it)."""
    key = new.idempotency_key
    if key is not None and (found := existing(conn, owner, conversation_id, key)) is not None:
        return found
    backend = backend_of(conn)
    now = utcnow()
    if backend.numbers_appends and owner is None and new.created_at is None:
        return _append_numbered(conn, conversation_id, new, charge, now)
    params = _params(owner, conversation_id)
    params["b_now"] = now
    scoped = owner is not None
    if key is None and backend.writable_cte:
        message = stored(new, conversation_id, 0, now)
        values = record_values(message)
        for name in ("conversation_id", "seq", "parent_seq", "depth"):
            del values[name]
        params.update({f"m_{name}": value for name, value in values.items()})
        leaf = "newest"
        for _ in range(_LEAF_ATTEMPTS):
            rows = _BUMP_INSERT[scoped, leaf].rows(conn, params)
            if rows:
                seq, parent_seq, depth = rows[0]
                message = _placed(message, seq, parent_seq, depth)
                record_tools(conn, message, new)
                charge_for(conn, owner, conversation_id, message, charge)
                return message
            params["b_leaf"] = _leaf_or_refusal(conn, owner, conversation_id)
            leaf = "given"
        raise TransientError("the active leaf kept moving under the append")
    seq, depth, parent_seq, payer = _bump_linear(conn, backend.update_returning, owner, params)
    if (
        key is not None
        and not backend.writes_exclusive
        and (found := existing(conn, owner, conversation_id, key)) is not None
    ):
        # Another append with this key committed while we waited for the row lock.
        conn.execute(_UNBUMP, {"b_cid": conversation_id, "b_leaf": parent_seq})
        return found
    message = stored(new, conversation_id, seq, now, parent_seq=parent_seq, depth=depth)
    if depth < 0:
        values = record_values(message)
        del values["depth"]
        depth = _INSERT_READING_DEPTH.first_value(conn, values)
        message = _placed(message, seq, parent_seq, depth)
    else:
        _INSERT_ONE.execute_record(conn, message)
    record_tools(conn, message, new)
    if charge is not None and owner is None and payer is not None:
        owner = _owner_of_row(conn, payer)
    charge_for(conn, owner, conversation_id, message, charge)
    return message


def _owner_of_row(conn: Connection, value: Any) -> uuid.UUID:
    """The ``owner_id`` a bump returned, as the driver gave it, as a UUID."""
    load = result_loader(conversations.c.owner_id.type, conn.dialect)
    owner: uuid.UUID = value if load is None else load(value)
    return owner


#: The append the database numbers (``Backend.numbers_appends``: MariaDB's trigger
#: ``trg_messages_append`` bumps the conversation inside this insert): ``seq`` 0 asks for it.
_INSERT_NUMBERED: Final = Prepared(
    _INSERT.returning(messages.c.seq, messages.c.parent_seq, messages.c.depth)
)


def _append_numbered(
    conn: Connection,
    conversation_id: uuid.UUID,
    new: NewMessage,
    charge: tuple[int, str] | None,
    now: datetime,
) -> Message:
    """:func:`append` in one statement where the database numbers the message (unscoped, at
    ``now``: the trigger takes the message's ``created_at`` as the bump's time). The insert is
    atomic with its bump: a lost race on the idempotency key fails the whole statement (the
    unique index), which leaves nothing to undo."""
    message = stored(new, conversation_id, 0, now)
    try:
        ((seq, parent_seq, depth),) = _INSERT_NUMBERED.record_rows_of(conn, message)
    except DBAPIError as exc:
        if backend_of(conn).refused_append(exc):
            _leaf_or_refusal(conn, None, conversation_id)  # raises why
            raise TransientError("the conversation changed under the append") from exc
        key = new.idempotency_key
        if key is not None and isinstance(exc, IntegrityError):
            # Another append with this key committed while we waited for the row lock.
            found = existing(conn, None, conversation_id, key)
            if found is not None:
                return found
        raise
    message = _placed(message, seq, parent_seq, depth)
    record_tools(conn, message, new)
    charge_for(conn, None, conversation_id, message, charge)
    return message


def record_tools(conn: Connection, message: Message, new: NewMessage) -> None:
    """Store the tool calls ``new`` carries, or the call it answers (after its row is in)."""
    if new.tool_calls or new.tool_answer is not None:
        _tools.record(conn, message, new.tool_calls, new.tool_answer)


def bump_under(conn: Connection, conversation_id: uuid.UUID, depth: int) -> int:
    """Bump the conversation (locked already) for a message of ``depth`` that becomes the
    active leaf; its ``seq``."""
    params = {"b_cid": conversation_id, "b_now": utcnow(), "b_depth": depth}
    backend = backend_of(conn)
    bump = _BUMP[backend.update_returning, False, "parent"]
    if backend.update_returning:
        seq, _path_length, _owner = bump.rows(conn, params)[0]
        return int(seq)
    _rowcount, lastrowid = bump.execute_lastrowid(conn, params)
    return int(lastrowid)


def insert_one(conn: Connection, message: Message) -> None:
    """Insert one message record as it is."""
    _INSERT_ONE.execute_record(conn, message)


def _bump_linear(
    conn: Connection, returning: bool, owner: uuid.UUID | None, params: dict[str, Any]
) -> tuple[int, int, int | None, Any]:
    """Bump the conversation for an append under its active leaf: ``(seq, depth,
    parent_seq, owner_id)`` of the new message (the owner as the driver returns it: see
    :func:`_owner_of_row`). Without ``RETURNING`` (MariaDB) the depth and the owner are not
    known here: the insert reads the depth from the conversation row (``-1`` stands for it),
    the owner is ``None``."""
    leaf = "newest"
    for _ in range(_LEAF_ATTEMPTS):
        bump = _BUMP[returning, owner is not None, leaf]
        if returning:
            rows = bump.rows(conn, params)
            if rows:
                seq, path_length, owner_id = rows[0]
                return seq, path_length - 1, _parent_of(seq, leaf, params), owner_id
        else:
            rowcount, lastrowid = bump.execute_lastrowid(conn, params)
            if rowcount == 1:
                return lastrowid, -1, _parent_of(lastrowid, leaf, params), None
        params["b_leaf"] = _leaf_or_refusal(conn, owner, params["b_cid"])
        leaf = "given"
    raise TransientError("the active leaf kept moving under the append")


def _parent_of(seq: int, leaf: str, params: dict[str, Any]) -> int | None:
    if leaf == "given":
        return int(params["b_leaf"])
    return seq - 1 if seq > 1 else None


def charge_for(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    message: Message,
    charge: tuple[int, str] | None,
) -> None:
    """Debit the conversation's owner for ``message`` (in the append's transaction)."""
    if charge is None:
        return
    payer = owner
    if payer is None:
        payer = conn.execute(
            select(conversations.c.owner_id).where(conversations.c.id == conversation_id)
        ).scalar_one()
    amount, reason = charge
    tokens.debit_in(conn, payer, amount, reason, message.id)


def _placed(message: Message, seq: int, parent_seq: int | None, depth: int) -> Message:
    """``message`` numbered ``seq`` under ``parent_seq`` (built before the database gave the
    numbers)."""
    values = record_values(message)
    values["seq"], values["parent_seq"], values["depth"] = seq, parent_seq, depth
    return _make_message(**values)


#: ``Message(...)`` without the frozen dataclass ``__init__`` (a quarter of its cost).
_make_message: Final = record_maker(Message)


def stored(
    new: NewMessage,
    conversation_id: uuid.UUID,
    seq: int,
    now: datetime,
    *,
    parent_seq: int | None = None,
    depth: int = 0,
    sibling_index: int = 0,
) -> Message:
    """The record of ``new`` as it will be stored (on the active path: the new leaf)."""
    return _make_message(
        id=new.id or _ids.new_id(),
        conversation_id=conversation_id,
        seq=seq,
        role=new.role,  # validated against ROLES
        content=new.content,
        intent=new.intent,
        metadata=new.metadata,
        model=new.model,
        input_tokens=new.input_tokens,
        output_tokens=new.output_tokens,
        cost=new.cost,
        latency_ms=new.latency_ms,
        request_id=new.request_id,
        idempotency_key=new.idempotency_key,
        created_at=new.created_at or now,
        parent_seq=parent_seq,
        depth=depth,
        sibling_index=sibling_index,
        on_active_path=True,
        status=new.status,
        status_reason=None,
        cached_input_tokens=new.cached_input_tokens,
        reasoning_tokens=new.reasoning_tokens,
        hidden_at=None,
        hidden_by=None,
        erased_at=None,
    )


def append_many(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    batch: list[NewMessage],
) -> list[Message]:
    """Append a batch in one transaction: one row lock, one multi-row insert, one counter
    update. Messages whose idempotency key the conversation already holds are not written;
    the stored ones are returned in their place. The result is in the batch's order."""
    c = conversations.c
    query = select(
        c.status,
        c.message_count,
        c.last_message_at,
        c.last_activity_at,
        c.active_leaf_seq,
        c.path_length,
    ).where(c.id == conversation_id)
    if owner is not None:
        query = query.where(c.owner_id == owner)
    row = conn.execute(query.with_for_update()).first()
    if row is None:
        raise NotFoundError("conversation", conversation_id)
    status, count_before, last_message_at, last_activity_at, leaf, path_length = row
    if status not in APPENDABLE:
        raise ConflictError(f"cannot append to a {status} conversation", field="status")
    keys = [new.idempotency_key for new in batch if new.idempotency_key is not None]
    known: dict[str, Message] = {}
    if keys:
        m = messages.c
        found = conn.execute(
            select(*_COLUMNS).where(
                m.conversation_id == conversation_id, m.idempotency_key.in_(keys)
            )
        )
        known = {message.idempotency_key or "": message for message in map(_to_message, found)}
    now = utcnow()
    result: list[Message] = []
    fresh: list[Message] = []
    tooled: list[tuple[Message, NewMessage]] = []
    for new in batch:
        if new.idempotency_key is not None and new.idempotency_key in known:
            result.append(known[new.idempotency_key])
            continue
        # A chain under the active leaf (a leaf: the first child, like each after it).
        seq = count_before + len(fresh) + 1
        message = stored(
            new, conversation_id, seq, now, parent_seq=leaf, depth=path_length + len(fresh)
        )
        leaf = seq
        fresh.append(message)
        result.append(message)
        if new.has_tools:
            tooled.append((message, new))
    if not fresh:
        return result
    insert_batch(conn, fresh)
    newest = max(message.created_at for message in fresh)
    conn.execute(
        update(conversations)
        .where(c.id == conversation_id)
        .values(
            message_count=count_before + len(fresh),
            active_leaf_seq=leaf,
            path_length=path_length + len(fresh),
            last_message_at=max(newest, last_message_at) if last_message_at else newest,
            last_activity_at=max(newest, last_activity_at),
            updated_at=now,
        )
    )
    # After the counters: an answer checks that its call is on the (new) active path.
    _tools.record_many(conn, ((m, n.tool_calls, n.tool_answer) for m, n in tooled))
    return result


def _appended_many(
    conn: Connection,
    drawn: list[Any],
    conversation_id: uuid.UUID,
    batch: list[NewMessage],
) -> list[Message] | _once.NotWritten:
    """The result of an :func:`append_many` attempt that committed the ids ``drawn``: each
    keyed item is the conversation's message with its key, the others take the attempt's
    unkeyed messages in the order of their ids (one transaction: all of them or none)."""
    ids = [value for value in drawn if isinstance(value, uuid.UUID)]
    if not ids:
        return _once.NOT_WRITTEN
    m = messages.c
    written = {
        message.id: message
        for message in map(_to_message, conn.execute(select(*_COLUMNS).where(m.id.in_(ids))))
    }
    if not written:
        return _once.NOT_WRITTEN
    keys = [new.idempotency_key for new in batch if new.idempotency_key is not None]
    by_key: dict[str, Message] = {}
    if keys:
        found = conn.execute(
            select(*_COLUMNS).where(
                m.conversation_id == conversation_id, m.idempotency_key.in_(keys)
            )
        )
        by_key = {message.idempotency_key or "": message for message in map(_to_message, found)}
    unkeyed = iter(
        [written[key] for key in ids if key in written and written[key].idempotency_key is None]
    )
    return [
        by_key[new.idempotency_key] if new.idempotency_key is not None else next(unkeyed)
        for new in batch
    ]


def appended_many(conversation_id: uuid.UUID, batch: list[NewMessage]) -> _once.Settle[Any]:
    """How a retried :func:`append_many` learns whether an earlier attempt committed."""
    return _once.Settle("message batch", _appended_many, (conversation_id, batch))


def insert_batch(conn: Connection, batch: list[Message]) -> None:
    """Insert the messages with the backend's bulk path: ``COPY`` on PostgreSQL (values made
    straight from the records), ``executemany`` of the prepared insert elsewhere (PyMySQL
    turns it into multi-row ``INSERT`` statements). A driver error is raised as
    ``Connection.execute`` would raise it, so it is translated like any other."""
    if conn.dialect.name == "postgresql":
        names, rows = _INSERT_ONE.record_rows(conn, batch)
        if copy_rows(conn, messages, names, rows):
            return
    for start in range(0, len(batch), _BATCH_CHUNK):
        _INSERT_ONE.execute_records(conn, batch[start : start + _BATCH_CHUNK])


#: Rows per executemany call (bounds the size of one multi-row statement).
_BATCH_CHUNK: Final = 1000


def get(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> Message:
    """One message by id."""
    m, c = messages.c, conversations.c
    query = select(*_COLUMNS).where(m.id == message_id)
    if owner is not None:
        query = query.join(conversations, c.id == m.conversation_id).where(c.owner_id == owner)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError("message", message_id)
    return from_row(Message, row)


def last(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    n: int,
    role: str | None,
    include_hidden: bool = False,
    paired: bool = True,
) -> list[Message]:
    """The last ``n`` messages of the active path (hidden ones skipped unless
    ``include_hidden``), oldest first: an index range scan, never the whole thread. Without a
    ``role`` filter (and unless not ``paired``) the window keeps tool calls with their
    results: a ``tool`` message whose call was asked before the window is left out."""
    params = _params(owner, conversation_id)
    params["b_n"] = n
    if role is not None:
        params["b_role"] = role
    rows = _LAST[owner is not None, role is not None, include_hidden].rows(conn, params)
    if not rows:
        require_conversation(conn, owner, conversation_id)
        return []
    load = _LOAD_IN_CONVERSATION(conn.dialect)
    window = [load(row, conversation_id) for row in reversed(rows)]
    if role is not None or not paired:
        return window
    # Never split a tool call from its result (docs/tools.md): drop the results whose call
    # was asked before the window starts (one more read, only when the window holds any).
    return _tools.paired(conn, conversation_id, window)


#: Reads back the sort key of this listing's cursors: the ``seq`` of a message.
decode_cursor = _cursors.decoder(_KIND, _cursors.INTEGER)


def page(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
    role: str | None,
    include_hidden: bool = False,
) -> Page[Message]:
    """A keyset page of the conversation's messages by ``seq`` (hidden ones only with
    ``include_hidden``)."""
    require_conversation(conn, owner, conversation_id)
    forward = before is None
    key = after if forward else before
    statement = _page_statement(
        role is not None, (order == "desc") == forward, key is not None, include_hidden
    )
    load = _LOAD_IN_CONVERSATION(conn.dialect)
    params: dict[str, Any] = {"b_cid": conversation_id, "b_limit": limit + 1}
    if role is not None:
        params["b_role"] = role
    if key is not None:
        (params["b_seq"],) = key
    return page_of(
        statement.rows(conn, params),
        limit,
        forward=forward,
        kind=_KIND,
        convert=lambda row: load(row, conversation_id),
        cursor_key=_seq_key,
    )


@cache
def _page_statement(role: bool, descending: bool, keyed: bool, hidden: bool) -> Prepared:
    """A page of one conversation's messages by ``seq``, for one (role filter, direction,
    keyed or first page, hidden ones or not), built once."""
    m = messages.c
    query = select(*_IN_CONVERSATION).where(m.conversation_id == bindparam("b_cid"))
    if not hidden:
        query = query.where(m.hidden_at.is_(None))
    if role:
        query = query.where(m.role == bindparam("b_role"))
    return Prepared(
        keyset_query(
            query,
            [m.seq],
            [bindparam("b_seq", type_=Integer())] if keyed else None,
            descending=descending,
            limit=bindparam("b_limit", type_=Integer()),
        )
    )


def _seq_key(message: Message) -> tuple[int]:
    return (message.seq,)


def count(
    conn: Connection, owner: uuid.UUID | None, conversation_id: uuid.UUID, role: str | None
) -> int:
    """How many messages the conversation holds (of ``role``, when given)."""
    if role is None:
        c = conversations.c
        query = select(c.message_count).where(c.id == conversation_id)
        if owner is not None:
            query = query.where(c.owner_id == owner)
        value = conn.execute(query).scalar()
        if value is None:
            raise NotFoundError("conversation", conversation_id)
        return int(value)
    require_conversation(conn, owner, conversation_id)
    query = (
        select(func.count())
        .select_from(messages)
        .where(messages.c.conversation_id == conversation_id, messages.c.role == role)
    )
    return int(conn.execute(query).scalar_one())
