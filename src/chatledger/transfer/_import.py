"""Importing a file: its format detected from its first record (or given), then read by the
format's importer (:mod:`._native` for chatledger's own export, :mod:`._foreign` for
ChatGPT and the visitor-registry apps)."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from .. import _inputs
from .._ops import transfer as _ops
from .._sync.ledger import Ledger
from ..errors import ValidationError
from ._common import DEFAULT_BATCH_SIZE, Progress, checked_batch, quiet
from ._foreign import import_chatgpt, import_feedback, import_visitors
from ._importing import ImportReport
from ._native import import_document, import_lines

__all__ = ["IMPORT_FORMATS", "ImportFormat", "detect_format", "import_data"]

logger = logging.getLogger(__name__)

ImportFormat = Literal["chatledger", "chatledger-jsonl", "chatgpt", "visitors", "feedback"]
IMPORT_FORMATS: Final[tuple[ImportFormat, ...]] = (
    "chatledger",
    "chatledger-jsonl",
    "chatgpt",
    "visitors",
    "feedback",
)


def _is_jsonl(name: str) -> bool:
    """Whether the file starts with a chatledger JSON-lines header (a short first line)."""
    first = _inputs.read_head(name, _HEADER_MAX)
    if first is None:
        return False
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(head, Mapping) and head.get("kind") == _ops.KIND and "tables" not in head


#: The longest first line read when looking for a JSON-lines header.
_HEADER_MAX: Final = 65_536


def detect_format(path: str | os.PathLike[str]) -> ImportFormat:
    """Which import format a file holds, from its first record; :class:`ValidationError` if
    none fits."""
    name = os.fspath(path)
    return "chatledger-jsonl" if _is_jsonl(name) else _detect(name, _load(name))


def _detect(name: str, document: Any) -> ImportFormat:
    if isinstance(document, Mapping):
        if document.get("kind") == _ops.KIND or ("format" in document and "tables" in document):
            return "chatledger"
        wrapped: tuple[tuple[str, ImportFormat], ...] = (
            ("visitors", "visitors"),
            ("feedback", "feedback"),
            ("conversations", "chatgpt"),
        )
        for key, kind in wrapped:
            if isinstance(document.get(key), list):
                return _detect(name, document[key]) if document[key] else kind
        raise ValidationError(name, "is a JSON object of no known format: use --format")
    if not isinstance(document, list):
        raise ValidationError(name, "holds neither a JSON object nor a list: no known format")
    if not document:
        raise ValidationError(name, "is an empty list: its format cannot be detected, use --format")
    first = document[0]
    if isinstance(first, Mapping):
        if "mapping" in first:
            return "chatgpt"
        if "agent_name" in first:
            return "feedback"
        if "name" in first:
            return "visitors"
    raise ValidationError(
        f"{name}: record 0", "matches no known format (chatgpt, visitors, feedback)"
    )


def _load(name: str) -> Any:
    return _inputs.load_document(name)


def import_data(
    ledger: Ledger,
    path: str | os.PathLike[str],
    *,
    format: ImportFormat | None = None,
    user: str | uuid.UUID | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the file at ``path`` (its format detected, or given) and count what was written.

    - ``chatledger`` / ``chatledger-jsonl``: :func:`export_data`'s output, row for row (ids,
      sequence numbers, times, costs, metadata and all); rows whose primary key exists are
      skipped. The audit chain's head moves forward only. One transaction per table batch.
    - ``chatgpt``: a ChatGPT export (the ZIP ChatGPT delivers, or its ``conversations.json``),
      imported for ``user`` (an id or an external id; a new external id creates the user),
      every branch of each conversation's tree, the active leaf at ``current_node``. One
      transaction per conversation. A conversation imported before gets the messages it has
      grown by since. Images, attached files and "thoughts" are counted in
      ``report.not_imported``, not imported.
    - ``visitors``, ``feedback``: files of the visitor-registry apps. One transaction per file.

    Ids are deterministic, so a second import of the same file inserts nothing. Invalid input
    raises :class:`ValidationError` naming the file, the record and the field; what was
    committed before stays (a rerun after fixing the file completes it).
    """
    name = os.fspath(path)
    if not Path(name).is_file():
        raise ValidationError("path", f"{name} is not a file")
    batch = checked_batch(batch_size)
    document: Any = None
    if format is not None:
        kind = format
    elif _is_jsonl(name):
        kind = "chatledger-jsonl"
    else:
        document = _load(name)
        kind = _detect(name, document)
    if kind not in IMPORT_FORMATS:
        raise ValidationError("format", f"must be one of {', '.join(IMPORT_FORMATS)}, not {kind!r}")
    if kind != "chatgpt" and user is not None:
        raise ValidationError("user", f"applies to ChatGPT imports only, not to {kind}")
    report = ImportReport(kind)
    tick = progress or quiet
    if kind == "chatledger-jsonl":
        with _inputs.open_text(name) as stream:
            import_lines(ledger, name, stream, report, batch, tick)
        return report
    if document is None:
        document = _load(name)
    if kind == "chatledger":
        import_document(ledger, name, document, report, batch, tick)
    elif kind == "chatgpt":
        if user is None:
            raise ValidationError(
                "user", "a ChatGPT import needs the user the conversations belong to"
            )
        import_chatgpt(ledger, name, document, user, report, tick)
    elif kind == "visitors":
        import_visitors(ledger, name, document, report, tick)
    else:
        import_feedback(ledger, name, document, report, tick)
    logger.info(
        "imported %s: %s inserted, %s skipped, not imported: %s",
        name,
        report.inserted,
        report.skipped,
        report.not_imported,
    )
    return report
