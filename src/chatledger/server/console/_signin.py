"""Sign-in (an API key exchanged for a session cookie) and sign-out.

A failed sign-in is an ``auth.failed`` security event, recorded like a failed API
authentication (the key's public prefix when it has one, never the secret).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ..._ops import api_keys as _api_keys
from ...errors import AuthenticationError, NotFoundError
from ..auth import audit, ledger_of
from ._base import Console, page
from ._base import View as View
from ._session import Forbidden, check_login_token, form_of, login_token, set_login_cookie

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _next(target: str | None) -> str:
    """Where to go after signing in: a console path only (never another host)."""
    if target and target.startswith("/console/") and not target.startswith("/console//"):
        return target.replace("\\", "")
    return "/console/conversations"


def _form(request: Request, status: int = 200, error: str | None = None) -> Response:
    token = login_token(request)
    response = Console.of(request).render(
        request,
        "sign_in.html",
        {
            "view": None,
            "error": error,
            "csrf_token": token,
            "next": _next(request.query_params.get("next")),
        },
        status,
    )
    set_login_cookie(request, response, token)
    return response


@router.get("/console/sign-in")
async def sign_in_form(request: Request) -> Response:
    """The sign-in form."""
    return _form(request)


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the key; on success start a session and go to the page asked for."""
    console = Console.of(request)
    try:
        form = await form_of(request)
        check_login_token(request, form)
    except Forbidden as exc:
        return console.render(
            request, "error.html", {"view": None, "title": "Refused", "message": str(exc)}, 403
        )
    secret = form.get("api_key", "").strip()
    ledger = ledger_of(request)
    try:
        key = await ledger.api_keys.verify(secret)
        await ledger.users.get(key.user_id)
    except (AuthenticationError, NotFoundError):
        await audit(
            ledger,
            "auth.failed",
            user_id=None,
            severity="warning",
            metadata={
                "key_prefix": _api_keys.parse(secret),
                "method": request.method,
                "path": request.url.path,
                "client": request.client.host if request.client is not None else None,
                "via": "console",
            },
        )
        return _form(request, 401, "That API key is not valid.")
    await audit(ledger, "console.sign_in", user_id=key.user_id, metadata={"key_id": str(key.id)})
    response = RedirectResponse(_next(form.get("next")), status_code=303)
    console.keys.start(request, response, key)
    return response


@router.post("/console/sign-out")
@page
async def sign_out(request: Request, view: View) -> Response:
    """End the session (the cookie is removed; the key stays valid for the API)."""
    response = RedirectResponse("/console/sign-in", status_code=303)
    Console.of(request).keys.end(response)
    return response
