"""API keys: a key's user manages their own keys; admin keys manage anyone's.

The library's key registry is not scoped to a user, so the scoping is here, in one place
(:func:`_visible`): a key of another user is a 404 for a non-admin, like a missing key.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from ...errors import NotFoundError
from ...records import ApiKey, CreatedApiKey
from ..auth import Caller, Principal, audit
from ..errors import ERROR_RESPONSES
from ..models import ApiKeyCreate, PageOut, page_out
from ._params import After, Before, Limit, Order

__all__ = ["router"]

router = APIRouter(tags=["api keys"], responses={409: ERROR_RESPONSES[409]})


async def _visible(caller: Principal, key_id: uuid.UUID) -> ApiKey:
    key = await caller.ledger.api_keys.get(key_id)
    if key.user_id != caller.user.id and not caller.is_admin:
        raise NotFoundError("api key", key_id)
    return key


@router.post("/api-keys", status_code=201)
async def create_api_key(body: ApiKeyCreate, caller: Caller) -> CreatedApiKey:
    """A new key of the caller (an admin key may give ``user_id``). The ``secret`` is in this
    response only: it is stored nowhere."""
    owner = caller.user_id(body.user_id)
    created = await caller.ledger.api_keys.create(owner, name=body.name, expires_at=body.expires_at)
    await audit(
        caller.ledger,
        "api_key.created",
        user_id=owner,
        metadata={
            "key_id": str(created.key.id),
            "prefix": created.key.prefix,
            "by_user_id": str(caller.user.id),
        },
    )
    return created


@router.get("/api-keys")
async def list_api_keys(
    caller: Caller,
    user_id: uuid.UUID | None = None,
    include_revoked: bool = False,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "asc",
) -> PageOut[ApiKey]:
    """A page of the caller's keys, oldest first (an admin key may give ``user_id``)."""
    page = await caller.ledger.api_keys.page(
        user_id=caller.user_id(user_id),
        include_revoked=include_revoked,
        limit=limit,
        after=after,
        before=before,
        order=order,
    )
    return PageOut[ApiKey].model_validate(page_out(page))


@router.get("/api-keys/{key_id}")
async def get_api_key(key_id: uuid.UUID, caller: Caller) -> ApiKey:
    """One key (never its secret)."""
    return await _visible(caller, key_id)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: uuid.UUID, caller: Caller) -> ApiKey:
    """Revoke a key: it stops verifying at once. Revoking it again changes nothing."""
    key = await _visible(caller, key_id)
    revoked = await caller.ledger.api_keys.revoke(key.id)
    if key.revoked_at is None:
        await audit(
            caller.ledger,
            "api_key.revoked",
            user_id=key.user_id,
            metadata={
                "key_id": str(key.id),
                "prefix": key.prefix,
                "by_user_id": str(caller.user.id),
            },
        )
    return revoked
