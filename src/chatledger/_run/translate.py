"""The one boundary where SQLAlchemy and driver exceptions become chatledger errors."""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import exc as sa_exc

from .._backends import Backend
from .._schema import KINDS, UNIQUE_FIELDS, Base
from ..errors import (
    ChatledgerError,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    NotFoundError,
    TransientError,
    ValidationError,
)

__all__ = ["translate"]

logger = logging.getLogger(__name__)


def _referenced() -> dict[str, str]:
    """Foreign key names and columns -> the kind of object a violation says is missing."""
    found: dict[str, str] = {}
    for table in Base.metadata.tables.values():
        for fk in table.foreign_key_constraints:
            kind = KINDS.get(fk.referred_table.name, fk.referred_table.name)
            if isinstance(fk.name, str):
                found[fk.name] = kind
            for column in fk.column_keys:
                found.setdefault(column, kind)
    return found


#: Foreign keys (by constraint name, and by column for backends that report only that).
_REFERENCED: Final[dict[str, str]] = _referenced()


def _summary(exc: BaseException, secret: str | None) -> str:
    """The first line of a driver message, with the connection password scrubbed."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if secret:
        message = message.replace(secret, "***")
    return message[:300]


def translate(
    exc: sa_exc.SQLAlchemyError, backend: Backend, *, secret: str | None = None
) -> ChatledgerError:
    """The chatledger error for ``exc``; the caller raises it ``from exc``."""
    if not isinstance(exc, sa_exc.DBAPIError):
        if isinstance(exc, sa_exc.TimeoutError):
            return TransientError("timed out waiting for a pooled database connection")
        if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, ValueError):
            # A bind parameter rejected by a column type (e.g. a naive datetime).
            return ValidationError("value", _summary(exc.orig or exc, secret))
        return DatabaseError(f"database error: {_summary(exc, secret)}")

    code = backend.error_code(exc)
    if (missing := backend.missing_database(exc)) is not None:
        return ConfigurationError(
            f"the database {missing!r} does not exist on the {backend.name} server: create it "
            f"(e.g. CREATE DATABASE {missing}), or run `chatledger init --create-database` "
            "if your database user may create databases"
        )
    if backend.is_transient(exc):
        detail = _summary(exc.orig or exc, secret)
        return TransientError(
            f"transient database failure: {detail}",
            code=code,
            outcome_unknown=backend.connection_lost(exc),
        )
    if isinstance(exc, sa_exc.IntegrityError):
        violation = backend.violation(exc)
        if violation.kind == "unique":
            field = UNIQUE_FIELDS.get(violation.name or "", violation.name)
            return ConflictError(f"{field or 'a unique value'} is already taken", field=field)
        if violation.kind == "foreign_key" and violation.name in _REFERENCED:
            return NotFoundError(_REFERENCED[violation.name])
        if violation.kind in ("check", "not_null"):
            return ValidationError(
                violation.name or "value", f"violates the {violation.kind} constraint"
            )
    return DatabaseError(f"database error: {_summary(exc.orig or exc, secret)}", code=code)
