"""What every import format uses: the report, the write of one batch in a transaction of
its own, and validation errors that name the file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._sync._store import run_op
from .._sync.ledger import Ledger
from ..errors import ConflictError, ValidationError
from ._common import T

__all__ = ["ImportReport", "named", "write"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ImportReport:
    """What :func:`import_data` did: rows inserted and skipped (already there), per table."""

    format: str
    inserted: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    #: What the source held that has no place in chatledger, by kind (a ChatGPT export's
    #: ``images``, ``files``, ``thoughts``): counted, not imported.
    not_imported: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, inserted: int, skipped: int) -> None:
        """Count rows of ``table``."""
        self.inserted[table] = self.inserted.get(table, 0) + inserted
        self.skipped[table] = self.skipped.get(table, 0) + skipped

    @property
    def total_inserted(self) -> int:
        """Rows inserted, in all tables."""
        return sum(self.inserted.values())

    @property
    def total_skipped(self) -> int:
        """Rows found already there, in all tables."""
        return sum(self.skipped.values())


def write(ledger: Ledger, op: Callable[..., T], *args: Any) -> T:
    """Run an import write in a transaction of its own. Writes skip what exists, so a
    conflict means a concurrent import of the same records committed first: run it once more,
    and it skips them (a conflict with other data fails again, and is raised)."""
    try:
        return run_op(ledger, op, *args, write=True)
    except ConflictError:
        logger.info("an import batch met a concurrent write; running it again")
        return run_op(ledger, op, *args, write=True)


def named(name: str, parse: Callable[[], Any]) -> Any:
    """Run ``parse``; a validation error gets the file's name in front of its field."""
    try:
        return parse()
    except ValidationError as exc:
        raise ValidationError(f"{name}: {exc.field}", exc.problem, limit=exc.limit) from None
