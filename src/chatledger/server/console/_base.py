"""What every console page shares: the signed-in viewer, query parsing, the security headers
and the error pages.

A page handler is ``async def page(request, view) -> Response`` decorated with :func:`page` (or
:func:`admin_page`): the decorator signs the viewer in from the cookie (or redirects to the
sign-in page), checks the CSRF token of a POST, and turns chatledger's errors into HTML error
pages (another user's object is a 404, exactly like a missing one).
"""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..._async.ledger import AsyncLedger, AsyncUserScope
from ...errors import ChatledgerError, NotFoundError, ValidationError
from ...records import User
from ..auth import Principal
from ._render import FRAGMENTS_SLOT, environment, split_at_fragments
from ._session import COOKIE, Forbidden, SessionKeys, form_of

__all__ = [
    "SECURITY_HEADERS",
    "BadQuery",
    "Console",
    "View",
    "admin_page",
    "page",
]

logger = logging.getLogger("chatledger.server.console")

#: Sent with every console page: no inline script or style, nothing from another host, never
#: framed.
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class BadQuery(Exception):
    """A query parameter of a console page that cannot be read."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")


class Console:
    """The console's state, kept in ``app.state.console``: templates and session keys."""

    def __init__(self, keys: SessionKeys) -> None:
        self.keys = keys
        self.templates = environment()

    @staticmethod
    def of(request: Request) -> Console:
        """The console of the app serving ``request``."""
        console: Console = request.app.state.console
        return console

    def render(
        self, request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        """A page from ``template`` with the security headers."""
        html = self.templates.get_template(template).render(request=request, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def render_with_fragments(
        self, request: Request, template: str, context: dict[str, Any], fragments: bytes
    ) -> HTMLResponse:
        """A page from ``template`` whose ``fragments`` (cached, encoded HTML: see
        :func:`.fragments_bytes`) go where the template shows ``fragments``: they are not
        copied through the template, escaped or scanned again."""
        html = self.templates.get_template(template).render(
            request=request, fragments=FRAGMENTS_SLOT, **context
        )
        head, tail = split_at_fragments(html)
        return HTMLResponse(b"".join((head, fragments, tail)), headers=SECURITY_HEADERS)


@dataclass(slots=True)
class View:
    """The signed-in viewer of a page and what its templates need."""

    request: Request
    caller: Principal
    csrf_token: str
    form: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> bool:
        """Whether the viewer is an admin (sees everyone's data and the admin pages)."""
        return self.caller.is_admin

    @property
    def store(self) -> AsyncLedger | AsyncUserScope:
        """The whole ledger for an admin, the viewer's own scope otherwise."""
        return self.caller.store

    @property
    def ledger(self) -> AsyncLedger:
        """The whole ledger (admin pages only)."""
        return self.caller.ledger

    @property
    def owner(self) -> uuid.UUID | None:
        """``None`` for an admin (every user), else the viewer's id: reports' scope."""
        return None if self.admin else self.caller.user.id

    async def user(self, user_id: uuid.UUID) -> User:
        """A user the viewer may see: themself, or anyone for an admin (else a 404)."""
        if user_id == self.caller.user.id:
            return self.caller.user
        if not self.admin:
            raise NotFoundError("user", user_id)
        return await self.ledger.users.get(user_id)

    def query(self, name: str, max_length: int = 200) -> str | None:
        """A query parameter, ``None`` when absent or empty."""
        value = self.request.query_params.get(name)
        if value is None or value == "":
            return None
        if len(value) > max_length or "\x00" in value:
            raise BadQuery(name, f"must be at most {max_length} characters")
        return value

    def query_uuid(self, name: str) -> uuid.UUID | None:
        """A query parameter that is an id."""
        value = self.query(name, 64)
        if value is None:
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            raise BadQuery(name, "is not an id") from None

    def query_day(self, name: str) -> datetime | None:
        """A ``YYYY-MM-DD`` query parameter as the start of that UTC day."""
        value = self.query(name, 10)
        if value is None:
            return None
        try:
            return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise BadQuery(name, "is not a date (YYYY-MM-DD)") from None

    def query_window(
        self, default_days: int | None = None
    ) -> tuple[datetime | None, datetime | None]:
        """``since``/``until`` days; ``until`` is inclusive on the page, so its next midnight
        bounds the query. Without ``since``, the last ``default_days`` days (when given)."""
        since = self.query_day("since")
        until = self.query_day("until")
        if (
            since is None
            and default_days is not None
            and self.request.query_params.get("since") is None
        ):
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            since = today - timedelta(days=default_days - 1)
        return since, None if until is None else until + timedelta(days=1)

    def query_choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        """A query parameter that must be one of ``choices``."""
        value = self.query(name, 40)
        if value is not None and value not in choices:
            raise BadQuery(name, f"must be one of {', '.join(choices)}")
        return value

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        """An integer query parameter from ``low`` to ``high``."""
        value = self.query(name, 12)
        if value is None:
            return default
        if not value.isdigit() or not low <= int(value) <= high:
            raise BadQuery(name, f"must be an integer from {low} to {high}")
        return int(value)

    def url(self, path: str, **params: Any) -> str:
        """A console URL with the given query parameters (``None`` ones left out)."""
        kept = {name: str(value) for name, value in params.items() if value is not None}
        return path + ("?" + urlencode(kept) if kept else "")

    def with_query(self, **changes: Any) -> str:
        """This page's URL with some query parameters changed (``None`` removes one)."""
        params: dict[str, Any] = dict(self.request.query_params)
        params.update(changes)
        return self.url(self.request.url.path, **params)

    def render(self, template: str, *, http_status: int = 200, **context: Any) -> HTMLResponse:
        """Render a page for this viewer."""
        return Console.of(self.request).render(
            self.request, template, {"view": self, **context}, http_status
        )


Handler = Callable[[Request, View], Awaitable[Response]]
F = TypeVar("F", bound=Handler)


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return Console.of(request).render(
        request, "error.html", {"view": None, "title": title, "message": message}, status
    )


def _sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/sign-in?next={quote(target, safe='')}", status_code=303)


def _wrap(handler: Handler, *, admin: bool) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        console = Console.of(request)
        try:
            caller = await console.keys.principal(request)
            if caller is None:
                if request.method != "GET":
                    raise Forbidden("the session has ended: sign in again")
                return _sign_in_redirect(request)
            session = request.cookies.get(COOKIE, "")
            view = View(request, caller, console.keys.csrf_token(session))
            if request.method == "POST":
                view.form = await form_of(request)
                console.keys.check_csrf(request, view.form)
            if admin and not caller.is_admin:
                return _error_page(request, 403, "Admins only", "This page needs an admin key.")
            return await handler(request, view)
        except Forbidden as exc:
            return _error_page(request, 403, "Refused", str(exc))
        except NotFoundError as exc:
            return _error_page(request, 404, "Not found", str(exc))
        except (ValidationError, BadQuery) as exc:
            return _error_page(request, 400, "Bad request", str(exc))
        except ChatledgerError as exc:
            logger.warning("console page %s failed: %s", request.url.path, exc)
            return _error_page(request, 503, "Unavailable", "The store could not answer: retry.")

    # FastAPI reads the handler's signature: the page takes the request only.
    run.__signature__ = _REQUEST_ONLY  # type: ignore[attr-defined]
    return run


async def _request_only(request: Request) -> None:  # pragma: no cover - signature source
    """Only its signature is used."""


_REQUEST_ONLY = inspect.signature(_request_only)


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page for any signed-in viewer."""
    return _wrap(handler, admin=False)


def admin_page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page for admins (403 for others)."""
    return _wrap(handler, admin=True)
