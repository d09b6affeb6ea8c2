"""The console: web pages for people, served by ``chatledger serve`` at ``/console``.

Sign in with an API key (exchanged for a session cookie); read conversations, review feedback,
watch usage and, as an admin, the audit log, keys and users. Pages are rendered on the server
(Jinja2); the only script is the package's own ``console.js`` plus the vendored Chart.js, under
a strict Content-Security-Policy. Every asset ships in the package: nothing loads from another
host. :func:`mount` adds the console, the home page and the offline API docs to an app.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from . import _admin, _conversations, _insights, _search, _signin
from ._base import Console
from ._session import SessionKeys
from .apidocs import install_docs

__all__ = ["mount"]


async def _home(request: Request) -> Response:
    return Console.of(request).render(request, "home.html", {"view": None})


async def _console(request: Request) -> Response:
    return RedirectResponse("/console/conversations", status_code=303)


def mount(app: FastAPI, keys: SessionKeys | None = None) -> None:
    """Add the console (``/console``), its static files, the home page (``/``) and the offline
    ``/docs`` and ``/redoc`` to ``app``. ``keys`` sign the sessions (default: the secret of
    ``CHATLEDGER_CONSOLE_SECRET``, else a random one per process)."""
    app.state.console = Console(keys or SessionKeys.from_environment())
    for module in (_signin, _conversations, _search, _insights, _admin):
        app.include_router(module.router)
    static = StaticFiles(packages=[("chatledger.server.console", "static")])
    app.mount("/console/static", static, name="console-static")
    app.add_route("/", _home, include_in_schema=False)
    app.add_route("/console", _console, include_in_schema=False)
    install_docs(app)
