"""LangGraph checkpoints stored in chatledger (``chatledger.integrations.langgraph``).

A LangGraph thread is bound to one conversation (``graph_threads``); its checkpoints,
channel values (one blob per channel version, shared by the checkpoints that did not change
the channel) and pending writes hang off that binding. A ``put`` stores the checkpoint *and*
appends the new messages of its ``messages`` channel to the conversation in one transaction,
under the conversation's row lock: the same lock appends take, so the checkpoint history and the
message log cannot drift, and two invocations of one thread are serialised here.

Nothing in this module imports LangGraph: serialisation is the saver's, and the few places
that need a decoded checkpoint take a callable.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import (
    Connection,
    and_,
    delete,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from .. import _ids
from .._backends import backend_of
from .._schema import (
    CHANNEL_MAX,
    CHANNEL_VERSION_MAX,
    CHECKPOINT_ID_MAX,
    CHECKPOINT_NS_MAX,
    SERDE_TYPE_MAX,
    TASK_ID_MAX,
    THREAD_ID_MAX,
    conversations,
    graph_blobs,
    graph_checkpoints,
    graph_threads,
    graph_writes,
    messages,
)
from ..errors import ConflictError, NotFoundError, ValidationError
from . import _checkpoint_sql as _sql
from . import conversations as _conversations
from . import messages as _messages
from . import trees as _trees
from ._common import utcnow

__all__ = [
    "CheckpointConflictError",
    "NewCheckpoint",
    "Put",
    "StoredCheckpoint",
    "Thread",
    "delete_thread",
    "get",
    "insert_writes",
    "page",
    "put",
    "put_writes",
    "require_text",
    "thread",
]

logger = logging.getLogger(__name__)

#: Keys looked up per ``IN (...)`` list.
_CHUNK: Final = 500


class CheckpointConflictError(ConflictError):
    """A checkpoint ``put`` whose parent is not the newest checkpoint of its thread: another
    invocation of the same thread wrote first. Nothing of this ``put`` was written (neither the
    checkpoint nor its messages). Re-run the invocation: it starts from the new head, so no
    turn is lost. ``retriable`` is true in that sense (re-running the *invocation*, not the
    same ``put``, succeeds)."""

    retriable = True

    def __init__(self, thread_id: str, checkpoint_ns: str, parent: str | None, head: str) -> None:
        where = f"thread {thread_id!r}" + (f" namespace {checkpoint_ns!r}" if checkpoint_ns else "")
        super().__init__(
            f"checkpoint conflict on {where}: this run started from checkpoint {parent}, but "
            f"{head} was written meanwhile by another run; re-run the invocation",
            field="checkpoint_id",
        )
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.parent_checkpoint_id = parent
        self.head_checkpoint_id = head


def require_text(field_name: str, value: object, limit: int) -> str:
    """A string key of at most ``limit`` characters (thread ids, namespaces, channels...)."""
    if not isinstance(value, str):
        raise ValidationError(field_name, f"must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise ValidationError(field_name, f"is longer than {limit} characters", limit=limit)
    if "\x00" in value:
        raise ValidationError(field_name, "contains a NUL character")
    return value


@dataclass(frozen=True, slots=True)
class Thread:
    """A LangGraph thread and the conversation it is bound to."""

    key: uuid.UUID
    thread_id: str
    conversation_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class NewCheckpoint:
    """A serialised checkpoint, ready to store."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata_type: str
    metadata: bytes
    #: (channel, version, serde type, blob) of the channels that changed.
    blobs: Sequence[tuple[str, str, str, bytes | None]]
    #: The messages channel's messages with their ids (messages without one are not logged).
    messages: Sequence[tuple[str, Any]] = ()
    #: Maps and validates the messages to append (called on the new ones only).
    prepare: Callable[[Sequence[Any]], Sequence[_messages.NewMessage]] | None = None
    #: Accept a parent that is not the head (time travel; ``linear=False`` savers).
    allow_fork: bool = False
    #: Who a new conversation is created for when the thread is not bound yet.
    user_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A stored checkpoint with what ``get_tuple`` needs, still serialised but the
    checkpoint itself (decoded once, by the caller's ``decode``)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: dict[str, Any]
    metadata_type: str
    metadata: bytes
    #: (channel, serde type, blob) of the checkpoint's channel values.
    values: list[tuple[str, str, bytes | None]] = field(default_factory=list)
    #: (task_id, channel, serde type, blob) of its pending writes, in replay order.
    writes: list[tuple[str, str, str, bytes | None]] = field(default_factory=list)


def check_keys(thread_id: object, checkpoint_ns: object) -> tuple[str, str]:
    """Validate a thread id and namespace."""
    return (
        require_text("thread_id", thread_id, THREAD_ID_MAX),
        require_text("checkpoint_ns", checkpoint_ns, CHECKPOINT_NS_MAX),
    )


def check_blob_keys(checkpoint_id: object, channels: Mapping[str, object]) -> None:
    """Validate a checkpoint id and the (channel, version) keys of its blobs."""
    require_text("checkpoint_id", checkpoint_id, CHECKPOINT_ID_MAX)
    for channel, version in channels.items():
        require_text("channel", channel, CHANNEL_MAX)
        require_text("channel version", str(version), CHANNEL_VERSION_MAX)


def check_task(task_id: object, types: Sequence[str]) -> None:
    """Validate a task id and the serde types of its writes."""
    require_text("task_id", task_id, TASK_ID_MAX)
    for kind in types:
        require_text("serde type", kind, SERDE_TYPE_MAX)


# -- threads ----------------------------------------------------------------------------------


_THREAD: Final = (
    graph_threads.c.id,
    graph_threads.c.thread_id,
    graph_threads.c.conversation_id,
)


def thread(
    conn: Connection, owner: uuid.UUID | None, thread_id: str, user_id: uuid.UUID | None = None
) -> Thread | None:
    """The binding of ``thread_id`` (``None`` if the thread has none, or is another user's).

    Thread ids are per owner: the scope's (``owner``), else the acting user's (``user_id``).
    Unscoped and without a user, a thread id that several users bound is ambiguous
    (:class:`~chatledger.ValidationError`), unless it is the id of the conversation it names."""
    t = graph_threads.c
    holder = owner if owner is not None else user_id
    query = select(*_THREAD).where(t.thread_id == thread_id)
    if holder is not None:
        row = conn.execute(query.where(t.owner_id == holder)).first()
        if row is None and owner is None:
            row = _named_binding(conn, thread_id)
        return None if row is None else Thread(row[0], row[1], row[2])
    rows = conn.execute(query.limit(2)).all()
    if len(rows) > 1:
        row = _named_binding(conn, thread_id)
        if row is None:
            raise ValidationError(
                "thread_id",
                f"{thread_id!r} is a thread of several users: name the user (the saver's or "
                "chat store's user_id, or configurable['chatledger_user_id'])",
            )
        rows = [row]
    return Thread(rows[0][0], rows[0][1], rows[0][2]) if rows else None


def _named_binding(conn: Connection, thread_id: str) -> Any:
    """The binding of a thread id that is the id of the conversation it is bound to."""
    try:
        named = uuid.UUID(thread_id)
    except ValueError:
        return None
    t = graph_threads.c
    return conn.execute(
        select(*_THREAD).where(t.thread_id == thread_id, t.conversation_id == named)
    ).first()


def _conversation_for(
    conn: Connection, owner: uuid.UUID | None, thread_id: str, user_id: uuid.UUID | None
) -> tuple[uuid.UUID, uuid.UUID]:
    """The conversation a new thread is bound to and its owner: the one whose id the thread
    id is, or a new one of the acting user (the scope's, else ``user_id``)."""
    try:
        named = uuid.UUID(thread_id)
    except ValueError:
        named = None
    if named is not None:
        c = conversations.c
        found = conn.execute(select(c.owner_id).where(c.id == named)).first()
        if found is not None:
            if owner is not None and found.owner_id != owner:
                # Another user's conversation: it does not exist for this scope, and its id
                # cannot be taken as a thread name either.
                raise NotFoundError("conversation", named)
            return named, found.owner_id
    creator = owner or user_id
    if creator is None:
        raise ValidationError(
            "thread_id",
            f"{thread_id!r} is not the id of a conversation, and there is no user to create one "
            "for: give the saver a user_id, or configurable['chatledger_user_id']",
        )
    fields = {"title": None, "intent": None, "metadata": {"langgraph_thread_id": thread_id}}
    return _conversations.create(conn, creator, fields).id, creator


def bind(
    conn: Connection, owner: uuid.UUID | None, thread_id: str, user_id: uuid.UUID | None
) -> Thread:
    """The binding of ``thread_id`` for its owner (the scope's, else ``user_id``), made on
    first use (see :func:`_conversation_for`)."""
    found = thread(conn, owner, thread_id, user_id)
    if found is not None:
        return found
    try:
        with conn.begin_nested():
            conversation_id, holder = _conversation_for(conn, owner, thread_id, user_id)
            key = _ids.new_id()
            conn.execute(
                graph_threads.insert().values(
                    id=key,
                    owner_id=holder,
                    thread_id=thread_id,
                    conversation_id=conversation_id,
                    created_at=utcnow(),
                )
            )
            return Thread(key, thread_id, conversation_id)
    except IntegrityError:
        # Another transaction of the same owner bound it first (or the conversation named by
        # the thread id has a thread already).
        found = thread(conn, owner, thread_id, user_id)
        if found is None:
            raise
        return found


# -- put ----------------------------------------------------------------------------------------
#
# A turn of a chat graph makes three puts and two put_writes, each a transaction of its own, so
# what one costs is mostly how many statements it runs. The saver remembers what committed
# operations taught it (the thread's binding, the seq of each message it logged: both only
# ever change by deleting the thread) and passes it as ``hint``/``logged``; the statements
# below check the hint as they use it, and fall back to the full path when it is stale.


@dataclass(frozen=True, slots=True)
class Put:
    """What a ``put`` learned: the thread's binding, and the seq of the thread's messages it
    found stored or appended (by message id)."""

    thread: Thread
    logged: dict[str, int]


def _lock_conversation(conn: Connection, conversation_id: uuid.UUID) -> _sql.Tip:
    """Take the conversation's row lock, as appends do (so the order of locks is the same);
    its tip."""
    c = conversations.c
    row = conn.execute(select(*_sql.TIP).where(c.id == conversation_id).with_for_update()).one()
    return _sql.Tip(*row)


def _locked(
    conn: Connection, owner: uuid.UUID | None, new: NewCheckpoint, hint: Thread | None
) -> tuple[Thread, _sql.Tip]:
    """The thread's binding (made on first use) with its conversation's row lock held, and the
    conversation's tip. A ``hint`` costs one statement when it still holds."""
    if hint is not None:
        found = _sql.LOCK_BOUND.rows(conn, {"key": hint.key})
        if found:
            return hint, _sql.Tip(*found[0])
    bound = bind(conn, owner, new.thread_id, new.user_id)
    return bound, _lock_conversation(conn, bound.conversation_id)


def _blob_rows(key: uuid.UUID, new: NewCheckpoint) -> list[dict[str, Any]]:
    """The blobs of the changed channels, to insert where not stored yet (a channel version is
    immutable: the same version always holds the same value)."""
    return [
        {
            "thread_key": key,
            "checkpoint_ns": new.checkpoint_ns,
            "channel": channel,
            "version": version,
            "type": kind,
            "blob": blob,
        }
        for channel, version, kind, blob in new.blobs
    ]


def _store(conn: Connection, new: NewCheckpoint, values: dict[str, Any]) -> bool:
    """Insert the changed channels' blobs that are not stored yet and the checkpoint (see
    :func:`_sql.insert_checkpoint`); whether the checkpoint was inserted."""
    blobs = _blob_rows(values["thread_key"], new)
    extending = not new.allow_fork
    if backend_of(conn).writable_cte and 0 < len(blobs) <= _sql.ROWS_PER_INSERT:
        both = _sql.WITH_BLOBS[extending, len(blobs)]
        return bool(both.execute(conn, {**_sql.numbered(blobs), **values}))
    _sql.insert_rows(conn, _sql.BLOBS, blobs)
    return bool(_sql.INSERT_CHECKPOINT[extending].execute(conn, values))


def _stored_seqs(
    conn: Connection, conversation_id: uuid.UUID, keys: Sequence[str]
) -> dict[str, int]:
    """The seq of each message of ``keys`` (idempotency keys) the conversation holds."""
    if not keys:
        return {}
    if len(keys) <= _sql.ROWS_PER_INSERT:
        params: dict[str, Any] = {f"k{i}": key for i, key in enumerate(keys)}
        params["cid"] = conversation_id
        return {row[0]: row[1] for row in _sql.SEQS_BY_KEYS[len(keys)].rows(conn, params)}
    m = messages.c
    found: dict[str, int] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        rows = conn.execute(
            select(m.idempotency_key, m.seq).where(
                m.conversation_id == conversation_id, m.idempotency_key.in_(chunk)
            )
        )
        found.update((key, seq) for key, seq in rows)
    return found


def _log_messages(
    conn: Connection,
    owner: uuid.UUID | None,
    conversation_id: uuid.UUID,
    new: NewCheckpoint,
    max_batch: int,
    tip: _sql.Tip,
    logged: Mapping[str, int],
) -> dict[str, int]:
    """Append the messages whose id (idempotency key) the conversation does not hold yet, in
    their order; only those are mapped and validated. Returns the seq of every message of the
    checkpoint found stored or appended that ``logged`` (what the saver knows to be stored)
    did not hold; only the others are looked up.

    They hang under the last stored message the checkpoint's list holds before them: on a
    linear run that is the active leaf (a plain continuation); on a fork of a past checkpoint
    (``update_state``, time travel) it is a message further up, and the new messages become a
    branch of the conversation there (docs/trees.md), made the active path."""
    if not new.messages or new.prepare is None:
        return {}
    learned = _stored_seqs(
        conn, conversation_id, [key for key, _ in new.messages if key not in logged]
    )
    fresh: list[Any] = []
    keys: list[str] = []
    anchor: str | None = None
    for key, message in new.messages:
        if key not in logged and key not in learned and key not in keys:
            fresh.append(message)
            keys.append(key)
        elif not fresh and key not in keys:
            anchor = key
    if not fresh:
        return learned
    batch = list(new.prepare(fresh))
    seqs: list[int] = []
    if anchor is not None and logged.get(anchor, learned.get(anchor)) != tip.leaf:
        # Messages that do not continue the active leaf: a branch under the anchor.
        m = messages.c
        parent = conn.execute(
            select(m.id).where(m.conversation_id == conversation_id, m.idempotency_key == anchor)
        ).scalar_one()
        seqs.append(_trees.append_under(conn, owner, conversation_id, batch[0], parent).seq)
        batch = batch[1:]
    elif len(batch) == 1 and tip.status in _messages.APPENDABLE:
        seqs.append(_continue(conn, conversation_id, batch[0], tip))
        batch = []
    for start in range(0, len(batch), max_batch):
        appended = _messages.append_many(
            conn, owner, conversation_id, batch[start : start + max_batch]
        )
        seqs.extend(message.seq for message in appended)
    learned.update(zip(keys, seqs, strict=True))
    logger.debug("checkpoint %s logged %d messages", new.checkpoint_id, len(fresh))
    return learned


def _continue(
    conn: Connection, conversation_id: uuid.UUID, new: _messages.NewMessage, tip: _sql.Tip
) -> int:
    """Append one message under the active leaf, whose key the conversation is known not to
    hold (looked up under the row lock this transaction holds, so no append can race it):
    the bump and the insert of chatledger's append without its two key look-ups. Its seq."""
    seq = _messages.bump_under(conn, conversation_id, tip.path_length)
    message = _messages.stored(
        new, conversation_id, seq, utcnow(), parent_seq=tip.leaf, depth=tip.path_length
    )
    _messages.insert_one(conn, message)
    _messages.record_tools(conn, message, new)
    return seq


def _put_again(conn: Connection, new: NewCheckpoint, values: dict[str, Any]) -> None:
    """A checkpoint the insert refused: stored already (then it is replaced), or whose parent
    is not the head (:class:`CheckpointConflictError`)."""
    found = _sql.HEAD_AND_AGAIN.rows(
        conn, {"key": values["thread_key"], "ns": new.checkpoint_ns, "id": new.checkpoint_id}
    )
    head: str | None
    head, again = found[0]
    if again is None:
        if head is None or new.allow_fork or new.parent_checkpoint_id == head:
            raise RuntimeError("checkpoint insert refused without a reason")  # pragma: no cover
        raise CheckpointConflictError(
            new.thread_id, new.checkpoint_ns, new.parent_checkpoint_id, head
        )
    k = graph_checkpoints.c
    conn.execute(
        update(graph_checkpoints)
        .where(
            k.thread_key == values["thread_key"],
            k.checkpoint_ns == new.checkpoint_ns,
            k.checkpoint_id == new.checkpoint_id,
        )
        .values({name: values[name] for name in _REPLACED})
    )


#: The columns a checkpoint stored again replaces.
_REPLACED: Final = ("parent_checkpoint_id", "type", "checkpoint", "metadata_type", "metadata")


def put(
    conn: Connection,
    owner: uuid.UUID | None,
    new: NewCheckpoint,
    max_batch: int,
    hint: Thread | None = None,
    logged: Mapping[str, int] | None = None,
) -> Put:
    """Store a checkpoint, its changed channel values, and append its new messages to the
    thread's conversation, in the caller's transaction.

    Unless ``new.allow_fork``, the checkpoint must extend its namespace's head: its parent is
    the newest checkpoint, or it has no parent and the namespace has no checkpoint yet; else
    :class:`CheckpointConflictError`. Storing a checkpoint id again replaces it.

    ``hint`` is the thread's binding as the caller last saw it, ``logged`` the seqs of the
    thread's messages it knows to be stored (both from committed operations; checked here)."""
    bound, tip = _locked(conn, owner, new, hint)
    if logged is None or hint is None or bound.key != hint.key:
        logged = {}
    values = {
        "thread_key": bound.key,
        "checkpoint_ns": new.checkpoint_ns,
        "checkpoint_id": new.checkpoint_id,
        "parent_checkpoint_id": new.parent_checkpoint_id,
        "type": new.type,
        "checkpoint": new.checkpoint,
        "metadata_type": new.metadata_type,
        "metadata": new.metadata,
        "created_at": utcnow(),
    }
    if not _store(conn, new, values):
        _put_again(conn, new, values)
    learned = _log_messages(conn, owner, bound.conversation_id, new, max_batch, tip, logged)
    return Put(bound, learned)


def insert_writes(
    conn: Connection,
    thread: Thread,
    checkpoint_ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    writes: Sequence[tuple[int, str, str, bytes | None]],
) -> bool:
    """Insert a task's ordinary pending writes through a known binding, as one statement
    (:func:`put_writes` without its look-ups). Whether every write was inserted: when not,
    some were stored already (a retried task) or the binding is gone, and :func:`put_writes`
    sorts it out (inserting again is harmless: stored writes are kept)."""
    rows = _write_rows(thread.key, checkpoint_ns, checkpoint_id, task_id, task_path, writes)
    return _sql.insert_rows(conn, _sql.WRITES, rows) == len(rows)


def put_writes(
    conn: Connection,
    owner: uuid.UUID | None,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    writes: Sequence[tuple[int, str, str, bytes | None]],
    *,
    replace: bool,
    user_id: uuid.UUID | None,
) -> Thread | None:
    """Store a task's pending writes ((idx, channel, serde type, blob)) against a checkpoint.
    With ``replace`` (special writes: errors, interrupts...), stored ones are overwritten;
    otherwise a write already stored is kept (a retried task writes the same). Returns the
    thread's binding (``None`` when there were no writes)."""
    if not writes:
        return None
    bound = bind(conn, owner, thread_id, user_id)
    w = graph_writes.c
    where = and_(
        w.thread_key == bound.key,
        w.checkpoint_ns == checkpoint_ns,
        w.checkpoint_id == checkpoint_id,
        w.task_id == task_id,
    )
    if replace:
        stored = set(
            conn.execute(select(w.idx).where(where, w.idx.in_([i for i, *_ in writes]))).scalars()
        )
        for idx, channel, kind, blob in writes:
            if idx in stored:
                conn.execute(
                    update(graph_writes)
                    .where(where, w.idx == idx)
                    .values(channel=channel, type=kind, blob=blob, task_path=task_path)
                )
    rows = _write_rows(bound.key, checkpoint_ns, checkpoint_id, task_id, task_path, writes)
    _sql.insert_rows(conn, _sql.WRITES, rows)
    return bound


def _write_rows(
    key: uuid.UUID,
    checkpoint_ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    writes: Sequence[tuple[int, str, str, bytes | None]],
) -> list[dict[str, Any]]:
    return [
        {
            "thread_key": key,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
            "task_id": task_id,
            "idx": idx,
            "channel": channel,
            "type": kind,
            "blob": blob,
            "task_path": task_path,
        }
        for idx, channel, kind, blob in writes
    ]


# -- reads --------------------------------------------------------------------------------------

#: Decodes a stored checkpoint (serde type, bytes) into the checkpoint dict.
Decode = Callable[[str, bytes], dict[str, Any]]
#: Whether a checkpoint's metadata (serde type, bytes) passes the caller's filter.
Accept = Callable[[str, bytes], bool]


def _complete(
    conn: Connection,
    key: uuid.UUID,
    thread_id: str,
    row: Any,
    decode: Decode,
) -> StoredCheckpoint:
    """A checkpoint row with its channel values and pending writes."""
    checkpoint_ns, checkpoint_id = row.checkpoint_ns, row.checkpoint_id
    decoded = decode(row.type, row.checkpoint)
    versions = {str(ch): str(v) for ch, v in (decoded.get("channel_versions") or {}).items()}
    values: list[tuple[str, str, bytes | None]] = []
    writes: list[tuple[str, str, str, bytes | None]] = []
    params: dict[str, Any] = {"key": key, "ns": checkpoint_ns, "id": checkpoint_id}
    for i, (channel, version) in enumerate(versions.items()):
        params[f"c{i}"], params[f"v{i}"] = channel, version
    for part, name, detail, kind, blob, _, _ in _sql.VALUES_AND_WRITES[len(versions)].rows(
        conn, params
    ):
        if part == 1:
            writes.append((name, detail, kind, bytes(blob) if blob is not None else None))
        else:
            values.append((name, kind, bytes(blob) if blob is not None else None))
    return StoredCheckpoint(
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=row.parent_checkpoint_id,
        checkpoint=decoded,
        metadata_type=row.metadata_type,
        metadata=row.metadata,
        values=values,
        writes=writes,
    )


def get(
    conn: Connection,
    owner: uuid.UUID | None,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str | None,
    decode: Decode,
    user_id: uuid.UUID | None = None,
    hint: Thread | None = None,
) -> StoredCheckpoint | None:
    """The checkpoint ``checkpoint_id`` of the thread's namespace, or its newest one (the
    thread of the scope's owner, else of ``user_id``: see :func:`thread`). ``hint``: the
    thread's binding as the caller last saw it (a checkpoint found through it proves it
    holds: checkpoints go with their binding)."""
    if hint is not None:
        row = _checkpoint_row(conn, hint.key, checkpoint_ns, checkpoint_id)
        if row is not None:
            return _complete(conn, hint.key, thread_id, row, decode)
    bound = thread(conn, owner, thread_id, user_id)
    if bound is None:
        return None
    row = _checkpoint_row(conn, bound.key, checkpoint_ns, checkpoint_id)
    return None if row is None else _complete(conn, bound.key, thread_id, row, decode)


def _checkpoint_row(
    conn: Connection, key: uuid.UUID, checkpoint_ns: str, checkpoint_id: str | None
) -> _sql.Row | None:
    params = {"key": key, "ns": checkpoint_ns, "id": checkpoint_id}
    if checkpoint_id is None:
        del params["id"]
    found = _sql.CHECKPOINT[checkpoint_id is not None].rows(conn, params)
    if not found:
        return None
    row = _sql.Row(*found[0])
    return row._replace(checkpoint=bytes(row.checkpoint), metadata=bytes(row.metadata))


def page(
    conn: Connection,
    owner: uuid.UUID | None,
    *,
    thread_id: str | None,
    checkpoint_ns: str | None,
    checkpoint_id: str | None,
    before: str | None,
    limit: int,
    decode: Decode,
    accept: Accept | None,
    user_id: uuid.UUID | None = None,
) -> tuple[list[StoredCheckpoint], str | None]:
    """Up to ``limit`` checkpoints, newest first, that pass ``accept`` (the metadata filter),
    of one thread (or every thread the scope sees) and namespace (or all), before the
    checkpoint id ``before``. Returns them and the cursor for the next page (``None``: none
    left)."""
    t, k = graph_threads.c, graph_checkpoints.c
    query = select(*_sql.ROW, t.thread_id.label("thread_name")).join(
        graph_threads, t.id == k.thread_key
    )
    holder = owner if owner is not None else user_id
    if holder is not None:
        query = query.where(t.owner_id == holder)
    if thread_id is not None:
        query = query.where(t.thread_id == thread_id)
    if checkpoint_ns is not None:
        query = query.where(k.checkpoint_ns == checkpoint_ns)
    if checkpoint_id is not None:
        query = query.where(k.checkpoint_id == checkpoint_id)
    if before is not None:
        query = query.where(k.checkpoint_id < before)
    query = query.order_by(k.checkpoint_id.desc(), k.checkpoint_ns.desc()).limit(limit)
    rows = conn.execute(query).all()
    found = [
        _complete(conn, row.thread_key, row.thread_name, row, decode)
        for row in rows
        if accept is None or accept(row.metadata_type, row.metadata)
    ]
    cursor = rows[-1].checkpoint_id if len(rows) == limit else None
    return found, cursor


def delete_thread(
    conn: Connection, owner: uuid.UUID | None, thread_id: str, user_id: uuid.UUID | None = None
) -> bool:
    """Delete the thread's checkpoints, values, writes and binding (its conversation and
    messages stay: they are the app's record). Whether there was anything to delete."""
    bound = thread(conn, owner, thread_id, user_id)
    if bound is None:
        return False
    _lock_conversation(conn, bound.conversation_id)
    for table in (graph_writes, graph_blobs, graph_checkpoints):
        conn.execute(delete(table).where(table.c.thread_key == bound.key))
    conn.execute(delete(graph_threads).where(graph_threads.c.id == bound.key))
    return True
