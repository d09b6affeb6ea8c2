"""Users: the caller (``/me``) and, for admin keys, every user."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from ...records import User
from ..auth import ADMIN_ROLE, Admin, Caller, audit, not_self
from ..errors import ERROR_RESPONSES
from ..models import PageOut, UserCreate, UserUpdate, page_out
from ._params import After, Before, Limit, Order

__all__ = ["router"]

router = APIRouter(tags=["users"], responses={403: ERROR_RESPONSES[403], 409: ERROR_RESPONSES[409]})


@router.get("/me")
async def get_me(caller: Caller) -> User:
    """The caller's user."""
    return caller.user


@router.post("/users", status_code=201)
async def create_user(body: UserCreate, caller: Admin) -> User:
    """Create a user (admin). A taken external_id, email or username is a 409 naming it."""
    user = await caller.ledger.users.create(**body.model_dump())
    await audit(
        caller.ledger,
        "admin.user_created",
        user_id=caller.user.id,
        metadata={"target_user_id": str(user.id), "role": user.role},
    )
    return user


@router.get("/users")
async def list_users(
    caller: Admin,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "asc",
) -> PageOut[User]:
    """A page of users in creation order (admin)."""
    page = await caller.ledger.users.list(limit=limit, after=after, before=before, order=order)
    return PageOut[User].model_validate(page_out(page))


@router.get("/users/{user_id}")
async def get_user(user_id: uuid.UUID, caller: Admin) -> User:
    """One user (admin)."""
    return await caller.ledger.users.get(user_id)


@router.patch("/users/{user_id}")
async def update_user(user_id: uuid.UUID, body: UserUpdate, caller: Admin) -> User:
    """Change a user's fields (admin); a field left out is kept, ``null`` clears it. A
    change of ``role`` is audited."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "role" in changes and changes["role"] != ADMIN_ROLE:
        not_self(caller, user_id, "demote")
    user = await caller.ledger.users.update(user_id, **changes)
    await audit(
        caller.ledger,
        "admin.user_updated",
        user_id=caller.user.id,
        metadata={"target_user_id": str(user_id), "fields": sorted(changes)},
    )
    return user


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: uuid.UUID, caller: Admin) -> Response:
    """Delete a user and everything the user owns (admin; not the caller's own user)."""
    not_self(caller, user_id, "delete")
    await caller.ledger.users.delete(user_id)
    await audit(
        caller.ledger,
        "admin.user_deleted",
        user_id=caller.user.id,
        metadata={"target_user_id": str(user_id)},
    )
    return Response(status_code=204)
