"""Console sessions: an API key typed once is exchanged for a signed session cookie.

The cookie names the key (its id), an expiry and a random nonce, signed with HMAC-SHA256 under
the server's console secret; it never holds the key's secret. Every request checks the
signature and the expiry, then reads the key and its user again: a revoked or expired key, a
deleted user or a changed role takes effect on the next page, exactly as for the API.

CSRF: every state-changing form carries a token derived from the session cookie (an HMAC of it
under the same secret) and is refused without it; the sign-in form, which has no session yet,
carries a random token that must equal its own SameSite=Strict cookie (double submit). The
cookies are HttpOnly, SameSite=Strict and Secure when the request came over TLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Final
from urllib.parse import parse_qs

from fastapi import Request
from starlette.responses import Response

from ...errors import NotFoundError
from ...records import ApiKey
from ..auth import Principal, ledger_of

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "SECRET_ENV",
    "SESSION_TTL",
    "Forbidden",
    "SessionKeys",
    "check_login_token",
    "form_of",
    "login_token",
    "set_login_cookie",
]

COOKIE: Final = "chatledger_console"
LOGIN_COOKIE: Final = "chatledger_console_login"
#: How long a session lasts after sign-in.
SESSION_TTL: Final = timedelta(hours=8)
#: The environment variable that holds the console secret (give every worker the same one).
SECRET_ENV: Final = "CHATLEDGER_CONSOLE_SECRET"
#: The largest form a console page accepts.
MAX_FORM_BYTES: Final = 65_536


class Forbidden(Exception):
    """A state-changing request without a valid CSRF token or from another origin."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """Signs and checks session cookies and CSRF tokens with one server secret. Without
    ``CHATLEDGER_CONSOLE_SECRET`` the secret is random per process: sessions end at restart
    and do not cross ``--workers`` processes."""

    secret: bytes

    @classmethod
    def from_environment(cls) -> SessionKeys:
        """The secret of ``CHATLEDGER_CONSOLE_SECRET`` (any text, hashed), else a random one."""
        given = os.environ.get(SECRET_ENV)
        if given:
            return cls(hashlib.sha256(given.encode()).digest())
        return cls(secrets.token_bytes(32))

    def _sign(self, purpose: str, payload: str) -> str:
        digest = hmac.new(self.secret, f"{purpose}|{payload}".encode(), hashlib.sha256)
        return _b64(digest.digest())

    def issue(self, key: ApiKey, now: float | None = None) -> str:
        """A session cookie value for ``key``, expiring after :data:`SESSION_TTL` (or with the
        key, if that comes first)."""
        expires = (now or time.time()) + SESSION_TTL.total_seconds()
        if key.expires_at is not None:
            expires = min(expires, key.expires_at.timestamp())
        payload = f"{key.id.hex}.{int(expires)}.{secrets.token_hex(8)}"
        return f"{payload}.{self._sign('session', payload)}"

    def key_id(self, value: str | None, now: float | None = None) -> uuid.UUID | None:
        """The key a cookie value names, if its signature holds and it has not expired."""
        if not value or len(value) > 200:
            return None
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign("session", payload)):
            return None
        key_hex, expires, _nonce = payload.split(".")
        if int(expires) <= (now or time.time()):
            return None
        return uuid.UUID(hex=key_hex)

    def csrf_token(self, session: str) -> str:
        """The CSRF token of the forms of a session."""
        return self._sign("csrf", session)

    async def principal(self, request: Request) -> Principal | None:
        """The signed-in caller of a request: the cookie's key, still valid, and its user
        read now; ``None`` when signed out, expired, revoked or deleted."""
        key_id = self.key_id(request.cookies.get(COOKIE))
        if key_id is None:
            return None
        ledger = ledger_of(request)
        try:
            key = await ledger.api_keys.get(key_id)
            if key.revoked_at is not None:
                return None
            if key.expires_at is not None and key.expires_at.timestamp() <= time.time():
                return None
            user = await ledger.users.get(key.user_id)
        except NotFoundError:
            return None
        return Principal(key=key, user=user, ledger=ledger)

    def check_csrf(self, request: Request, form: dict[str, str]) -> None:
        """Refuse a state-changing request from another origin or without the session's
        CSRF token."""
        _same_origin(request)
        session = request.cookies.get(COOKIE, "")
        given = form.get("csrf_token", "")
        if not session or not hmac.compare_digest(given, self.csrf_token(session)):
            raise Forbidden("the form's CSRF token is missing or wrong")

    def start(self, request: Request, response: Response, key: ApiKey) -> None:
        """Set the session cookie of ``key`` on ``response`` and drop the sign-in cookie."""
        response.set_cookie(
            COOKIE,
            self.issue(key),
            max_age=int(SESSION_TTL.total_seconds()),
            path="/console",
            httponly=True,
            secure=_secure(request),
            samesite="strict",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/console")

    @staticmethod
    def end(response: Response) -> None:
        """Remove the session cookie."""
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")


def login_token(request: Request) -> str:
    """The sign-in form's CSRF token: the browser's sign-in cookie, else a new random one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def set_login_cookie(request: Request, response: Response, token: str) -> None:
    """Set the sign-in form's token as its cookie (double submit)."""
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/console",
        httponly=True,
        secure=_secure(request),
        samesite="strict",
    )


def check_login_token(request: Request, form: dict[str, str]) -> None:
    """Refuse a sign-in from another origin or whose token does not match its cookie."""
    _same_origin(request)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(form.get("csrf_token", ""), cookie):
        raise Forbidden("the sign-in form's CSRF token is missing or wrong")


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is None:  # not a browser's cross-site form: those always send Origin
        return
    expected = f"{request.url.scheme}://{request.url.netloc}"
    if origin != expected:
        raise Forbidden(f"a form posted from {origin[:100]!r} is refused")


async def form_of(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST (the first value of each field; at most 64 KiB)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("the form is too large")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Forbidden("the form cannot be read") from exc
    return {name: values[0] for name, values in fields.items()}
