"""Authentication (API keys as bearer tokens) and the acting principal of a request.

A key acts as its user. A key of a user whose ``role`` is ``admin`` is an admin key: it may act
across users and call the admin routes; the role is read on every request, so demoting a user
takes effect at once. Every other key acts through ``ledger.as_user(user_id)``: another user's
object does not exist for it (404, the same answer as for a missing one).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .._async.ledger import AsyncLedger, AsyncUserScope
from .._ops import api_keys as _api_keys
from ..errors import AuthenticationError, ChatledgerError, NotFoundError
from ..records import ApiKey, User
from .errors import _BEARER, ApiError
from .operations import OperationIndex

__all__ = [
    "ADMIN_ROLE",
    "Admin",
    "Caller",
    "Principal",
    "audit",
    "authenticate",
    "authenticate_first",
    "ledger_of",
    "not_self",
    "require_admin",
]

logger = logging.getLogger("chatledger.server")

#: The user role whose keys are admin keys.
ADMIN_ROLE: Final = "admin"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key, sent as `Authorization: Bearer clk_...`.",
)


def ledger_of(request: Request) -> AsyncLedger:
    """The ledger the app serves (opened in the lifespan)."""
    ledger: AsyncLedger = request.app.state.ledger
    return ledger


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified key, its user (read on this request) and the ledger."""

    key: ApiKey
    user: User
    ledger: AsyncLedger

    @property
    def is_admin(self) -> bool:
        """Whether the key's user has the admin role."""
        return self.user.role == ADMIN_ROLE

    @property
    def store(self) -> AsyncLedger | AsyncUserScope:
        """Where the caller's operations run: the whole ledger for an admin, else a view of
        the ledger bound to the caller's user."""
        return self.ledger if self.is_admin else self.ledger.as_user(self.user.id)

    def user_id(self, given: uuid.UUID | None) -> uuid.UUID:
        """The user an operation is for: ``given``, else the caller's own. A non-admin naming
        another user gets a 404 (``user ... not found``), as if that user did not exist."""
        if given is None or given == self.user.id:
            return self.user.id
        if not self.is_admin:
            raise NotFoundError("user", given)
        return given


def not_self(caller: Principal, user_id: uuid.UUID, action: str) -> None:
    """An admin may not delete, erase or demote their own user (the store would be left
    without the admin who acted): 409."""
    if user_id == caller.user.id:
        raise ApiError(
            409, "conflict", f"an admin key cannot {action} its own user", field="user_id"
        )


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


async def audit(
    ledger: AsyncLedger,
    event_type: str,
    *,
    user_id: uuid.UUID | None,
    category: Any = "security",
    severity: Any = "info",
    metadata: dict[str, Any] | None = None,
) -> None:
    """Record a security event; a failure to record is logged, not raised (the request's own
    outcome stands)."""
    try:
        await ledger.audit.record(
            event_type, user_id=user_id, category=category, severity=severity, metadata=metadata
        )
    except ChatledgerError as exc:
        logger.error("could not record audit event %s: %s", event_type, exc)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller of an authenticated route; 401 for a missing, unknown, malformed, revoked or
    expired key (one answer for all). A presented key that fails is an ``auth.failed``
    security event (with the key's public prefix when it has one, never the secret)."""
    ledger = ledger_of(request)
    if credentials is None:
        raise ApiError(401, "unauthorized", "an API key is required", headers=_BEARER)
    secret = credentials.credentials
    try:
        key = await ledger.api_keys.verify(secret)
        user = await ledger.users.get(key.user_id)
    except (AuthenticationError, NotFoundError):
        await audit(
            ledger,
            "auth.failed",
            user_id=None,
            severity="warning",
            metadata={
                "key_prefix": _api_keys.parse(secret),
                "method": request.method,
                "path": request.url.path[:200].replace("\x00", ""),
                "client": _client(request),
            },
        )
        raise ApiError(401, "unauthorized", "invalid API key", headers=_BEARER) from None
    return Principal(key=key, user=user, ledger=ledger)


Caller = Annotated[Principal, Depends(authenticate)]


async def authenticate_first(request: Request) -> None:
    """Raise the 401 of a request to an operation that needs a key and has none that
    verifies. Called before any input error is answered, so that a caller without a valid
    key learns nothing about the operation's input rules (401 before 422 on every route)."""
    if OperationIndex.of(request.app).secured(request.method, request.url.path):
        await authenticate(request, await bearer(request))


async def require_admin(caller: Caller) -> Principal:
    """The caller of an admin route: 403 unless the key's user has the admin role (checked
    on every call). Admin routes are listed in the OpenAPI document, so a 403 reveals nothing
    a 404 would hide; object-level denials stay 404."""
    if not caller.is_admin:
        raise ApiError(403, "forbidden", "this route needs an admin key")
    return caller


Admin = Annotated[Principal, Depends(require_admin)]
