"""Visitors of a site (people or AI agents) and their key/value answers.

A visitor is found again by ``identity``: the SHA-256 (hex) of the caller's ``visitor_key``
when one is given, else of the normalised name, a NUL and the normalised agent type (each
stripped and case-folded; no agent type counts as ""). Keys cannot contain NUL, so the two
kinds of identity never collide.

Recording a visit looks the identity up; a new visitor is inserted in a savepoint, and when a
racer inserted the same identity first, the unique conflict falls back to the repeat-visit
path: ``visit_count = visit_count + 1`` by primary key, under that row's lock. (By primary key,
not by identity: on MariaDB each loser of the insert race holds a shared lock on the identity
index entry, and locking that entry again would deadlock the losers.)
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Column, Connection, Row, bindparam, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from .. import _cursors, _ids
from .._backends import backend_of
from .._schema import visitor_answers, visitors
from .._types import UTCDateTime
from ..errors import NotFoundError, ValidationError
from ..records import Order, Page, Visitor
from . import _once
from ._common import paginate, utcnow

__all__ = [
    "MAX_ANSWERS",
    "VISITOR_KEY_MAX",
    "decode_cursor",
    "delete_visitor",
    "get",
    "identity",
    "page",
    "record_visit",
    "set_answers",
]

_KIND: Final = "visitors"
_v = visitors.c
_COLUMNS: Final[list[Column[Any]]] = [
    _v.id,
    _v.name,
    _v.agent_type,
    _v.purpose,
    _v.visit_time,
    _v.visit_count,
    _v.created_at,
]
#: The most answers one visitor may hold.
MAX_ANSWERS: Final = 100
#: The longest caller-given visitor key, in characters.
VISITOR_KEY_MAX: Final = 255
#: Attempts of a visit whose row a concurrent delete removes between lookup and update.
_ATTEMPTS: Final = 3


def identity(name: str, agent_type: str | None, visitor_key: str | None) -> str:
    """The identity of a visitor: SHA-256 hex of ``visitor_key``, or of
    ``casefold(strip(name)) + NUL + casefold(strip(agent_type or ""))``."""
    if visitor_key is not None:
        source = visitor_key
    else:
        source = f"{name.strip().casefold()}\x00{(agent_type or '').strip().casefold()}"
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _answers_of(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, str]]:
    found: dict[uuid.UUID, dict[str, str]] = {ident: {} for ident in ids}
    if not ids:
        return found
    a = visitor_answers.c
    query = select(a.visitor_id, a.key, a.value).order_by(a.visitor_id, a.key)
    query = (
        query.where(a.visitor_id == ids[0]) if len(ids) == 1 else query.where(a.visitor_id.in_(ids))
    )
    for visitor_id, key, value in conn.execute(query):
        found[visitor_id][key] = value
    return found


def _build(row: Row[Any], answers: dict[str, str]) -> Visitor:
    return Visitor(
        id=row.id,
        name=row.name,
        agent_type=row.agent_type,
        purpose=row.purpose,
        visit_time=row.visit_time,
        visit_count=row.visit_count,
        created_at=row.created_at,
        answers=answers,
    )


def get(conn: Connection, visitor_id: uuid.UUID) -> Visitor:
    """One visitor, with its answers."""
    row = conn.execute(select(*_COLUMNS).where(_v.id == visitor_id)).first()
    if row is None:
        raise NotFoundError("visitor", visitor_id)
    return _build(row, _answers_of(conn, [visitor_id])[visitor_id])


def _find(conn: Connection, ident: str) -> uuid.UUID | None:
    found: uuid.UUID | None = conn.execute(select(_v.id).where(_v.identity == ident)).scalar()
    return found


def _lock(conn: Connection, visitor_id: uuid.UUID) -> bool:
    """Lock the visitor's row by primary key; whether it exists."""
    query = select(_v.id).where(_v.id == visitor_id).with_for_update()
    return conn.execute(query).first() is not None


def _check_total(conn: Connection, visitor_id: uuid.UUID, answers: dict[str, str]) -> None:
    """Refuse answers that would give the visitor more than ``MAX_ANSWERS`` in all."""
    a = visitor_answers.c
    kept = conn.execute(
        select(func.count())
        .select_from(visitor_answers)
        .where(a.visitor_id == visitor_id, a.key.not_in(list(answers)))
    ).scalar_one()
    total = int(kept) + len(answers)
    if total > MAX_ANSWERS:
        raise ValidationError(
            "answers",
            f"the visitor would have {total} answers, more than the limit of {MAX_ANSWERS}",
            limit=MAX_ANSWERS,
        )


def _insert_answers(
    conn: Connection, visitor_id: uuid.UUID, answers: Iterable[tuple[str, str]]
) -> None:
    rows = [{"visitor_id": visitor_id, "key": key, "value": value} for key, value in answers]
    if rows:
        conn.execute(visitor_answers.insert(), rows)


def _upsert_answers(conn: Connection, visitor_id: uuid.UUID, answers: dict[str, str]) -> None:
    """Set the given keys (under the visitor's row lock); other answers are kept."""
    a = visitor_answers.c
    conn.execute(
        delete(visitor_answers).where(a.visitor_id == visitor_id, a.key.in_(list(answers)))
    )
    _insert_answers(conn, visitor_id, answers.items())


def _insert_visitor(
    conn: Connection,
    ident: str,
    name: str,
    agent_type: str | None,
    purpose: str | None,
    answers: dict[str, str],
    now: datetime,
) -> Visitor | None:
    """Insert a first visit, in a savepoint; ``None`` when a racer holds the identity."""
    visitor = Visitor(
        id=_ids.new_id(),
        name=name,
        agent_type=agent_type,
        purpose=purpose,
        visit_time=now,
        visit_count=1,
        created_at=now,
        answers=dict(sorted(answers.items())),
    )
    values = {column.name: getattr(visitor, column.name) for column in _COLUMNS}
    try:
        with conn.begin_nested():
            conn.execute(visitors.insert(), {**values, "identity": ident})
    except IntegrityError as exc:
        if backend_of(conn).violation(exc).kind != "unique":
            raise
        return None
    _insert_answers(conn, visitor.id, visitor.answers.items())
    return visitor


def _repeat(
    conn: Connection,
    visitor_id: uuid.UUID,
    purpose: str | None,
    answers: dict[str, str],
    now: datetime,
) -> bool:
    """Count a repeat visit; whether the visitor (still) exists."""
    if answers:
        # Lock first, so that too many answers are refused before anything is written.
        if not _lock(conn, visitor_id):
            return False
        _check_total(conn, visitor_id, answers)
    when = bindparam("b_now", now, type_=UTCDateTime())
    changes: dict[str, Any] = {
        "visit_count": _v.visit_count + 1,
        # Never backwards: a racer that read the clock earlier may commit later.
        "visit_time": case((_v.visit_time < when, when), else_=_v.visit_time),
    }
    if purpose is not None:
        changes["purpose"] = purpose
    result = conn.execute(update(visitors).where(_v.id == visitor_id).values(**changes))
    if result.rowcount != 1:
        return False
    if answers:
        _upsert_answers(conn, visitor_id, answers)
    return True


def record_visit(
    conn: Connection,
    ident: str,
    name: str,
    agent_type: str | None,
    purpose: str | None,
    answers: dict[str, str],
) -> Visitor:
    """Record a visit: a new visitor (``visit_count`` 1), or one more visit of a known one
    (``visit_count + 1``, ``visit_time`` now, ``purpose`` replaced if given, answers merged).
    ``now`` is drawn once per call: a retry recognises its earlier attempt by it."""
    now = _ids.drawn(utcnow)
    for _ in range(_ATTEMPTS):
        visitor_id = _find(conn, ident)
        if visitor_id is None:
            created = _insert_visitor(conn, ident, name, agent_type, purpose, answers, now)
            if created is not None:
                return created
            visitor_id = _find(conn, ident)
            if visitor_id is None:
                continue
        if _repeat(conn, visitor_id, purpose, answers, now):
            return get(conn, visitor_id)
    raise NotFoundError("visitor")  # pragma: no cover - deleted under us again and again


def set_answers(
    conn: Connection,
    visitor_id: uuid.UUID,
    answers: dict[str, str],
    replace: bool,
) -> Visitor:
    """Set the given answers (keeping the others, or with ``replace`` dropping them)."""
    if not _lock(conn, visitor_id):
        raise NotFoundError("visitor", visitor_id)
    if replace:
        conn.execute(delete(visitor_answers).where(visitor_answers.c.visitor_id == visitor_id))
        _insert_answers(conn, visitor_id, answers.items())
    elif answers:
        _check_total(conn, visitor_id, answers)
        _upsert_answers(conn, visitor_id, answers)
    return get(conn, visitor_id)


def delete_visitor(conn: Connection, visitor_id: uuid.UUID) -> None:
    """Delete the visitor and, by cascade, its answers."""
    if conn.execute(delete(visitors).where(_v.id == visitor_id)).rowcount != 1:
        raise NotFoundError("visitor", visitor_id)


#: Reads back the sort key of this listing's cursors: (visit_time, id) of a visitor.
decode_cursor = _cursors.decoder(_KIND, _cursors.TIME, _cursors.ID)


def page(
    conn: Connection,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[Visitor]:
    """A keyset page of visitors by last visit time (then id), with their answers."""
    rows = paginate(
        conn,
        select(*_COLUMNS),
        [_v.visit_time, _v.id],
        kind=_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=lambda row: row,
        cursor_key=lambda row: (row.visit_time.isoformat(), row.id.hex),
    )
    answers = _answers_of(conn, [row.id for row in rows.items])
    return Page(
        items=[_build(row, answers[row.id]) for row in rows.items],
        has_more=rows.has_more,
        first_cursor=rows.first_cursor,
        last_cursor=rows.last_cursor,
    )


def _visited(conn: Connection, drawn: Sequence[Any], ident: str) -> Visitor | _once.NotWritten:
    """The visitor, if the attempt that drew ``drawn`` committed its visit: the visit time is
    that attempt's clock (a later visit of the same visitor in the retry window hides it)."""
    if not drawn:
        return _once.NOT_WRITTEN
    visitor_id = _find(conn, ident)
    if visitor_id is None:
        return _once.NOT_WRITTEN
    try:
        visitor = get(conn, visitor_id)
    except NotFoundError:
        return _once.NOT_WRITTEN
    return visitor if visitor.visit_time == drawn[0] else _once.NOT_WRITTEN


def visited(ident: str) -> _once.Settle[Visitor]:
    """How a retried :func:`record_visit` learns whether an earlier attempt committed."""
    return _once.Settle("visit", _visited, (ident,))
