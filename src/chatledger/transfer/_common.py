"""What copy, export and import share: batch sizes, progress callbacks, opening a database
by URL, and naming a user."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final, TypeVar

from sqlalchemy.engine import URL

from .._run.database_sync import Database
from .._run.engine import sync_engine
from .._sync.ledger import Ledger
from ..config import Config
from ..errors import ConflictError, NotFoundError, ValidationError

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Progress",
    "Target",
    "checked_batch",
    "config_of",
    "database",
    "is_uuid",
    "quiet",
    "resolve_user",
]

#: Rows per batch (one transaction on the target each) unless told otherwise.
DEFAULT_BATCH_SIZE: Final = 5000

#: ``progress(task, done, total)``: called as work advances; ``done`` counts rows (or
#: records) of ``task`` so far, ``total`` is the expected count when known.
Progress = Callable[[str, int, int | None], None]

Target = str | URL | Config
T = TypeVar("T")


def quiet(task: str, done: int, total: int | None) -> None:
    """The default progress callback: nothing."""


def config_of(target: Target) -> Config:
    """The configuration of a copy's source or target."""
    return target if isinstance(target, Config) else Config.load(target)


def database(config: Config) -> Database:
    """A sync :class:`Database` on ``config``'s URL (dispose of it when done)."""
    engine, backend = sync_engine(config)
    return Database(engine, backend, busy_timeout=config.sqlite_busy_timeout)


def checked_batch(value: object) -> int:
    """``value`` checked as a batch size."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise ValidationError("batch_size", f"must be a whole number 1..100000, not {value!r}")
    return value


def is_uuid(text: str) -> bool:
    """Whether ``text`` spells a UUID."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def resolve_user(ledger: Ledger, user: str | uuid.UUID) -> uuid.UUID:
    """The id of the user ``user`` names: their id, external id, email or username.

    Every field is looked up; :class:`NotFoundError` if none matches, :class:`ConflictError`
    if the text names different users in different fields (then give the id)."""
    if isinstance(user, uuid.UUID):
        return ledger.users.get(user).id
    lookups: list[tuple[str, Callable[[str], Any]]] = [
        ("external id", ledger.users.get_by_external_id),
        ("email", ledger.users.get_by_email),
        ("username", ledger.users.get_by_username),
    ]
    if is_uuid(user):
        lookups.insert(0, ("id", ledger.users.get))
    found: dict[uuid.UUID, str] = {}
    for field_name, lookup in lookups:
        try:
            found.setdefault(lookup(user).id, field_name)
        except (NotFoundError, ValidationError):
            continue
    if not found:
        raise NotFoundError("user", user)
    if len(found) > 1:
        named = "; ".join(f"{field_name} of user {ident}" for ident, field_name in found.items())
        raise ConflictError(f"{user!r} names more than one user ({named}): give the id")
    return next(iter(found))
