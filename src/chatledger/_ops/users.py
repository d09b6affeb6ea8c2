"""Users: create, look up by any unique key, get-or-create, list, update, delete."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from sqlalchemy import Connection, Row, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from .. import _cursors, _ids
from .. import _validate as check
from .._backends import backend_of
from .._run.translate import translate
from .._schema import (
    DISPLAY_NAME_MAX,
    EMAIL_MAX,
    EXTERNAL_ID_MAX,
    USER_ROLE_MAX,
    USERNAME_MAX,
    Base,
    audit_events,
    users,
)
from ..errors import ConflictError, NotFoundError
from ..records import ANONYMOUS_USER_ID, EnsuredUser, ErasureReport, Order, Page, User
from . import _once, privacy
from ._common import from_row, paginate, record_columns, record_values, utcnow

__all__ = [
    "LOOKUPS",
    "count",
    "create",
    "delete_one",
    "ensure_anonymous",
    "erase_preview",
    "get_by",
    "get_or_create",
    "page",
    "update_fields",
]

_COLUMNS: Final = record_columns(users, User)
_KIND: Final = "users"
#: Unique keys a user can be looked up by.
LOOKUPS: Final = ("id", "external_id", "email", "username")


def prepare(limits: check.Limits, fields: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise user fields (any subset of them)."""
    validators: dict[str, Callable[[Any], Any]] = {
        "external_id": lambda v: check.optional_text("external_id", v, EXTERNAL_ID_MAX),
        "email": lambda v: check.email("email", v, EMAIL_MAX, strict=limits.strict_email_domains),
        "username": lambda v: None if v is None else check.nonblank("username", v, USERNAME_MAX),
        "display_name": lambda v: check.optional_text("display_name", v, DISPLAY_NAME_MAX),
        "role": lambda v: check.nonblank("role", v, USER_ROLE_MAX),
        "metadata": lambda v: check.metadata("metadata", v, limits),
    }
    return {name: validators[name](value) for name, value in fields.items()}


def _to_user(row: Row[Any]) -> User:
    return from_row(User, row)


#: A retried create learns whether an earlier attempt committed (see ``_once``).
CREATED: Final = _once.inserted("user", users, User)


def create(conn: Connection, fields: dict[str, Any], user_id: uuid.UUID | None = None) -> User:
    """Insert a user (with ``user_id``, else a new id); a taken external_id, email or username
    raises ConflictError."""
    now = utcnow()
    user = User(
        id=_ids.new_id() if user_id is None else user_id,
        external_id=fields.get("external_id"),
        email=fields.get("email"),
        username=fields.get("username"),
        display_name=fields.get("display_name"),
        role=fields.get("role", "user"),
        metadata=fields.get("metadata"),
        created_at=now,
        updated_at=now,
    )
    conn.execute(users.insert(), record_values(user))
    return user


def get_by(conn: Connection, field: str, value: object, *, lock: bool = False) -> User:
    """The user whose unique ``field`` equals ``value``."""
    query = select(*_COLUMNS).where(users.c[field] == value)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError("user", value)
    return from_row(User, row)


def get_or_create(conn: Connection, external_id: str, defaults: dict[str, Any]) -> EnsuredUser:
    """The user with ``external_id``, created with ``defaults`` when there is none, and whether
    this call created it. Safe under concurrency: the loser of a race to create reads the
    winner's row. The new user's id is drawn before the look-up, so a re-run of an attempt
    whose commit went unanswered finds its own row and still reports ``created``."""
    candidate = _ids.new_id()
    try:
        found = get_by(conn, "external_id", external_id)
    except NotFoundError:
        pass
    else:
        return EnsuredUser(found, found.id == candidate)
    try:
        with conn.begin_nested():
            return EnsuredUser(
                create(conn, {**defaults, "external_id": external_id}, candidate), True
            )
    except IntegrityError as exc:
        error = translate(exc, backend_of(conn))
        if not isinstance(error, ConflictError):
            raise
        # A racer created the user first: which unique index reports the clash (external_id
        # or email) differs by backend. The racer's row is the answer; any other holder of
        # the email is a real conflict. The "racer" may be this call's own earlier attempt,
        # whose unanswered commit landed after the look-up above: its row has our candidate id.
        try:
            found = get_by(conn, "external_id", external_id)
        except NotFoundError:
            raise error from exc
        return EnsuredUser(found, found.id == candidate)


def ensure_anonymous(conn: Connection) -> None:
    """Make the anonymous owner's user row (role ``anonymous``) if it is missing; a racer
    making it at the same time is fine."""
    if conn.execute(select(users.c.id).where(users.c.id == ANONYMOUS_USER_ID)).first():
        return
    try:
        with conn.begin_nested():
            create(conn, {"role": "anonymous", "display_name": "Anonymous"}, ANONYMOUS_USER_ID)
    except IntegrityError as exc:
        if not isinstance(translate(exc, backend_of(conn)), ConflictError):
            raise


def update_fields(conn: Connection, user_id: uuid.UUID, changes: dict[str, Any]) -> User:
    """Change some fields of a user."""
    current = get_by(conn, "id", user_id, lock=True)
    if not changes:
        return current
    now = utcnow()
    conn.execute(update(users).where(users.c.id == user_id).values(**changes, updated_at=now))
    return replace(current, **changes, updated_at=now)


def delete_one(conn: Connection, user_id: uuid.UUID) -> None:
    """Delete a user and, by cascade, everything the user owns."""
    if conn.execute(delete(users).where(users.c.id == user_id)).rowcount != 1:
        raise NotFoundError("user", user_id)


#: Reads back the sort key of this listing's cursors: the id of a user.
decode_cursor = _cursors.decoder(_KIND, _cursors.ID)


def page(
    conn: Connection,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[User]:
    """A keyset page of users by id (creation order)."""
    return paginate(
        conn,
        select(*_COLUMNS),
        [users.c.id],
        kind=_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_user,
        cursor_key=lambda user: (user.id.hex,),
    )


def count(conn: Connection) -> int:
    """How many users there are."""
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def erase_preview(conn: Connection, user_id: uuid.UUID) -> ErasureReport:
    """What :func:`chatledger._ops.privacy.erase` would do now, without doing it: the rows it
    would delete per table and the audit events it would redact (events naming the user)."""
    if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
        raise NotFoundError("user", user_id)
    tables = Base.metadata.tables
    deleted = {
        name: int(
            conn.execute(
                select(func.count())
                .select_from(tables[name])
                .where(privacy.USER_ROWS[name](user_id))
            ).scalar_one()
        )
        for name in privacy.ERASE_ORDER
    }
    redacted = int(
        conn.execute(
            select(func.count())
            .select_from(audit_events)
            .where(privacy.USER_ROWS["audit_events"](user_id))
        ).scalar_one()
    )
    return ErasureReport(user_id=user_id, deleted=deleted, redacted_audit_events=redacted)
