"""Importing other applications' files: a ChatGPT export (every branch of each
conversation's tree), and the visitors and feedback files of the visitor-registry apps. The
parsing lives in :mod:`chatledger._ops.importers`; ids are deterministic, so a second import
of the same file writes nothing."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from typing import Any

from .._ops import importers
from .._ops._common import utcnow
from .._sync.ledger import Ledger
from ..errors import NotFoundError, ValidationError
from ._common import Progress, is_uuid, resolve_user
from ._importing import ImportReport, named, write

__all__ = ["import_chatgpt", "import_feedback", "import_visitors"]


def _records(name: str, document: Any, key: str) -> list[Any]:
    if isinstance(document, Mapping) and isinstance(document.get(key), list):
        return list(document[key])
    if isinstance(document, list):
        return document
    raise ValidationError(name, f"must hold a list of {key} records")


def import_chatgpt(
    ledger: Ledger,
    name: str,
    document: Any,
    user: str | uuid.UUID,
    report: ImportReport,
    progress: Progress,
) -> None:
    """Import the conversations of a ChatGPT export for ``user`` (an id, or an external id
    that names a new user), one transaction per conversation."""
    records = _records(name, document, "conversations")
    try:
        owner = resolve_user(ledger, user)
    except NotFoundError:
        if isinstance(user, uuid.UUID) or is_uuid(user):
            raise  # an id that names nobody is a mistake, not a new external id
        owner = ledger.users.get_or_create(user).id
    progress("conversations", 0, len(records))
    for index, doc in enumerate(records):
        parsed = named(
            name,
            functools.partial(importers.chatgpt_conversation, doc, index, owner, ledger.limits),
        )
        created, added, known = write(ledger, importers.insert_conversation, parsed)
        report.add("conversations", int(created), int(not created))
        report.add("messages", added, known)
        for kind, count in parsed.not_imported.items():
            report.not_imported[kind] = report.not_imported.get(kind, 0) + count
        progress("conversations", index + 1, len(records))


def import_visitors(
    ledger: Ledger, name: str, document: Any, report: ImportReport, progress: Progress
) -> None:
    """Import a visitors file (one transaction)."""
    now = utcnow()
    records = _records(name, document, "visitors")
    parsed = named(name, lambda: importers.visitor_records(records, now))
    inserted, skipped = write(ledger, importers.insert_visitors, parsed)
    report.add("visitors", inserted, skipped)
    progress("visitors", len(records), len(records))


def import_feedback(
    ledger: Ledger, name: str, document: Any, report: ImportReport, progress: Progress
) -> None:
    """Import a product-feedback file (one transaction)."""
    now = utcnow()
    records = _records(name, document, "feedback")
    rows = named(
        name, lambda: [importers.feedback_row(doc, i, now) for i, doc in enumerate(records)]
    )
    inserted, skipped = write(ledger, importers.insert_feedback, rows)
    report.add("product_feedback", inserted, skipped)
    progress("product_feedback", len(records), len(records))
