"""API keys: creation (the secret is returned once), constant-time verification, revocation.

A key reads ``clk_<prefix>_<secret>``: ``prefix`` is 12 random letters and digits, stored in
clear and unique, to find the row; ``secret`` is 32 random bytes, base64url without padding.
Only the SHA-256 (hex) of the whole key string is stored. The key is long and random, so a fast
hash is enough (a slow password hash would only cost every request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Row, Select, select, update
from sqlalchemy.exc import IntegrityError

from .. import _cursors, _ids
from .._backends import backend_of
from .._schema import api_keys
from ..errors import AuthenticationError, NotFoundError
from ..records import ApiKey, CreatedApiKey, Order, Page
from . import _once
from ._common import from_row, paginate, record_columns, record_values, utcnow

__all__ = [
    "TOUCH_INTERVAL",
    "check",
    "create",
    "digest",
    "find",
    "get",
    "list_keys",
    "parse",
    "revoke",
    "touch",
]

_COLUMNS: Final = record_columns(api_keys, ApiKey)
_SCHEME: Final = "clk_"
_PREFIX_LENGTH: Final = 12
_PREFIX_ALPHABET: Final = string.ascii_letters + string.digits
_SECRET_BYTES: Final = 32
_SECRET_LENGTH: Final = 43  # base64url of 32 bytes, unpadded
_KEY_LENGTH: Final = len(_SCHEME) + _PREFIX_LENGTH + 1 + _SECRET_LENGTH
_SECRET_ALPHABET: Final = frozenset(string.ascii_letters + string.digits + "-_")
#: ``last_used_at`` is written at most this often per key, not on every request.
TOUCH_INTERVAL: Final = timedelta(seconds=60)
#: Compared against when the prefix is unknown, so that a miss costs what a hit costs.
_DUMMY_DIGEST: Final = hashlib.sha256(b"chatledger api key that does not exist").hexdigest()


def digest(key: str) -> str:
    """The stored form of a key: SHA-256 of the whole key string, hex."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def parse(key: object) -> str | None:
    """The lookup prefix of a well-formed key, else ``None``."""
    if not isinstance(key, str) or len(key) != _KEY_LENGTH or not key.isascii():
        return None
    prefix_end = len(_SCHEME) + _PREFIX_LENGTH
    if not key.startswith(_SCHEME) or key[prefix_end] != "_":
        return None
    prefix, secret = key[len(_SCHEME) : prefix_end], key[prefix_end + 1 :]
    if not prefix.isalnum() or not set(secret) <= _SECRET_ALPHABET:
        return None
    return prefix


def _new_key() -> tuple[str, str]:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return prefix, f"{_SCHEME}{prefix}_{secret}"


def create(
    conn: Connection, user_id: uuid.UUID, name: str | None, expires_at: datetime | None
) -> CreatedApiKey:
    """A new key of ``user_id``; its secret is in the result and nowhere else."""
    prefix, key = _ids.drawn(_new_key)  # the same secret on every attempt of this call
    record = ApiKey(
        id=_ids.new_id(),
        user_id=user_id,
        name=name,
        prefix=prefix,
        created_at=utcnow(),
        expires_at=expires_at,
        revoked_at=None,
        last_used_at=None,
    )
    try:
        conn.execute(api_keys.insert(), {**record_values(record), "secret_hash": digest(key)})
    except IntegrityError as exc:
        if backend_of(conn).violation(exc).kind == "foreign_key":
            raise NotFoundError("user", user_id) from exc
        raise
    return CreatedApiKey(key=record, secret=key)


def find(conn: Connection, prefix: str) -> tuple[ApiKey, str] | None:
    """The key with this prefix and its stored digest."""
    row = conn.execute(
        select(*_COLUMNS, api_keys.c.secret_hash).where(api_keys.c.prefix == prefix)
    ).first()
    if row is None:
        return None
    return ApiKey(*row[:-1]), row[-1]


def check(found: tuple[ApiKey, str] | None, key: object, now: datetime) -> ApiKey:
    """The key ``found`` for ``key``, if ``key`` is its secret and it is neither revoked nor
    expired. Every failure raises the same :class:`AuthenticationError`; the digests are
    compared in constant time, against a dummy when nothing was found."""
    given = digest(key) if isinstance(key, str) and parse(key) is not None else _DUMMY_DIGEST
    stored = found[1] if found is not None else _DUMMY_DIGEST
    matches = hmac.compare_digest(stored, given)
    if found is None or not matches:
        raise AuthenticationError()
    record = found[0]
    if record.revoked_at is not None or (
        record.expires_at is not None and record.expires_at <= now
    ):
        raise AuthenticationError()
    return record


def touch(conn: Connection, record: ApiKey, now: datetime) -> ApiKey:
    """Record a use of the key, unless one was recorded less than :data:`TOUCH_INTERVAL` ago."""
    if record.last_used_at is not None and record.last_used_at > now - TOUCH_INTERVAL:
        return record
    c = api_keys.c
    result = conn.execute(
        update(api_keys)
        .where(
            c.id == record.id,
            c.revoked_at.is_(None),
            c.last_used_at.is_(None) | (c.last_used_at <= now - TOUCH_INTERVAL),
        )
        .values(last_used_at=now)
    )
    return replace(record, last_used_at=now) if result.rowcount == 1 else record


def _to_key(row: Row[Any]) -> ApiKey:
    return from_row(ApiKey, row)


def get(conn: Connection, key_id: uuid.UUID, *, lock: bool = False) -> ApiKey:
    """One key by id."""
    query = select(*_COLUMNS).where(api_keys.c.id == key_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError("api key", key_id)
    return _to_key(row)


def _listed(user_id: uuid.UUID | None, include_revoked: bool) -> Select[Any]:
    """The keys (of ``user_id``; revoked ones too with ``include_revoked``)."""
    c = api_keys.c
    query = select(*_COLUMNS)
    if user_id is not None:
        query = query.where(c.user_id == user_id)
    if not include_revoked:
        query = query.where(c.revoked_at.is_(None))
    return query


def list_keys(conn: Connection, user_id: uuid.UUID | None, include_revoked: bool) -> list[ApiKey]:
    """Keys (of ``user_id``), oldest first."""
    query = _listed(user_id, include_revoked).order_by(api_keys.c.created_at, api_keys.c.id)
    return [_to_key(row) for row in conn.execute(query)]


_KIND: Final = "api_keys"
decode_cursor = _cursors.decoder(_KIND, _cursors.TIME, _cursors.ID)


def page(
    conn: Connection,
    user_id: uuid.UUID | None,
    include_revoked: bool,
    *,
    order: Order,
    after: list[Any] | None,
    before: list[Any] | None,
    limit: int,
) -> Page[ApiKey]:
    """A keyset page of keys (of ``user_id``) by creation time, then id."""
    return paginate(
        conn,
        _listed(user_id, include_revoked),
        [api_keys.c.created_at, api_keys.c.id],
        kind=_KIND,
        order=order,
        after=after,
        before=before,
        limit=limit,
        convert=_to_key,
        cursor_key=lambda key: (key.created_at.isoformat(), key.id.hex),
    )


def revoke(conn: Connection, key_id: uuid.UUID) -> ApiKey:
    """Revoke a key; revoking a revoked key changes nothing."""
    current = get(conn, key_id, lock=True)
    if current.revoked_at is not None:
        return current
    now = utcnow()
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now))
    return replace(current, revoked_at=now)


def _created(conn: Connection, drawn: Sequence[Any]) -> CreatedApiKey | _once.NotWritten:
    key_id = _once.first_id(drawn)
    if key_id is None:
        return _once.NOT_WRITTEN
    try:
        record = get(conn, key_id)
    except NotFoundError:
        return _once.NOT_WRITTEN
    _prefix, secret = drawn[0]
    return CreatedApiKey(key=record, secret=secret)


#: A retried create learns whether an earlier attempt committed (see ``_once``), and hands
#: back the secret that attempt drew.
CREATED: Final = _once.Settle("API key", _created)
