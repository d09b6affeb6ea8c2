"""The SQL of an incremental copy: bringing a target's rows to the source's, one batch per
transaction, so that the ledger's invariants hold after every commit on the target.

The invariants a copy must never break, even when it is interrupted between two batches:

- ``conversations.message_count`` is the number of the conversation's messages, and their
  ``seq`` run 1..message_count without a gap;
- ``token_balances.balance`` is the sum of the user's ``token_ledger`` deltas (never below 0);
- the audit chain's head is the last audit event.

So a counter column (:data:`COUNTERS`) is never copied from the source: a new parent row starts
at 0 and every batch of counted rows (:data:`COUNTED`) moves its parents' counters in the same
transaction. Counted rows arrive in the order that keeps every committed prefix valid (messages
by ``(conversation_id, seq)``, ledger entries by ``(user_id, created_at, id)``: each prefix sum
is a ``balance_after`` the source held). Rows the target holds and the source no longer does are
deleted parents first, so a deleted conversation takes its messages with it in one statement.
Counted rows themselves are append-only: a target whose messages or ledger entries the source
does not have (while their parent is still there) is not a copy of this source, which
:func:`divergence` finds before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)

from .. import _bulk
from .._schema import (
    Base,
    audit_chain,
    audit_events,
    conversations,
    messages,
    token_balances,
    token_ledger,
    users,
)
from .transfer import advance_audit_chain, canonical, key_of

__all__ = [
    "COUNTED",
    "COUNTERS",
    "Counted",
    "absent",
    "delete_missing",
    "divergence",
    "invariant_violations",
    "order_key",
    "read_ordered",
    "shares_origin",
    "stored_rows",
    "sync_batch",
    "sync_order",
    "target_keys",
]


@dataclass(frozen=True, slots=True)
class Counted:
    """A table whose rows a parent's counter column counts (or sums)."""

    #: The parent table and its counter column.
    parent: Table
    counter: str
    #: The column of the counted table naming the parent.
    parent_column: str
    #: The column summed, or ``None`` to count rows.
    amount: str | None
    #: A column that identifies a counted row beside its key (a different value under the
    #: same key means the two databases wrote different rows).
    identity: tuple[str, ...]


#: Counted tables and how their parents count them.
COUNTED: Final[dict[str, Counted]] = {
    "messages": Counted(conversations, "message_count", "conversation_id", None, ("id",)),
    "token_ledger": Counted(token_balances, "balance", "user_id", "delta", ("user_id", "delta")),
}
#: Counter columns, by parent table name: never copied, moved by the counted rows instead.
COUNTERS: Final[dict[str, str]] = {spec.parent.name: spec.counter for spec in COUNTED.values()}
#: Columns derived from other tables' rows, by table: a new row starts with these values, a
#: changed row keeps the target's, and they are recomputed from the rows they derive from
#: (a conversation's active leaf and path length, from its messages: :func:`_rederive`).
DERIVED: Final[dict[str, dict[str, Any]]] = {
    "conversations": {"active_leaf_seq": None, "path_length": 0},
}


def _skipped(table: Table) -> set[str]:
    """The columns a copy never writes from the source's values in ``table``."""
    counter = COUNTERS.get(table.name)
    return {*DERIVED.get(table.name, {}), *([counter] if counter else [])}


#: Tables read in another order than their primary key's (see the module docstring).
_ORDER: Final[dict[str, tuple[str, ...]]] = {
    "token_ledger": ("user_id", "created_at", "id"),
}


def sync_order() -> list[Table]:
    """The tables in the order a copy writes them: parents first, and the audit chain's head
    after the audit events it points to."""
    tables = [table for table in Base.metadata.sorted_tables if table is not audit_chain]
    return [*tables, audit_chain]


def _order_columns(table: Table) -> list[ColumnElement[Any]]:
    names = _ORDER.get(table.name)
    if names is None:
        return list(table.primary_key.columns)
    return [table.c[name] for name in names]


def order_key(table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of ``row`` that :func:`read_ordered` pages by."""
    return tuple(row[column.name] for column in _order_columns(table))


def _after(columns: Sequence[ColumnElement[Any]], key: Sequence[Any]) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = columns[-1] > key[-1]
    for column, value in zip(reversed(columns[:-1]), reversed(key[:-1]), strict=True):
        condition = and_(column >= value, or_(column > value, condition))
    return condition


def read_ordered(
    conn: Connection, table: Table, after: Sequence[Any] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``table`` after ``after`` (an :func:`order_key`) in copy order."""
    columns = _order_columns(table)
    query = select(*table.columns).order_by(*columns).limit(limit)
    if after is not None:
        query = query.where(_after(columns, after))
    return [
        {c.name: v for c, v in zip(table.columns, row, strict=True)} for row in conn.execute(query)
    ]


def _key_condition(table: Table, keys: Sequence[tuple[Any, ...]]) -> ColumnElement[bool]:
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        return columns[0].in_([key[0] for key in keys])
    return tuple_(*columns).in_(keys)


#: Keys per ``IN`` list.
_IN_CHUNK: Final = 500


def stored_rows(
    conn: Connection, table: Table, keys: Sequence[tuple[Any, ...]]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The rows of ``table`` with these primary keys, by key."""
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        query = select(*table.columns).where(_key_condition(table, chunk))
        for row in conn.execute(query):
            values = {c.name: v for c, v in zip(table.columns, row, strict=True)}
            found[key_of(table, values)] = values
    return found


def _present(conn: Connection, table: Table, keys: Sequence[tuple[Any, ...]]) -> set[Any]:
    columns = list(table.primary_key.columns)
    found: set[Any] = set()
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        query = select(*columns).where(_key_condition(table, chunk))
        found.update(tuple(row) for row in conn.execute(query))
    return found


def target_keys(
    conn: Connection, table: Table, after: Sequence[Any] | None, limit: int
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` primary keys of ``table`` after ``after``, in key order."""
    columns = _bulk.key_columns(conn, table)
    query = select(*columns).order_by(*columns).limit(limit)
    if after is not None:
        query = query.where(_bulk.after_key(conn, table, after))
    return [tuple(row) for row in conn.execute(query)]


def _differs(table: Table, have: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    skip = _skipped(table)
    return any(
        canonical(have[column.name]) != canonical(want[column.name])
        for column in table.columns
        if column.name not in skip
    )


def _update_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Set every non-key column but the counter of each row (one ``executemany``)."""
    skip = _skipped(table)
    keys = list(table.primary_key.columns)
    values = [c for c in table.columns if not c.primary_key and c.name not in skip]
    if not values:
        return
    statement = (
        update(table)
        .where(*(c == bindparam(f"k_{c.name}", type_=c.type) for c in keys))
        .values({c.name: bindparam(f"v_{c.name}", type_=c.type) for c in values})
    )
    conn.execute(
        statement,
        [
            {
                **{f"k_{c.name}": row[c.name] for c in keys},
                **{f"v_{c.name}": row[c.name] for c in values},
            }
            for row in rows
        ],
    )


def _move_counters(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add the counted ``rows`` (just inserted) to their parents' counters."""
    spec = COUNTED[table.name]
    totals: dict[Any, int] = {}
    for row in rows:
        parent = row[spec.parent_column]
        totals[parent] = totals.get(parent, 0) + (1 if spec.amount is None else row[spec.amount])
    parent_key = next(iter(spec.parent.primary_key.columns))
    counter = spec.parent.c[spec.counter]
    statement = (
        update(spec.parent)
        .where(parent_key == bindparam("k_parent", type_=parent_key.type))
        .values({spec.counter: counter + bindparam("v_amount")})
    )
    conn.execute(statement, [{"k_parent": k, "v_amount": v} for k, v in totals.items() if v])


def pending(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, fresh: bool
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Which of ``rows`` (source rows) the target lacks, and which it holds with other values
    (counters excepted): what :func:`sync_batch` would insert and update."""
    if fresh:
        return list(rows), []
    keys = [key_of(table, row) for row in rows]
    stored = stored_rows(conn, table, keys)
    missing = [row for row, key in zip(rows, keys, strict=True) if key not in stored]
    changed = [
        row
        for row, key in zip(rows, keys, strict=True)
        if key in stored and _differs(table, stored[key], row)
    ]
    return missing, changed


def sync_batch(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, fresh: bool
) -> tuple[int, int]:
    """Bring the target's copies of ``rows`` (source rows, in copy order) to the source's
    values in the caller's transaction: insert the missing ones, update the changed ones
    (counters excepted), and move the parents' counters by the inserted counted rows.
    ``fresh``: the table was empty when the copy began, so every row is missing. Returns
    (inserted, updated)."""
    counter = COUNTERS.get(table.name)
    missing, changed = pending(conn, table, rows, fresh=fresh)
    if changed:
        _update_rows(conn, table, changed)
    if missing:
        fresh_values = {**DERIVED.get(table.name, {}), **({counter: 0} if counter else {})}
        if fresh_values:
            missing = [{**row, **fresh_values} for row in missing]
        _bulk.bulk_insert(conn, table, missing)
        if table.name in COUNTED and table is not messages:  # messages: _rederive
            _move_counters(conn, table, missing)
        elif table is audit_events:
            # Events arrive in seq order: the head follows the last one in the same transaction.
            last = max(missing, key=lambda row: row["seq"])
            advance_audit_chain(conn, {"last_seq": last["seq"], "last_hash": last["hash"]})
    if table is messages and (missing or changed):
        _rederive(conn, {row["conversation_id"] for row in [*missing, *changed]})
    return len(missing), len(changed)


def _rederive(conn: Connection, conversation_ids: set[Any]) -> None:
    """Recompute the conversations' message count, active leaf and path length from the
    messages copied so far, in one statement so that their checks hold together (the newest
    message on the active path; any newest message while the path's own have not arrived
    yet)."""
    m, c = messages.c, conversations.c
    on_path = select(func.max(m.seq)).where(m.conversation_id == c.id, m.on_active_path)
    newest = select(func.max(m.seq)).where(m.conversation_id == c.id)
    length = select(func.count()).where(m.conversation_id == c.id, m.on_active_path)
    count = select(func.count()).where(m.conversation_id == c.id)
    conn.execute(
        update(conversations)
        .where(c.id.in_(list(conversation_ids)))
        .values(
            active_leaf_seq=func.coalesce(on_path.scalar_subquery(), newest.scalar_subquery()),
            path_length=length.scalar_subquery(),
            message_count=count.scalar_subquery(),
        )
    )


def delete_missing(conn: Connection, table: Table, keys: Sequence[tuple[Any, ...]]) -> int:
    """Delete the rows of ``table`` with these keys (the source no longer has them); their
    children go with them (``ON DELETE CASCADE``) in the same statement."""
    deleted = 0
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        deleted += int(conn.execute(delete(table).where(_key_condition(table, chunk))).rowcount)
    return deleted


def absent(source: Connection, table: Table, keys: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The keys (target keys, in the order given) that ``source`` does not hold."""
    present = _present(source, table, keys)
    return [key for key in keys if key not in present]


def shares_origin(target: Connection, source: Connection, sample: int = 500) -> bool:
    """Whether the target is empty or holds a user or conversation of the source (random
    UUIDs: one shared id means the target was copied from this source)."""
    held = False
    for table in (users, conversations):
        keys = target_keys(target, table, None, sample)
        if keys:
            held = True
            if len(absent(source, table, keys)) < len(keys):
                return True
    return not held


def divergence(
    target: Connection, source: Connection, table: Table, after: Sequence[Any] | None, limit: int
) -> tuple[str | None, tuple[Any, ...] | None]:
    """Check one batch of the target's rows of an append-only table against the source:
    the reason the target is not a copy of this source (or ``None``), and the last key read
    (``None`` at the end). A counted row the source lacks while its parent is still there, a
    counted row or audit event that differs under the same key: the databases were written to
    independently, and a copy would have to drop acknowledged writes."""
    columns = _bulk.key_columns(target, table)
    spec = COUNTED.get(table.name)
    identity = ("hash",) if table is audit_events else spec.identity if spec else ()
    wanted = list(dict.fromkeys([*(c.name for c in columns), *identity]))
    if spec is not None:
        wanted.append(spec.parent_column)
    query = select(*(table.c[name] for name in dict.fromkeys(wanted))).order_by(*columns)
    query = query.limit(limit)
    if after is not None:
        query = query.where(_bulk.after_key(target, table, after))
    rows = [dict(row) for row in target.execute(query).mappings()]
    if not rows:
        return None, None
    keys = [key_of(table, row) for row in rows]
    theirs = stored_rows(source, table, keys)
    lost = [row for row, key in zip(rows, keys, strict=True) if key not in theirs]
    if lost and spec is not None:
        parents = [(row[spec.parent_column],) for row in lost]
        gone = set(absent(source, spec.parent, parents))
        kept = [row for row in lost if (row[spec.parent_column],) not in gone]
        if kept:
            return (
                f"the target's {table.name} holds rows the source does not have (key "
                f"{key_of(table, kept[0])}) under a {spec.parent.name} row the source still "
                "has: both databases were written to since the last copy",
                None,
            )
    for row, key in zip(rows, keys, strict=True):
        source_row = theirs.get(key)
        if source_row is not None and any(
            canonical(source_row[name]) != canonical(row[name]) for name in identity
        ):
            return (
                f"the target's {table.name} row {key} differs from the source's: both "
                "databases were written to since the last copy",
                None,
            )
    return None, (keys[-1] if len(rows) == limit else None)


def invariant_violations(conn: Connection) -> list[str]:
    """What breaks the ledger's invariants in a database (empty when they all hold):
    message counts, gap-free ``seq``, balances against the ledger, the audit chain's head."""
    problems: list[str] = []
    m = messages.c
    per_conversation = (
        select(
            m.conversation_id,
            func.count().label("n"),
            func.min(m.seq).label("low"),
            func.max(m.seq).label("high"),
        )
        .group_by(m.conversation_id)
        .subquery()
    )
    c = conversations.c
    query = select(c.id, c.message_count, per_conversation.c.n, per_conversation.c.low).join(
        per_conversation, per_conversation.c.conversation_id == c.id, isouter=True
    )
    for row in conn.execute(
        query.where(
            or_(
                c.message_count != func.coalesce(per_conversation.c.n, 0),
                per_conversation.c.high != per_conversation.c.n,
                per_conversation.c.low != 1,
            )
        )
    ):
        problems.append(
            f"conversation {row.id}: message_count {row.message_count}, {row.n or 0} messages"
        )
    ledger = (
        select(token_ledger.c.user_id, func.sum(token_ledger.c.delta).label("total"))
        .group_by(token_ledger.c.user_id)
        .subquery()
    )
    b = token_balances.c
    sums = select(b.user_id, b.balance, ledger.c.total).join(
        ledger, ledger.c.user_id == b.user_id, isouter=True
    )
    for entry in conn.execute(sums):
        if entry.balance != (entry.total or 0):
            problems.append(
                f"user {entry.user_id}: balance {entry.balance}, ledger {entry.total or 0}"
            )
    orphans = (
        select(func.count()).select_from(ledger).where(~ledger.c.user_id.in_(select(b.user_id)))
    )
    if conn.execute(orphans).scalar_one():
        problems.append("ledger entries of users without a balance row")
    head = conn.execute(select(audit_chain.c.last_seq)).scalar()
    last = conn.execute(select(func.max(audit_events.c.seq))).scalar()
    if (head or 0) != (last or 0):
        problems.append(f"audit chain head at {head}, last audit event {last}")
    return problems
