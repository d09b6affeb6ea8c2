"""The FastAPI application: :func:`create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.engine import URL

from .. import __version__
from .._async._idempotency import AsyncIdempotentRequests
from .._async.ledger import AsyncLedger
from ..config import Config
from ..errors import ChatledgerError
from . import console
from .auth import authenticate_first
from .consistency import HEADER, Consistency
from .errors import ERROR_RESPONSES, BodyLimit, RequestId, install_error_handlers
from .routes import ROUTERS, health
from .routes._params import reject_unknown_query
from .settings import ServerSettings

__all__ = ["create_app"]

logger = logging.getLogger("chatledger.server")

DESCRIPTION = """\
chatledger's store over HTTP: users, conversations, messages with their usage and cost,
feedback, citations, token balances, surveys, visitors, knowledge chunks, API keys and the
audit log; replies streamed into the store while they are generated, followed as Server-Sent
Events.

Authenticate with an API key: `Authorization: Bearer clk_...`. A key acts as its user and sees
only that user's data (another user's object is a 404, exactly like a missing one); a key of a
user whose role is `admin` acts across users and may call the admin routes (403 otherwise).
Every error is `{"error": {"type", "message", "field", "limit", "request_id"}}`.
"""


async def _purge_forever(ledger: AsyncLedger, settings: ServerSettings) -> None:
    claims = AsyncIdempotentRequests(ledger)
    while True:
        await asyncio.sleep(settings.purge_interval)
        try:
            removed = await claims.purge(
                running_timeout=settings.idempotency_running_timeout,
                ttl=settings.idempotency_ttl,
            )
        except ChatledgerError as exc:
            logger.warning("could not purge expired idempotency keys: %s", exc)
        else:
            if removed:
                logger.info("purged %d expired idempotency keys", removed)


async def _sweep_forever(ledger: AsyncLedger, settings: ServerSettings) -> None:
    """Close streamed replies whose writer stopped (every process may sweep: each stream is
    closed once)."""
    while True:
        await asyncio.sleep(settings.sweep_interval)
        try:
            closed = await ledger.streams.sweep()
        except ChatledgerError as exc:
            logger.warning("could not sweep abandoned streams: %s", exc)
        else:
            if closed:
                logger.info("closed %d streams whose writer stopped", len(closed))


def _parameters_without_null(document: dict[str, Any]) -> dict[str, Any]:
    """Drop ``null`` from the schema of every optional parameter. FastAPI writes an optional
    ``str | None`` parameter as ``anyOf: [string, null]``, but a query or header parameter is
    a string or absent (``required: false``): a client reading ``null`` would send the text
    ``null`` (a ``Last-Event-ID: null`` is then refused by the pattern)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                kept = [s for s in schema.get("anyOf", []) if s != {"type": "null"}]
                if len(kept) == 1 and len(schema["anyOf"]) == 2:
                    del schema["anyOf"]
                    schema.update(kept[0])
    return document


def _document_parameters(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _parameters_without_null(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    target: AsyncLedger | Config | str | URL | None = None,
    *,
    settings: ServerSettings | None = None,
) -> FastAPI:
    """The HTTP API over a store.

    ``target`` is an :class:`~chatledger.AsyncLedger` (opened at start-up, left open at
    shutdown: the caller owns it), a :class:`~chatledger.Config` or a database URL (a ledger is
    made, opened at start-up and closed at shutdown), or ``None``: ``Config.load()``, the
    embedded SQLite database by default. The app does no I/O until it starts; run it with
    its lifespan (uvicorn, ``TestClient`` as a context manager), which opens the store.
    """
    settings = settings or ServerSettings()
    given: AsyncLedger | None = None
    config: Config | None = None
    if isinstance(target, AsyncLedger):
        given = target
    elif isinstance(target, Config):
        config = target
    else:
        config = Config.load(target)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # A ledger of its own per start (a closed ledger cannot reopen), or the caller's.
        ledger = given if given is not None else AsyncLedger(config=config)
        await ledger.open()
        app.state.ledger = ledger
        background = []
        if settings.purge_interval > 0:
            background.append(asyncio.create_task(_purge_forever(ledger, settings)))
        if settings.sweep_interval > 0:
            background.append(asyncio.create_task(_sweep_forever(ledger, settings)))
        try:
            yield {}
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if given is None:
                await ledger.close()

    app = FastAPI(
        title="chatledger",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by the console package
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],
        responses={
            status: ERROR_RESPONSES[status] for status in (400, 401, 404, 405, 413, 422, 500, 503)
        },
    )
    app.state.settings = settings
    install_error_handlers(app, settings.retry_after, authenticate_first)
    app.include_router(health.router)
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    console.mount(app)
    _document_parameters(app)
    # Added innermost first: CORS (when configured) outermost, then the request id, then the
    # consistency token, then the body limit, so that a 413 carries the id and the CORS
    # headers.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Consistency)
    app.add_middleware(RequestId)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Last-Event-ID",
                HEADER,
            ],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", "Retry-After", HEADER],
        )
    return app
