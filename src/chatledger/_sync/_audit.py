# This file is generated from ../_async/_audit.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The audit resource: an append-only, hash-chained audit log, and the audit logger."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import warnings
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from .. import _ids
from .. import _validate as check
from .._backends import _caller_stacklevel
from .._ops import audit as _audit
from .._ops._common import utcnow
from .._schema import AUDIT_CATEGORIES, AUDIT_SEVERITIES, EVENT_TYPE_MAX
from .._validate import Id
from ..errors import (
    ChatledgerError,
    ChatledgerWarning,
    ConfigurationError,
    OutcomeUnknownError,
    TransientError,
    ValidationError,
)
from ..records import AuditCategory, AuditEvent, AuditSeverity, AuditVerification, Order, Page

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from ._store import _Store
    from .ledger import Ledger

__all__ = ["AuditLog", "AuditLogger", "category_of"]

logger = logging.getLogger(__name__)

#: The largest ``batch_size`` the audit log's ``verify`` accepts.
VERIFY_BATCH_MAX: Final = 100_000

#: How the audit logger derives a category from an event type: the first rule one of
#: whose words occurs in the lower-cased event type wins; no match is ``general``.
CATEGORY_RULES: Final[tuple[tuple[AuditCategory, tuple[str, ...]], ...]] = (
    ("security", ("auth", "blocked", "denied", "injection", "pii")),
    ("access", ("login", "logout", "access")),
    ("compliance", ("gdpr", "erase", "export", "retention")),
    ("system", ("startup", "shutdown", "error")),
)


def category_of(event_type: str) -> AuditCategory:
    """The category the audit logger gives an event type (see :data:`CATEGORY_RULES`):
    ``auth_failed``, ``request_blocked``, ``prompt_injection`` and ``pii_detected`` are
    security; ``user_login`` and ``access_granted`` access (but ``access_denied`` security);
    ``gdpr_erase`` and ``data_export`` compliance; ``startup`` and ``db_error`` system."""
    lowered = event_type.lower()
    for category, words in CATEGORY_RULES:
        if any(word in lowered for word in words):
            return category
    return "general"


def _batch_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("batch_size", f"must be an integer, not {type(value).__name__}")
    if not 1 <= value <= VERIFY_BATCH_MAX:
        raise ValidationError(
            "batch_size", f"{value} is outside 1..{VERIFY_BATCH_MAX:,}", limit=VERIFY_BATCH_MAX
        )
    return value


class AuditLog:
    """An append-only audit log, tamper-evident: each event is chained to the one before by a
    SHA-256 hash, and :meth:`verify` finds the first break.

    There is no update or delete: events are only appended. Erasing a user redacts the
    personal data of their events instead, which keeps the chain verifiable.
    """

    def __init__(self, store: _Store) -> None:
        self._store = store

    def record(
        self,
        event_type: str,
        *,
        user_id: Id | None = None,
        category: AuditCategory = "general",
        severity: AuditSeverity = "info",
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """Append an event; it gets the next ``seq`` and is chained to the event before it.

        ``event_type`` is up to 100 characters (stripped, not blank), ``description`` up to
        10,000; ``user_id`` need not name an existing user (events outlive users).
        """
        new = _audit.prepare(
            self._store.limits,
            event_type=event_type,
            user_id=user_id,
            category=category,
            severity=severity,
            description=description,
            metadata=metadata,
        )
        return self._store._call(_audit.append, new, write=True, settle=_audit.APPENDED)

    def get(self, seq_or_id: int | Id) -> AuditEvent:
        """The event with this ``seq`` (an int) or id."""
        key: int | uuid.UUID
        if isinstance(seq_or_id, int) and not isinstance(seq_or_id, bool):
            if seq_or_id < 1:
                raise ValidationError("seq_or_id", f"seq {seq_or_id} is below 1", limit=1)
            key = seq_or_id
        else:
            key = check.identifier("seq_or_id", seq_or_id)
        return self._store._call(_audit.get, key)

    def list(
        self,
        *,
        user_id: Id | None = None,
        event_type: str | None = None,
        category: AuditCategory | None = None,
        severity: AuditSeverity | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "desc",
    ) -> Page[AuditEvent]:
        """A page of events in ``seq`` order (newest first by default), filtered by user,
        event type, category, severity and time: ``since`` inclusive, ``until`` exclusive
        (aware datetimes). Follow ``after=page.last_cursor`` for the next page."""
        keys = check.paging(_audit.decode_cursor, after, before, limit, self._store.limits)
        start = check.optional_aware_datetime("since", since)
        end = check.optional_aware_datetime("until", until)
        if start is not None and end is not None and end < start:
            raise ValidationError("until", "is before since")
        kind = None if category is None else check.choice("category", category, AUDIT_CATEGORIES)
        level = None if severity is None else check.choice("severity", severity, AUDIT_SEVERITIES)
        return self._store._call(
            _audit.page,
            user_id=None if user_id is None else check.identifier("user_id", user_id),
            event_type=check.optional_text("event_type", event_type, EVENT_TYPE_MAX),
            category=kind,
            severity=level,
            since=start,
            until=end,
            order=check.order(order),
            **keys,
        )

    def verify(self, *, batch_size: int = 1000) -> AuditVerification:
        """Check the hash chain from the first event to the head, reading ``batch_size``
        events at a time (never the whole log at once).

        Reports the first event where the chain breaks and how: ``"edited"`` (content, or a
        hash, no longer matches), ``"deleted"`` (an event is missing), ``"inserted"`` (an event
        that was never appended), or ``"chain head mismatch"`` (the head disagrees with the
        last event). Redacted events are checked by the chain, not by their content.

        A chain recomputed wholesale by someone with write access verifies; anchor the newest
        event's ``(seq, hash)`` outside the database to detect that too.
        """
        size = _batch_size(batch_size)
        return self._store._call(_audit.verify, size)


class AuditLogger:
    """An audit logger for application code: writes each event to the database and to a
    JSON-lines file at once, and keeps working (file only, with a warning) while the database
    is unreachable.

    Each call appends one line to ``path`` (created with mode 0600 if missing; one ``write``
    per line, in append mode, so lines of several processes do not interleave) holding the
    event, ``"stored"`` (whether the database has it) and, when stored, its ``seq`` and
    ``hash``. With ``fsync=True`` each line is flushed to disk before the call returns.

    When the database cannot be used — the write fails with
    :class:`~chatledger.TransientError` (after the store's retries: give the ledger a short
    :class:`~chatledger.RetryPolicy` to fail fast), :class:`~chatledger.OutcomeUnknownError`
    (the line says ``"stored": null`` and its ``id`` is the event id to look for) or
    :class:`~chatledger.ConfigurationError` (say, the database does not exist) — the line is
    written with ``"stored": false``, a :class:`~chatledger.ChatledgerWarning` is issued and a
    warning logged once per outage, and the call returns ``None``. The first write that
    succeeds again logs that the database is back.

    An event the database *refuses* (any other :class:`~chatledger.ChatledgerError`: the
    database answered, so it is no outage) is an error: the line is written with
    ``"stored": false`` and ``"rejected": true`` so the event is not lost, an error is logged,
    and the error is raised. Invalid input is refused before anything is written
    (:class:`~chatledger.ValidationError`).

    ``store`` may be ``None``: the logger writes its file only (no database; see also
    :meth:`connect`). A store whose configuration has ``use_database`` off (``USE_DATABASE=false``)
    is treated the same. Given a user scope, events default to its user.

    The file is written with a plain blocking write on both surfaces (microseconds; a disk
    flush with ``fsync``). It is outside the database, so erasing a user does not redact it:
    rotate and expire it under your retention policy.
    """

    def __init__(
        self, store: _Store | None, path: str | os.PathLike[str], *, fsync: bool = False
    ) -> None:
        if store is not None and not store._core.config.use_database:
            store = None
        self._store = store
        self._path = os.fspath(path)
        self._fsync = fsync
        self._state = threading.Lock()
        self._outage_lines = 0
        self._down = False
        self._owned: Ledger | None = None

    @classmethod
    def connect(
        cls,
        path: str | os.PathLike[str],
        url: str | URL | None = None,
        *,
        fsync: bool = False,
        **options: Any,
    ) -> AuditLogger:
        """A logger on a ledger of its own, opened from ``url`` (else the configuration:
        ``Config.load``) with ``options`` (the ledger's keywords: ``retry``, ``config``, ...).
        When the ledger cannot even be built (:class:`~chatledger.ConfigurationError`: a
        SQLite directory that cannot be created, an invalid setting), the logger writes its
        file only, and says why once (an error logged, a warning issued). :meth:`close`
        closes the ledger."""
        from .ledger import Ledger

        try:
            ledger = Ledger(url, **options)
        except ConfigurationError as exc:
            where = os.fspath(path)
            logger.error(
                "audit database cannot be opened, writing events to %s only: %s", where, exc
            )
            warnings.warn(
                f"audit database cannot be opened, writing events to {where} only: {exc}",
                ChatledgerWarning,
                stacklevel=_caller_stacklevel(),
            )
            return cls(None, path, fsync=fsync)
        made = cls(ledger, path, fsync=fsync)
        made._owned = ledger
        return made

    def close(self) -> None:
        """Close the ledger :meth:`connect` opened (nothing to do for a ledger passed in)."""
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> AuditLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def stores(self) -> bool:
        """Whether events go to a database too (``False``: the file only)."""
        return self._store is not None

    @property
    def path(self) -> str:
        """The JSON-lines file."""
        return self._path

    def log(
        self,
        event_type: str,
        *,
        user_id: Id | None = None,
        category: AuditCategory | None = None,
        severity: AuditSeverity = "info",
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AuditEvent | None:
        """Record an event in the database and append it to the file; return the stored
        event, or ``None`` when the database was unreachable (the file still has the line).

        Without ``category``, it is derived from ``event_type`` (see :func:`category_of`).
        Invalid input raises :class:`~chatledger.ValidationError` and writes nothing.
        """
        store = self._store
        if user_id is None and store is not None:
            user_id = store._owner
        if category is None and isinstance(event_type, str):
            category = category_of(event_type)
        new = _audit.prepare(
            check.Limits() if store is None else store.limits,
            event_type=event_type,
            user_id=user_id,
            category=category,
            severity=severity,
            description=description,
            metadata=metadata,
        )
        if store is None:
            self._append(_dumps(_unstored(new, None)))
            return None
        try:
            event = store._call(_audit.append, new, write=True, settle=_audit.APPENDED)
        except (TransientError, OutcomeUnknownError, ConfigurationError) as exc:
            self._write_unstored(new, exc)
            return None
        except ChatledgerError as exc:
            self._write_rejected(new, exc)
            raise
        self._recovered()
        line = _line(event)
        try:
            self._append(line)
        except OSError as exc:
            logger.error(
                "audit event %d stored, but not written to %s: %s", event.seq, self._path, exc
            )
            warnings.warn(
                f"audit event {event.seq} stored in the database but not written to "
                f"{self._path}: {exc}",
                ChatledgerWarning,
                stacklevel=_caller_stacklevel(),
            )
        return event

    def log_event(
        self,
        event_type: str,
        details: dict[str, Any] | None = None,
        user_id: Id | None = None,
        severity: AuditSeverity = "info",
    ) -> AuditEvent | None:
        """Drop-in for the agent framework's ``log_event``: :meth:`log` with ``details`` as
        the metadata (values JSON cannot hold, such as datetimes, are stored as their ``str``)
        and the category derived from the event type."""
        metadata = None
        if details is not None:
            if not isinstance(details, dict):
                raise ValidationError("details", f"must be a dict, not {type(details).__name__}")
            metadata = json.loads(json.dumps(details, default=str))
        return self.log(event_type, user_id=user_id, severity=severity, metadata=metadata)

    def _write_rejected(self, new: _audit.NewAuditEvent, exc: ChatledgerError) -> None:
        """The database refused the event: an error (no outage); the file keeps the event."""
        document = _unstored(new, exc)
        document["rejected"] = True
        self._append(_dumps(document))
        logger.error(
            "audit event %r rejected by the database (kept in %s only): %s",
            new.event_type,
            self._path,
            exc,
        )

    def _write_unstored(self, new: _audit.NewAuditEvent, exc: ChatledgerError) -> None:
        """The database is unreachable: the file gets the event alone, and an outage begins
        (warned once) unless one is under way."""
        document = _unstored(new, exc)
        if isinstance(exc, OutcomeUnknownError):
            document["stored"] = None  # perhaps: look for this id once the database is back
            if isinstance(exc.key, uuid.UUID):
                document["id"] = str(exc.key)
        self._append(_dumps(document))
        with self._state:
            first = not self._down
            self._down = True
            self._outage_lines += 1
        if first:
            # A configuration error (say, the database does not exist) needs someone to act.
            level = logging.ERROR if isinstance(exc, ConfigurationError) else logging.WARNING
            logger.log(
                level, "audit database unreachable, writing events to %s only: %s", self._path, exc
            )
            warnings.warn(
                f"audit database unreachable, writing events to {self._path} only: {exc}",
                ChatledgerWarning,
                stacklevel=_caller_stacklevel(),
            )

    def _recovered(self) -> None:
        with self._state:
            if not self._down:
                return
            lines, self._down, self._outage_lines = self._outage_lines, False, 0
        logger.warning(
            "audit database reachable again; %d events of the outage are only in %s",
            lines,
            self._path,
        )

    def _append(self, line: bytes) -> None:
        """One ``write`` of a whole line in append mode (atomic among writers of the file)."""
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)


def _unstored(new: _audit.NewAuditEvent, exc: ChatledgerError | None) -> dict[str, Any]:
    """The line of an event the database does not have (``exc``: why; ``None``: no database)."""
    return {
        "id": str(_ids.new_id()),
        "seq": None,
        "hash": None,
        "stored": False,
        "created_at": utcnow().isoformat(timespec="microseconds"),
        "user_id": None if new.user_id is None else str(new.user_id),
        "event_type": new.event_type,
        "category": new.category,
        "severity": new.severity,
        "description": new.description,
        "metadata": new.metadata,
        "error": None if exc is None else f"{type(exc).__name__}: {exc}",
    }


def _dumps(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _line(event: AuditEvent) -> bytes:
    return _dumps(
        {
            "id": str(event.id),
            "seq": event.seq,
            "hash": event.hash,
            "stored": True,
            "created_at": event.created_at.isoformat(timespec="microseconds"),
            "user_id": None if event.user_id is None else str(event.user_id),
            "event_type": event.event_type,
            "category": event.category,
            "severity": event.severity,
            "description": event.description,
            "metadata": event.metadata,
        }
    )
