"""The audit log: append-only events, chained by SHA-256 so that tampering shows.

Chain rule (fixed: changing it breaks every stored chain):

- ``content_digest = sha256(canonical JSON of {id, user_id, event_type, category, severity,
  description, metadata, created_at})``, ``created_at`` as ISO 8601 with microseconds and
  ``+00:00`` (see :func:`canonical_json`);
- ``hash = sha256(f"{prev_hash}:{seq}:{content_digest}")``, ``prev_hash`` being the previous
  event's hash (64 zeros before the first event).

An append is one transaction: lock the chain head (``audit_chain`` row 1; on SQLite the write
transaction is already exclusive), take ``seq = last_seq + 1``, insert the event and move the
head. So ``seq`` is gap-free and the chain linear under any concurrency.

:func:`verify` streams the events by ``seq`` in keyset batches and reports the first break.
Redaction (:func:`redact_user`, for erasure) blanks an event's personal data but keeps its
digest and hashes, so the chain still verifies; a redacted event is checked by the chain only
(and must have the redacted form), not by its digest.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from sqlalchemy import (
    Column,
    Connection,
    Row,
    Text,
    case,
    cast,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from .. import _cursors, _ids
from .. import _validate as check
from .._backends import backend_of
from .._schema import (
    AUDIT_CATEGORIES,
    AUDIT_SEVERITIES,
    DESCRIPTION_MAX,
    EVENT_TYPE_MAX,
    audit_chain,
    audit_events,
)
from ..errors import ConflictError, NotFoundError
from ..records import AuditEvent, AuditVerification, Order, Page
from . import _once
from ._common import paginate, utcnow

__all__ = [
    "GENESIS_HASH",
    "REDACTED",
    "NewAuditEvent",
    "append",
    "canonical_json",
    "chain_hash",
    "content_digest",
    "decode_cursor",
    "get",
    "page",
    "prepare",
    "redact_user",
    "verify",
]

#: The ``prev_hash`` of the first event.
GENESIS_HASH: Final = "0" * 64
#: The description of a redacted event.
REDACTED: Final = "[redacted]"
_HEAD_ID: Final = 1
_KIND: Final = "audit"

_e = audit_events.c
_COLUMNS: Final[list[Column[Any]]] = [
    _e.seq,
    _e.id,
    _e.user_id,
    _e.event_type,
    _e.category,
    _e.severity,
    _e.description,
    _e["metadata"],
    _e.created_at,
    _e.hash,
    _e.redacted_at,
]
_CHECKED_COLUMNS: Final[list[Column[Any]]] = [*_COLUMNS, _e.content_digest, _e.prev_hash]


@dataclass(frozen=True, slots=True)
class NewAuditEvent:
    """A validated audit event, ready to append."""

    event_type: str
    user_id: uuid.UUID | None
    category: str
    severity: str
    description: str | None
    metadata: dict[str, Any] | None


def prepare(
    limits: check.Limits,
    *,
    event_type: object,
    user_id: object = None,
    category: object = "general",
    severity: object = "info",
    description: object = None,
    metadata: object = None,
) -> NewAuditEvent:
    """Validate an event before anything is written."""
    return NewAuditEvent(
        event_type=check.nonblank("event_type", event_type, EVENT_TYPE_MAX),
        user_id=None if user_id is None else check.identifier("user_id", user_id),
        category=check.choice("category", category, AUDIT_CATEGORIES),
        severity=check.choice("severity", severity, AUDIT_SEVERITIES),
        description=check.optional_text("description", description, DESCRIPTION_MAX),
        metadata=check.metadata("metadata", metadata, limits),
    )


# -- the chain rule -------------------------------------------------------------------------


def _portable(value: Any) -> Any:
    """``value`` with every number as PostgreSQL's JSONB hands it back, so a digest computed
    before the write equals the one recomputed from the stored row on every backend. JSONB keeps
    numbers as decimals: a float written in exponent form with a whole value (``1e+16``) comes
    back as the integer it denotes, and ``-0.0`` as ``0.0``."""
    if isinstance(value, float):
        if value == 0:
            return 0.0
        if math.isfinite(value) and value.is_integer() and "e" in repr(value):
            return int(Decimal(repr(value)))
        return value
    if isinstance(value, dict):
        return {key: _portable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_portable(item) for item in value]
    return value


def canonical_json(document: Any) -> str:
    """The canonical JSON text of ``document`` that digests are computed over: sorted keys,
    compact separators, UTF-8 text (``ensure_ascii=False``), and numbers in the form every
    backend returns them (whole-valued floats in exponent form as integers, no ``-0.0``)."""
    return json.dumps(
        _portable(document),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def content_digest(
    *,
    id: uuid.UUID,
    user_id: uuid.UUID | None,
    event_type: str,
    category: str,
    severity: str,
    description: str | None,
    metadata: dict[str, Any] | None,
    created_at: datetime,
) -> str:
    """The SHA-256 (hex) of an event's content."""
    document = {
        "id": str(id),
        "user_id": None if user_id is None else str(user_id),
        "event_type": event_type,
        "category": category,
        "severity": severity,
        "description": description,
        "metadata": metadata,
        "created_at": _iso(created_at),
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def chain_hash(prev_hash: str, seq: int, digest: str) -> str:
    """The hash of the event at ``seq``: chains its content digest to the previous hash."""
    return hashlib.sha256(f"{prev_hash}:{seq}:{digest}".encode("ascii")).hexdigest()


# -- append ---------------------------------------------------------------------------------


def _lock_head(conn: Connection) -> tuple[int, str]:
    """Lock the chain head and return ``(last_seq, last_hash)``. A missing head (a database
    emptied by hand) is re-created at the genesis, but only while the log is empty."""
    c = audit_chain.c
    query = select(c.last_seq, c.last_hash).where(c.id == _HEAD_ID).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        if conn.execute(select(_e.seq).limit(1)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        audit_chain.insert(),
                        {"id": _HEAD_ID, "last_seq": 0, "last_hash": GENESIS_HASH},
                    )
            except IntegrityError as exc:  # a racing first append created it
                if backend_of(conn).violation(exc).kind != "unique":
                    raise
        row = conn.execute(query).first()
        if row is None:
            raise ConflictError(
                "the audit chain head (audit_chain row 1) is missing but events exist: "
                "the log was tampered with; see verify()"
            )
    return int(row[0]), str(row[1])


def append(conn: Connection, new: NewAuditEvent) -> AuditEvent:
    """Append ``new`` to the chain: the next ``seq``, chained to the current head."""
    last_seq, last_hash = _lock_head(conn)
    seq = last_seq + 1
    event_id = _ids.new_id()
    now = utcnow()
    digest = content_digest(
        id=event_id,
        user_id=new.user_id,
        event_type=new.event_type,
        category=new.category,
        severity=new.severity,
        description=new.description,
        metadata=new.metadata,
        created_at=now,
    )
    hashed = chain_hash(last_hash, seq, digest)
    conn.execute(
        audit_events.insert(),
        {
            "seq": seq,
            "id": event_id,
            "user_id": new.user_id,
            "event_type": new.event_type,
            "category": new.category,
            "severity": new.severity,
            "description": new.description,
            "metadata": new.metadata if new.metadata is not None else null(),
            "created_at": now,
            "content_digest": digest,
            "prev_hash": last_hash,
            "hash": hashed,
            "redacted_at": None,
        },
    )
    conn.execute(
        update(audit_chain)
        .where(audit_chain.c.id == _HEAD_ID)
        .values(last_seq=seq, last_hash=hashed)
    )
    return AuditEvent(
        seq=seq,
        id=event_id,
        user_id=new.user_id,
        event_type=new.event_type,
        category=new.category,  # type: ignore[arg-type]  # validated against AUDIT_CATEGORIES
        severity=new.severity,  # type: ignore[arg-type]  # validated against AUDIT_SEVERITIES
        description=new.description,
        metadata=new.metadata,
        created_at=now,
        hash=hashed,
        redacted=False,
    )


# -- reads ----------------------------------------------------------------------------------


def _to_event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        seq=int(row.seq),
        id=row.id,
        user_id=row.user_id,
        event_type=row.event_type,
        category=row.category,
        severity=row.severity,
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        hash=row.hash,
        redacted=row.redacted_at is not None,
    )


def get(conn: Connection, key: int | uuid.UUID) -> AuditEvent:
    """One event, by ``seq`` (an int) or by id."""
    condition = _e.seq == key if isinstance(key, int) else _e.id == key
    row = conn.execute(select(*_COLUMNS).where(condition)).first()
    if row is None:
        raise NotFoundError("audit event", key)
    return _to_event(row)


#: Reads back the sort key of this listing's cursors: the ``seq`` of an audit event.
decode_cursor = _cursors.decoder(_KIND, _cursors.INTEGER)


def page(
    conn: Connection,
    *,
    user_id: uuid.UUID | None,
    event_type: str | None,
    category: str | None,
    severity: str | None,
    since: datetime | None,
    until: datetime | None,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[AuditEvent]:
    """A keyset page of events by ``seq``, filtered; ``since`` inclusive, ``until`` exclusive."""
    query = select(*_COLUMNS)
    if user_id is not None:
        query = query.where(_e.user_id == user_id)
    if event_type is not None:
        query = query.where(_e.event_type == event_type)
    if category is not None:
        query = query.where(_e.category == category)
    if severity is not None:
        query = query.where(_e.severity == severity)
    if since is not None:
        query = query.where(_e.created_at >= since)
    if until is not None:
        query = query.where(_e.created_at < until)
    return paginate(
        conn,
        query,
        [_e.seq],
        kind=_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_event,
        cursor_key=lambda event: (event.seq,),
    )


# -- verify ---------------------------------------------------------------------------------

Problem = Literal["edited", "deleted", "inserted", "chain head mismatch"]


class _Rows:
    """The events after a seq, in seq order, fetched in keyset batches of ``size``. After it
    runs dry, asking again fetches rows committed since."""

    def __init__(self, conn: Connection, size: int) -> None:
        self._conn = conn
        self._size = size
        self._buffer: deque[Row[Any]] = deque()
        self._last = 0

    def _fill(self) -> bool:
        if not self._buffer:
            query = (
                select(*_CHECKED_COLUMNS)
                .where(_e.seq > self._last)
                .order_by(_e.seq)
                .limit(self._size)
            )
            self._buffer.extend(self._conn.execute(query).all())
            if self._buffer:
                self._last = int(self._buffer[-1].seq)
        return bool(self._buffer)

    def next(self) -> Row[Any] | None:
        return self._buffer.popleft() if self._fill() else None

    def peek(self) -> Row[Any] | None:
        return self._buffer[0] if self._fill() else None


def _head(conn: Connection) -> tuple[int, str] | None:
    c = audit_chain.c
    row = conn.execute(select(c.last_seq, c.last_hash).where(c.id == _HEAD_ID)).first()
    return None if row is None else (int(row[0]), str(row[1]))


def _row_digest(row: Row[Any]) -> str:
    return content_digest(
        id=row.id,
        user_id=row.user_id,
        event_type=row.event_type,
        category=row.category,
        severity=row.severity,
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
    )


def _content_ok(row: Row[Any]) -> bool:
    """A live event's content matches its digest; a redacted one has the redacted form (its
    personal data gone, so redaction cannot be used to rewrite an event's content)."""
    if row.redacted_at is not None:
        return row.user_id is None and row.description == REDACTED and row.metadata is None
    return bool(_row_digest(row) == row.content_digest)


def _seals(row: Row[Any], seq: int) -> bool:
    """Whether the row's hash is what the chain rule gives at ``seq``."""
    return bool(row.hash == chain_hash(row.prev_hash, seq, row.content_digest))


def _diagnose(row: Row[Any], prev_hash: str, following: Row[Any] | None) -> tuple[int, Problem]:
    """Where and how the chain breaks at ``row``, the first event that fails a check.
    ``prev_hash`` is the hash of the last good event; ``following`` the event after ``row``."""
    seq = int(row.seq)
    if following is not None and int(following.seq) == seq + 1 and following.prev_hash == prev_hash:
        return seq, "inserted"  # its successor chains over it, to the event before it
    if row.prev_hash != prev_hash:
        if _seals(row, seq + 1):
            return seq, "deleted"  # sealed one place later: an event before it was removed
        if seq > 1 and _seals(row, seq - 1):
            return seq - 1, "inserted"  # sealed one place earlier: the event before it is new
        if seq > 1 and _seals(row, seq) and _content_ok(row):
            return seq - 1, "edited"  # intact, but the event before it was rewritten
    return seq, "edited"


def verify(conn: Connection, batch_size: int) -> AuditVerification:
    """Check the whole chain, streaming it by ``seq``; report the first break."""
    head = _head(conn)
    rows = _Rows(conn, batch_size)
    prev_hash = GENESIS_HASH
    expected = 1
    checked = 0

    def broken(seq: int, problem: Problem) -> AuditVerification:
        return AuditVerification(ok=False, checked=checked, first_broken_seq=seq, problem=problem)

    while True:
        while (row := rows.next()) is not None:
            checked += 1
            seq = int(row.seq)
            if head is not None and seq > head[0]:
                head = _head(conn)  # appends may have committed since it was read
                if head is not None and seq > head[0]:
                    return broken(seq, "inserted")  # beyond the head, which never saw it
            if seq != expected:
                return broken(expected, "deleted")
            if row.prev_hash != prev_hash or not _seals(row, seq) or not _content_ok(row):
                return broken(*_diagnose(row, prev_hash, rows.peek()))
            prev_hash = row.hash
            expected += 1
        last = expected - 1
        head = _head(conn)
        if head is None:
            if last == 0:
                return AuditVerification(ok=True, checked=0, first_broken_seq=None, problem=None)
            return broken(last, "chain head mismatch")
        if head[0] > last:
            if rows.peek() is not None:
                continue  # committed after the last batch was read
            return broken(last + 1, "deleted")  # the head counts events that are gone
        if head[0] < last or head[1] != prev_hash:
            return broken(last, "chain head mismatch")
        return AuditVerification(ok=True, checked=checked, first_broken_seq=None, problem=None)


# -- redaction ------------------------------------------------------------------------------


#: A name shorter than this is not searched for in audit text when a user is erased: a short
#: username or external id ("ann", "42") would match unrelated events.
MIN_REDACTED_NAME: Final = 6


def _mentions(column: Any, user_id: uuid.UUID, names: Sequence[str] = ()) -> Any:
    """``column`` (compared in lower case) contains the id, in its str or hex form, or one of
    ``names`` (LIKE wildcards in them are matched literally)."""
    text = func.lower(column)
    needles = [str(user_id), user_id.hex]
    needles += [name.lower() for name in names if len(name) >= MIN_REDACTED_NAME or "@" in name]
    return or_(*(text.contains(needle, autoescape=True) for needle in needles))


def redact_user(conn: Connection, user_id: uuid.UUID, names: Sequence[str] = ()) -> int:
    """Redact every event of ``user_id`` or mentioning it (its str or hex form, any case, or
    one of ``names`` such as the user's email, username and external id, in the event type,
    description or metadata; names shorter than :data:`MIN_REDACTED_NAME` other than emails
    are not searched): user_id and metadata become NULL, the description ``[redacted]`` (the
    event type ``[redacted]`` too if it names the user), ``redacted_at`` now. Digests and
    hashes stay, so :func:`verify` still passes. Returns how many events were redacted."""
    in_type = _mentions(_e.event_type, user_id, names)
    condition = or_(
        _e.user_id == user_id,
        in_type,
        _mentions(_e.description, user_id, names),
        _mentions(cast(_e["metadata"], Text), user_id, names),
    )
    stmt = (
        update(audit_events)
        .where(condition)
        .values(
            user_id=None,
            description=REDACTED,
            metadata=null(),
            event_type=case((in_type, REDACTED), else_=_e.event_type),
            redacted_at=utcnow(),
        )
    )
    return int(conn.execute(stmt).rowcount)


#: A retried append learns whether an earlier attempt committed (see ``_once``).
APPENDED: Final = _once.found("audit event", get)
