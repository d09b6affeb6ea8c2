"""The API keys resource."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from .. import _validate as check
from .._ops import api_keys as _api_keys
from .._ops._common import utcnow
from .._schema import API_KEY_NAME_MAX
from .._validate import Id
from ..errors import NotPrimaryError, ValidationError
from ..records import ApiKey, CreatedApiKey, Order, Page

if TYPE_CHECKING:
    from ._store import _AsyncStore

__all__ = ["AsyncApiKeys"]


def _listing(user_id: Id | None, include_revoked: object) -> tuple[uuid.UUID | None, bool]:
    """The checked arguments of a listing of keys."""
    owner = None if user_id is None else check.identifier("user_id", user_id)
    if not isinstance(include_revoked, bool):
        raise ValidationError("include_revoked", "must be a bool")
    return owner, include_revoked


class AsyncApiKeys:
    """API keys: the secret is returned once at creation; only its SHA-256 and a lookup prefix are
    stored; verification is constant-time and fails the same way for unknown, revoked and
    expired keys."""

    def __init__(self, store: _AsyncStore) -> None:
        self._store = store

    async def create(
        self, user_id: Id, *, name: str | None = None, expires_at: datetime | None = None
    ) -> CreatedApiKey:
        """A new key of the user. ``CreatedApiKey.secret`` (``clk_<prefix>_<secret>``) is
        returned this once and stored nowhere: hand it to the client now. ``expires_at``, an
        aware datetime in the future, ends its validity. The anonymous owner cannot have
        keys (ValidationError)."""
        owner = check.acting_user("user_id", user_id)
        label = None if name is None else check.nonblank("name", name, API_KEY_NAME_MAX)
        expiry = check.optional_aware_datetime("expires_at", expires_at)
        if expiry is not None and expiry <= utcnow():
            raise ValidationError("expires_at", "must be in the future")
        return await self._store._call(
            _api_keys.create, owner, label, expiry, write=True, settle=_api_keys.CREATED
        )

    async def verify(self, key: str) -> ApiKey:
        """The key whose full secret is ``key``, if it is valid. Unknown, malformed, wrong,
        revoked and expired keys all raise the same AuthenticationError; the comparison takes
        constant time. Records the use in ``last_used_at`` (at most once a minute)."""
        prefix = _api_keys.parse(key)
        found = await self._store._call(_api_keys.find, prefix) if prefix is not None else None
        now = utcnow()
        record = _api_keys.check(found, key, now)
        if record.last_used_at is not None and record.last_used_at > now - _api_keys.TOUCH_INTERVAL:
            return record
        try:
            return await self._store._call(_api_keys.touch, record, now, write=True)
        except NotPrimaryError:
            return record  # a read-only LiteFS replica: the primary records the next use

    async def get(self, key_id: Id) -> ApiKey:
        """The key with this id (never its secret)."""
        key = check.identifier("key_id", key_id)
        return await self._store._call(_api_keys.get, key)

    async def list(
        self, *, user_id: Id | None = None, include_revoked: bool = False
    ) -> builtins.list[ApiKey]:
        """The keys (of ``user_id``), oldest first; revoked ones only with
        ``include_revoked=True``. Expired keys are listed: their ``expires_at`` says so."""
        return await self._store._call(_api_keys.list_keys, *_listing(user_id, include_revoked))

    async def page(
        self,
        *,
        user_id: Id | None = None,
        include_revoked: bool = False,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        order: Order = "asc",
    ) -> Page[ApiKey]:
        """A page of the keys (of ``user_id``) in creation order (``order="desc"``: newest
        first); revoked ones only with ``include_revoked=True``."""
        keys = check.paging(_api_keys.decode_cursor, after, before, limit, self._store.limits)
        return await self._store._call(
            _api_keys.page, *_listing(user_id, include_revoked), order=check.order(order), **keys
        )

    async def revoke(self, key_id: Id) -> ApiKey:
        """Revoke the key: it no longer verifies. Revoking it again changes nothing."""
        key = check.identifier("key_id", key_id)
        return await self._store._call(_api_keys.revoke, key, write=True)
