"""The statements of the LangGraph saver (``_ops.checkpoints``), built with SQLAlchemy
constructs and prepared once per dialect (:class:`~chatledger._prepared.Prepared`): the row
lock of a put, its inserts-if-absent, the checkpoint insert that is also the linear check, and
the reads of ``get_tuple``. Statements whose shape depends on a count (rows, channels, keys)
are made on first use per count (:class:`Made`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

from sqlalchemy import (
    Connection,
    LargeBinary,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql import ColumnElement, Select

from .._prepared import Prepared
from .._schema import (
    conversations,
    graph_blobs,
    graph_checkpoints,
    graph_threads,
    graph_writes,
    messages,
)

__all__ = [
    "BLOBS",
    "CHECKPOINT",
    "HEAD_AND_AGAIN",
    "INSERT_CHECKPOINT",
    "LOCK_BOUND",
    "ROW",
    "ROWS_PER_INSERT",
    "SEQS_BY_KEYS",
    "TIP",
    "VALUES_AND_WRITES",
    "WITH_BLOBS",
    "WRITES",
    "Made",
    "Row",
    "Tip",
    "checkpoint_query",
    "head_and_again",
    "insert_absent",
    "insert_checkpoint",
    "insert_rows",
    "numbered",
    "seqs_by_keys",
    "values_and_writes",
    "with_blobs",
]


class Tip(NamedTuple):
    """Where a conversation's active path ends, read under its row lock."""

    leaf: int | None
    path_length: int
    status: str


TIP: Final = (
    conversations.c.active_leaf_seq,
    conversations.c.path_length,
    conversations.c.status,
)

#: The conversation's tip, taking its row lock (and the binding's), through a binding: no
#: row when the binding is gone (the thread was deleted since the hint was learned).
LOCK_BOUND: Final = Prepared(
    select(*TIP)
    .select_from(
        graph_threads.join(conversations, conversations.c.id == graph_threads.c.conversation_id)
    )
    .where(graph_threads.c.id == bindparam("key"))
    .with_for_update()
)


def head_and_again() -> Select[Any]:
    """The namespace's newest checkpoint id, and whether the checkpoint is stored already:
    two index lookups in one statement, run when the checkpoint's insert refused it (to say
    why)."""
    k = graph_checkpoints.c
    same = (k.thread_key == bindparam("key"), k.checkpoint_ns == bindparam("ns"))
    head = select(func.max(k.checkpoint_id)).where(*same).scalar_subquery()
    again = select(k.checkpoint_id).where(*same, k.checkpoint_id == bindparam("id"))
    return select(head.label("head"), again.scalar_subquery().label("again"))


HEAD_AND_AGAIN: Final = Prepared(head_and_again())


def insert_checkpoint(extending: bool) -> Prepared:
    """Insert a checkpoint unless its id is stored already and, when ``extending``, unless
    its parent is not the namespace's newest checkpoint (its row count says which happened;
    run with the conversation's lock held, it sees every put that committed before)."""
    k = graph_checkpoints.c
    same = (k.thread_key == bindparam("thread_key"), k.checkpoint_ns == bindparam("checkpoint_ns"))
    row = select(*(bindparam(column.name, type_=column.type) for column in k)).where(
        ~exists().where(*same, k.checkpoint_id == bindparam("checkpoint_id"))
    )
    if extending:
        head = select(func.max(k.checkpoint_id)).where(*same).scalar_subquery()
        row = row.where(or_(head.is_(None), head == bindparam("parent_checkpoint_id")))
    return Prepared(insert(graph_checkpoints).from_select([column.name for column in k], row))


INSERT_CHECKPOINT: Final = {extending: insert_checkpoint(extending) for extending in (True, False)}


def insert_absent(table: Any, keys: Sequence[str], rows: int, *, bound: bool) -> Prepared:
    """``INSERT INTO table SELECT ... WHERE NOT EXISTS (a row with the same keys)`` for
    ``rows`` rows (parameters ``<column>_<i>``), as one statement on every backend. With
    ``bound``, each row also needs its thread binding (``thread_key``) to exist: a row whose
    binding was deleted is not inserted (instead of failing on the foreign key)."""
    columns = list(table.c)
    selects = []
    for i in range(rows):

        def value(column: Any, i: int = i) -> ColumnElement[Any]:
            parameter = bindparam(f"{column.name}_{i}", type_=column.type)
            # A NULL blob must not reach PostgreSQL untyped (a UNION would make it text).
            return cast(parameter, LargeBinary) if column.name == "blob" else parameter

        row = select(*(value(column) for column in columns)).where(
            ~exists().where(*(table.c[key] == bindparam(f"{key}_{i}") for key in keys))
        )
        if bound:
            t = graph_threads.c
            row = row.where(exists().where(t.id == bindparam(f"thread_key_{i}")))
        selects.append(row)
    source = selects[0] if rows == 1 else union_all(*selects)
    return Prepared(insert(table).from_select([column.name for column in columns], source))


class Made(dict[Any, Prepared]):
    """Statements made on first use by a key, a size say (``Made(make)[n]`` is ``make(n)``,
    kept)."""

    def __init__(self, make: Callable[[Any], Prepared]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: Any) -> Prepared:
        made = self[key] = self._make(key)
        return made


BLOBS: Final = Made(
    functools.partial(
        insert_absent,
        graph_blobs,
        ("thread_key", "checkpoint_ns", "channel", "version"),
        bound=False,
    )
)
WRITES: Final = Made(
    functools.partial(
        insert_absent,
        graph_writes,
        ("thread_key", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
        bound=True,
    )
)
#: More rows than this go in several statements.
ROWS_PER_INSERT: Final = 16


def numbered(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of an :func:`insert_absent` statement for ``rows``."""
    return {f"{name}_{i}": value for i, row in enumerate(rows) for name, value in row.items()}


def insert_rows(conn: Connection, by_size: Made, rows: Sequence[dict[str, Any]]) -> int:
    """Insert ``rows`` (dicts by column) that are not stored yet; how many were inserted."""
    inserted = 0
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        inserted += by_size[len(chunk)].execute(conn, numbered(chunk))
    return inserted


def with_blobs(key: tuple[bool, int]) -> Prepared:
    """Where the database has writable CTEs (PostgreSQL): the blobs and the checkpoint in one
    statement, by (extending, blob count); its row count is the checkpoint's."""
    extending, blobs = key
    checkpoint: Any = INSERT_CHECKPOINT[extending].statement
    values: Any = BLOBS[blobs].statement
    return Prepared(checkpoint.add_cte(values.cte("blobs")))


WITH_BLOBS: Final = Made(with_blobs)


def seqs_by_keys(keys: int) -> Prepared:
    """The seqs of ``keys`` messages by idempotency key (``cid``, ``k<i>``)."""
    m = messages.c
    return Prepared(
        select(m.idempotency_key, m.seq).where(
            m.conversation_id == bindparam("cid"),
            m.idempotency_key.in_([bindparam(f"k{i}") for i in range(keys)]),
        )
    )


SEQS_BY_KEYS: Final = Made(seqs_by_keys)


def values_and_writes(channels: int) -> Prepared:
    """One statement for a checkpoint's channel values (part 0: channel, version, type, blob)
    and its pending writes (part 1: task id, channel, type, blob, in replay order), for a
    checkpoint of ``channels`` channel versions (parameters ``key``, ``ns``, ``id``, and
    ``c<i>``/``v<i>``, the channels and their versions)."""
    w = graph_writes.c
    writes = select(
        literal(1).label("part"),
        w.task_id.label("name"),
        w.channel.label("detail"),
        w.type,
        w.blob,
        w.task_path,
        w.idx,
    ).where(
        w.thread_key == bindparam("key"),
        w.checkpoint_ns == bindparam("ns"),
        w.checkpoint_id == bindparam("id"),
    )
    if not channels:
        return Prepared(writes.order_by(w.task_path, w.task_id, w.idx))
    b = graph_blobs.c
    values = select(
        literal(0).label("part"),
        b.channel.label("name"),
        b.version.label("detail"),
        b.type,
        b.blob,
        literal_column("''").label("task_path"),
        literal_column("0").label("idx"),
    ).where(
        b.thread_key == bindparam("key"),
        b.checkpoint_ns == bindparam("ns"),
        or_(
            *(
                and_(b.channel == bindparam(f"c{i}"), b.version == bindparam(f"v{i}"))
                for i in range(channels)
            )
        ),
    )
    both = union_all(values, writes)
    by = both.selected_columns
    return Prepared(both.order_by(by.part, by.task_path, by.name, by.idx))


VALUES_AND_WRITES: Final = Made(values_and_writes)


ROW: Final = (
    graph_checkpoints.c.thread_key,
    graph_checkpoints.c.checkpoint_ns,
    graph_checkpoints.c.checkpoint_id,
    graph_checkpoints.c.parent_checkpoint_id,
    graph_checkpoints.c.type,
    graph_checkpoints.c.checkpoint,
    graph_checkpoints.c.metadata_type,
    graph_checkpoints.c.metadata,
)


class Row(NamedTuple):
    """A checkpoint row read with a prepared statement (``ROW``'s columns)."""

    thread_key: Any
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata_type: str
    metadata: bytes


def checkpoint_query(by_id: bool) -> Prepared:
    """A thread's checkpoint (``key``, ``ns``) by id (``id``), or its newest."""
    k = graph_checkpoints.c
    query = select(*ROW).where(k.thread_key == bindparam("key"), k.checkpoint_ns == bindparam("ns"))
    if by_id:
        return Prepared(query.where(k.checkpoint_id == bindparam("id")))
    return Prepared(query.order_by(k.checkpoint_id.desc()).limit(1))


CHECKPOINT: Final = {by_id: checkpoint_query(by_id) for by_id in (True, False)}
