"""Passwords and roles of users.

Passwords are hashed with argon2id (``argon2-cffi``) and stored as PHC strings in
``users.password_hash``; hashing and verifying are CPU work done by the facade, outside any
transaction, so a write transaction (an exclusive lock on SQLite) is never held while a hash is
computed. The operations here only read and write the stored hash.

Verification fails the same way, in comparable time, for an unknown login, a user without a
password and a wrong password: when there is no stored hash, the password is verified against a
fixed dummy hash made with the same parameters.
"""

from __future__ import annotations

import secrets
import uuid
from functools import cache
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, or_, select, update

from .. import _validate as check
from .._schema import EMAIL_MAX, EXTERNAL_ID_MAX, USERNAME_MAX, users
from ..errors import AuthenticationError, NotFoundError, ValidationError
from ..records import Order, Page, User
from ._common import from_row, paginate, record_columns, utcnow

__all__ = [
    "HASHER",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "find_login",
    "hash_password",
    "login_lookups",
    "password",
    "replace_hash",
    "set_hash",
    "verify",
    "with_role",
]

#: The hasher of new passwords; a stored hash made with other parameters is replaced by one made
#: with these after the next successful verification.
HASHER: Final = PasswordHasher()
PASSWORD_MIN: Final = 8
PASSWORD_MAX: Final = 1024

_COLUMNS: Final = record_columns(users, User)
_KIND: Final = "users"  # the users listing's cursors: with_role pages by the same key
#: Where a login is looked for, in this order.
_LOGIN_FIELDS: Final = ("email", "username", "external_id")
_LOGIN_MAX: Final = max(EMAIL_MAX, USERNAME_MAX, EXTERNAL_ID_MAX)


def password(field: str, value: object) -> str:
    """A password to store: a string of 8 to 1024 characters without NUL. Errors never
    contain the value."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if len(value) < PASSWORD_MIN:
        raise ValidationError(
            field, f"must be at least {PASSWORD_MIN} characters", limit=PASSWORD_MIN
        )
    return check.text(field, value, PASSWORD_MAX)


def hash_password(value: str) -> str:
    """The PHC string of a new argon2id hash of ``value``."""
    return HASHER.hash(value)


@cache
def _dummy_hash() -> str:
    """A hash nobody knows the password of, made once, with the hasher's parameters."""
    return HASHER.hash(secrets.token_urlsafe(24))


def verify(stored: str | None, given: object) -> str | None:
    """Check ``given`` against ``stored`` (``None``: no user or no password, checked against a
    dummy hash so that it takes as long). Raises :class:`AuthenticationError` on any failure;
    returns a fresh hash when ``stored`` was made with other parameters, else ``None``."""
    if not isinstance(given, str):
        raise ValidationError("password", f"must be a string, not {type(given).__name__}")
    candidate = given if given.isascii() or _encodable(given) else ""
    try:
        HASHER.verify(stored if stored is not None else _dummy_hash(), candidate)
    except (VerificationError, InvalidHashError):
        raise AuthenticationError() from None
    if stored is None or candidate != given:
        raise AuthenticationError()
    return hash_password(given) if HASHER.check_needs_rehash(stored) else None


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def login_lookups(login: object) -> list[tuple[str, str]]:
    """The (column, value) pairs a login may match, in priority order: the normalised email
    (when the login is an address), the username, the external id. Empty when the login
    cannot match any user (too long, NUL, lone surrogates)."""
    if not isinstance(login, str):
        raise ValidationError("login", f"must be a string, not {type(login).__name__}")
    if len(login) > _LOGIN_MAX or "\x00" in login or not _encodable(login):
        return []
    lookups: list[tuple[str, str]] = []
    if "@" in login:
        try:
            email = check.email("login", login, EMAIL_MAX)
        except ValidationError:
            email = None
        if email is not None:
            lookups.append(("email", email))
    username = login.strip()
    if username and len(username) <= USERNAME_MAX:
        lookups.append(("username", username))
    if login and len(login) <= EXTERNAL_ID_MAX:
        lookups.append(("external_id", login))
    return lookups


def find_login(conn: Connection, lookups: list[tuple[str, str]]) -> tuple[User, str | None] | None:
    """The user a login names and their stored hash: the first of ``lookups`` (in order) that
    matches a user, or ``None``. One query, whichever of the keys matches."""
    if not lookups:
        return None
    query = select(*_COLUMNS, users.c.password_hash).where(
        or_(*(users.c[field] == value for field, value in lookups))
    )
    rows = conn.execute(query).all()
    for field, value in lookups:
        for row in rows:
            user = User(*row[:-1])
            if getattr(user, field) == value:
                return user, row[-1]
    return None


def set_hash(conn: Connection, user_id: uuid.UUID, hashed: str | None) -> None:
    """Store a user's password hash (``None``: the user has no password)."""
    result = conn.execute(
        update(users).where(users.c.id == user_id).values(password_hash=hashed, updated_at=utcnow())
    )
    if result.rowcount != 1:
        raise NotFoundError("user", user_id)


def replace_hash(conn: Connection, user_id: uuid.UUID, old: str, new: str) -> bool:
    """Swap ``old`` for ``new`` (a rehash), unless the password changed meanwhile."""
    result = conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.password_hash == old)
        .values(password_hash=new)
    )
    return bool(result.rowcount == 1)


def with_role(
    conn: Connection,
    role: str,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[User]:
    """A keyset page of the users with ``role``, by id (creation order)."""
    return paginate(
        conn,
        select(*_COLUMNS).where(users.c.role == role),
        [users.c.id],
        kind=_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=lambda row: from_row(User, row),
        cursor_key=lambda user: (user.id.hex,),
    )
