# This file is generated from ../_async/_idempotency.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""HTTP idempotency keys: claims that make a retried HTTP request replay the first response.

Used by the HTTP API (``chatledger.server``); the claims live in the ``idempotent_requests``
table, per API key.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from .. import _validate as check
from .._ops import idempotency as _idempotency
from .._ops._common import utcnow
from .._schema import IDEMPOTENCY_KEY_MAX
from .._validate import Id
from ..errors import ValidationError

if TYPE_CHECKING:
    from ._store import _Store

__all__ = ["RUNNING_TIMEOUT", "TTL", "IdempotentRequests"]

#: A ``running`` claim older than this was left by a process that died; it is taken over.
RUNNING_TIMEOUT: Final = timedelta(seconds=60)
#: A claim and its stored response expire after this.
TTL: Final = timedelta(hours=24)

_HASH: Final = re.compile(r"[0-9a-f]{64}")


def _request_hash(value: object) -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise ValidationError("request_hash", "must be 64 lower-case hex digits (SHA-256)")
    return value


def idempotency_key(value: object) -> str:
    """An idempotency key: a non-blank string of up to 200 characters (compared exactly)."""
    key = check.text("Idempotency-Key", value, IDEMPOTENCY_KEY_MAX)
    if not key.strip():
        raise ValidationError("Idempotency-Key", "must not be blank")
    return key


def _body(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("body", f"must be a string, not {type(value).__name__}")
    return value


def _duration(field: str, value: object) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ValidationError(field, "must be a positive timedelta")
    return value


class IdempotentRequests:
    """Claims of HTTP idempotency keys, per API key (see ``_ops/idempotency.py``)."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def claim(
        self,
        api_key_id: Id,
        key: str,
        request_hash: str,
        *,
        running_timeout: timedelta = RUNNING_TIMEOUT,
        ttl: timedelta = TTL,
    ) -> _idempotency.Claim:
        """Claim ``key`` for a request, in a transaction of its own (committed on return, so
        other processes see it): ``claimed`` (run the request), ``replay`` (the stored
        response), ``mismatch`` (the key was used for another request) or ``running``."""
        return self._store._call(
            _idempotency.claim,
            check.identifier("api_key_id", api_key_id),
            idempotency_key(key),
            _request_hash(request_hash),
            utcnow(),
            _duration("running_timeout", running_timeout),
            _duration("ttl", ttl),
            write=True,
        )

    def complete(
        self,
        api_key_id: Id,
        key: str,
        request_hash: str,
        status: int,
        body: str,
        *,
        message_id: Id | None = None,
    ) -> bool:
        """Store the response of a claimed request for replay, with the id of the message it
        carries (deleting or erasing that message deletes the stored response). ``False`` if
        the claim was taken over meanwhile (it expired), or the message is gone or erased
        already (the claim is released: a retry runs again)."""
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValidationError("status", "must be an HTTP status code", limit=599)
        return self._store._call(
            _idempotency.complete,
            check.identifier("api_key_id", api_key_id),
            idempotency_key(key),
            _request_hash(request_hash),
            status,
            _body(body),
            utcnow(),
            None if message_id is None else check.identifier("message_id", message_id),
            write=True,
        )

    def release(self, api_key_id: Id, key: str, request_hash: str) -> bool:
        """Give up a claim (its request failed), so that a retry runs the request again."""
        api_key = check.identifier("api_key_id", api_key_id)
        checked_key = idempotency_key(key)
        checked_hash = _request_hash(request_hash)
        return self._store._call(
            _idempotency.release,
            api_key,
            checked_key,
            checked_hash,
            write=True,
            settle=_idempotency.released(api_key, checked_key, checked_hash),
        )

    def purge(self, *, running_timeout: timedelta = RUNNING_TIMEOUT, ttl: timedelta = TTL) -> int:
        """Delete expired claims and responses; returns how many."""
        return self._store._call(
            _idempotency.purge,
            utcnow(),
            _duration("running_timeout", running_timeout),
            _duration("ttl", ttl),
            write=True,
        )
