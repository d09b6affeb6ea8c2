"""Admin pages: the audit log and its chain, API keys and users (export and erase)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ..._schema import AUDIT_CATEGORIES, AUDIT_SEVERITIES
from ...errors import ValidationError
from ..auth import audit as record
from ._base import Console, View, admin_page
from ._render import Fragments

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

EVENTS_PER_PAGE: Final = 50


@router.get("/console/audit")
@admin_page
async def audit(request: Request, view: View) -> Response:
    """The audit log, newest first, filtered; and the chain's verify result on demand."""
    since, until = view.query_window()
    category = view.query_choice("category", tuple(AUDIT_CATEGORIES))
    severity = view.query_choice("severity", tuple(AUDIT_SEVERITIES))
    listing = await view.ledger.audit.list(
        user_id=view.query_uuid("user"),
        event_type=view.query("event_type", 100),
        category=category,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        since=since,
        until=until,
        limit=EVENTS_PER_PAGE,
        after=view.query("after", 512),
        before=view.query("before", 512),
    )
    verification = None
    if view.query("verify", 1) == "1":
        verification = await view.ledger.audit.verify()
    return view.render(
        "audit.html",
        page=listing,
        verification=verification,
        categories=AUDIT_CATEGORIES,
        severities=AUDIT_SEVERITIES,
    )


@router.get("/console/keys")
@admin_page
async def keys(request: Request, view: View) -> Response:
    """Every API key (revoked ones too), and the form that creates one."""
    listing = await view.ledger.api_keys.list(include_revoked=True)
    users = (await view.ledger.users.list(limit=200)).items
    return view.render("keys.html", keys=listing, users=users, created=None)


@router.post("/console/keys")
@admin_page
async def create_key(request: Request, view: View) -> Response:
    """Create a key; its secret is on this response only."""
    user_id = view.form.get("user_id", "")
    name = view.form.get("name") or None
    created = await view.ledger.api_keys.create(user_id, name=name)
    await record(
        view.ledger,
        "api_key.created",
        user_id=created.key.user_id,
        metadata={
            "key_id": str(created.key.id),
            "prefix": created.key.prefix,
            "by_user_id": str(view.caller.user.id),
        },
    )
    listing = await view.ledger.api_keys.list(include_revoked=True)
    users = (await view.ledger.users.list(limit=200)).items
    return view.render("keys.html", keys=listing, users=users, created=created)


@router.post("/console/keys/{key_id}/revoke")
@admin_page
async def revoke_key(request: Request, view: View) -> Response:
    """Revoke a key (its sessions end with it)."""
    key = await view.ledger.api_keys.get(request.path_params["key_id"])
    await view.ledger.api_keys.revoke(key.id)
    if key.revoked_at is None:
        await record(
            view.ledger,
            "api_key.revoked",
            user_id=key.user_id,
            metadata={
                "key_id": str(key.id),
                "prefix": key.prefix,
                "by_user_id": str(view.caller.user.id),
            },
        )
    return RedirectResponse("/console/keys", status_code=303)


@router.get("/console/users")
@admin_page
async def users(request: Request, view: View) -> Response:
    """Users in creation order, with paging."""
    listing = await view.ledger.users.list(
        limit=50, after=view.query("after", 512), before=view.query("before", 512)
    )
    return view.render("users.html", page=listing)


@router.get("/console/users/{user_id}")
@admin_page
async def user(request: Request, view: View) -> Response:
    """A user: profile, keys, balance, and the export and erase actions. Erasing asks for a
    confirmation that names every row it will delete."""
    found = await view.ledger.users.get(request.path_params["user_id"])
    preview = await view.ledger.users.preview_erase(found.id)
    return view.render(
        "user.html",
        user=found,
        keys=await view.ledger.api_keys.list(user_id=found.id, include_revoked=True),
        balance=await view.ledger.tokens.balance(found.id),
        conversations=await view.ledger.conversations.count(found.id),
        preview=preview,
        erased=None,
    )


@router.post("/console/users/{user_id}/export")
@admin_page
async def export(request: Request, view: View) -> Response:
    """Everything stored about the user, as a JSON download."""
    found = await view.ledger.users.get(request.path_params["user_id"])
    document = await view.ledger.users.export(found.id)
    await record(
        view.ledger,
        "admin.user_exported",
        user_id=view.caller.user.id,
        category="compliance",
        metadata={"target_user_id": str(found.id)},
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="user-{found.id}-{stamp}.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/console/users/{user_id}/erase")
@admin_page
async def erase(request: Request, view: View) -> Response:
    """Erase the user for good, once the form repeats the user's id."""
    found = await view.ledger.users.get(request.path_params["user_id"])
    if view.form.get("confirm", "").strip() != str(found.id):
        raise ValidationError("confirm", "type the user's id to confirm the erasure")
    if found.id == view.caller.user.id:
        raise ValidationError("user_id", "an admin cannot erase their own user")
    report = await view.ledger.users.erase(found.id)
    fragments: Fragments = Console.of(request).templates.globals["fragments"]  # type: ignore[assignment]
    fragments.clear()
    await record(
        view.ledger,
        "admin.user_erased",
        user_id=view.caller.user.id,
        category="compliance",
        severity="warning",
        metadata={"target_user_id": str(found.id), "deleted": report.deleted},
    )
    return view.render("erased.html", report=report)
