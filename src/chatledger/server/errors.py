"""One error envelope for every error the HTTP API returns.

``{"error": {"type": ..., "message": ..., "field": ..., "limit": ..., "request_id": ...}}``:
chatledger's exceptions, FastAPI's request validation, unknown routes and methods, oversized
bodies and unexpected failures all answer in this shape. A response never carries a stack trace
or a driver message: an unexpected exception is logged with its traceback under the request id,
and the client gets a 500 naming only that id.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    AuthenticationError,
    ChatledgerError,
    ConfigurationError,
    ConflictError,
    InsufficientBalanceError,
    NotFoundError,
    NotPrimaryError,
    OutcomeUnknownError,
    SchemaOutOfDateError,
    TransientError,
    ValidationError,
)
from .operations import OperationIndex

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "BodyLimit",
    "ErrorBody",
    "ErrorEnvelope",
    "RequestId",
    "install_error_handlers",
]

logger = logging.getLogger("chatledger.server")


class ErrorBody(BaseModel):
    """What went wrong."""

    model_config = ConfigDict(extra="forbid")

    #: A stable, machine-readable kind (``not_found``, ``invalid_request``, ...).
    type: str
    #: A human-readable sentence; never a driver message or a traceback.
    message: str
    #: The request field at fault, when there is one, named as the library names it:
    #: ``title``, ``metadata`` (a JSON document is one field), ``chunks[3].content``.
    field: str | None = None
    #: The limit, in one of two shapes (the same as :attr:`chatledger.ValidationError.limit`):
    #: a number (the bound that was crossed: a length, a size, a maximum or minimum) or a list
    #: of strings (the values allowed); ``null`` when no limit applies.
    limit: int | float | list[str] | None = None
    #: The id of the request (also in the ``X-Request-ID`` header); quote it when reporting.
    request_id: str | None = None


class ErrorEnvelope(BaseModel):
    """Every error response of the API."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorBody


class ApiError(Exception):
    """An error the API answers with ``status`` and the envelope."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        field: str | None = None,
        limit: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.field = field
        self.limit = limit
        self.headers = headers or {}


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description}


#: The error responses every route may give, for the OpenAPI document.
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: _described("Malformed request (for example a body that is not JSON)."),
    401: _described("Missing, unknown, revoked or expired API key (one answer for all)."),
    403: _described("An admin route called with a key whose user is not an admin."),
    404: _described("No such object, or not the caller's (the same answer for both)."),
    405: _described("Method not allowed on this path."),
    409: _described(
        "Conflict: a taken value, a state that forbids the change, a balance too "
        "small, an Idempotency-Key whose first request is still running, or (`not_primary`) "
        "a write on a LiteFS replica node: the `fly-replay: instance=<primary>` header "
        "replays it on the primary."
    ),
    413: _described("The request body exceeds the server's limit."),
    422: _described("Invalid input: the field and the limit are named; nothing was written."),
    500: _described("Unexpected failure; the request id is in the body and the server log."),
    503: _described("The database is unavailable or busy; retry after Retry-After seconds."),
}


def _limit(value: Any) -> int | float | list[str] | None:
    """A limit in the envelope's shape: a number, a list of allowed strings, or ``None``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list | tuple | frozenset | set) and all(
        isinstance(item, str) for item in value
    ):
        return sorted(value)
    return None


def from_library(exc: ChatledgerError, retry_after: int) -> ApiError:
    """The API error for one of chatledger's exceptions."""
    if isinstance(exc, NotFoundError):
        return ApiError(404, "not_found", str(exc), field=exc.field)
    if isinstance(exc, ValidationError):
        return ApiError(422, "invalid_request", str(exc), field=exc.field, limit=_limit(exc.limit))
    if isinstance(exc, InsufficientBalanceError):
        return ApiError(409, "insufficient_balance", str(exc), field=exc.field)
    if isinstance(exc, ConflictError):
        return ApiError(409, "conflict", str(exc), field=exc.field)
    if isinstance(exc, NotPrimaryError):
        if exc.primary is None:
            return ApiError(
                503,
                "not_primary",
                f"{exc}; retry",
                headers={"Retry-After": str(retry_after)},
            )
        # LiteFS's proxy and Fly's edge replay a response with this header on the primary.
        return ApiError(
            409, "not_primary", str(exc), headers={"fly-replay": f"instance={exc.primary}"}
        )
    if isinstance(exc, AuthenticationError):
        return ApiError(401, "unauthorized", "invalid API key", headers=_BEARER)
    if isinstance(exc, OutcomeUnknownError):
        return ApiError(
            503,
            "outcome_unknown",
            "the database connection was lost while the write may have been committed: "
            "retry with the same Idempotency-Key, or look for it before writing it again",
            headers={"Retry-After": str(retry_after)},
        )
    if isinstance(exc, TransientError):
        return ApiError(
            503,
            "unavailable",
            "the database is busy or unreachable; retry",
            headers={"Retry-After": str(retry_after)},
        )
    if isinstance(exc, SchemaOutOfDateError | ConfigurationError):
        return ApiError(503, "unavailable", "the service is not ready")
    # DatabaseError and anything else: the message may hold a driver's words.
    return ApiError(500, "internal_error", "internal error")


_BEARER: Final = {"WWW-Authenticate": 'Bearer realm="chatledger"'}


def request_id_of(request: Request) -> str | None:
    """The id :class:`RequestId` gave the request."""
    value = request.scope.get("chatledger.request_id")
    return value if isinstance(value, str) else None


def render(request: Request | None, error: ApiError) -> JSONResponse:
    """The envelope response for ``error``."""
    body = ErrorBody(
        type=error.type,
        message=error.message,
        field=error.field,
        limit=error.limit,
        request_id=None if request is None else request_id_of(request),
    )
    return JSONResponse(
        {"error": body.model_dump()}, status_code=error.status, headers=error.headers
    )


_HTTP_TYPES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


#: Fields holding a JSON document: an error anywhere inside one names the field (the library
#: validates the document as a whole, see ``_validate.metadata``).
_DOCUMENTS: Final = frozenset({"metadata", "answers"})
#: pydantic's names of the union member or type at a location (not fields of ours).
_TYPE_TAGS: Final = frozenset({"str", "int", "float", "bool", "decimal", "list", "dict", "tuple"})
_QUOTED: Final = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """The library's name of the field at ``loc``: ``title``, ``chunks[3].content``; a JSON
    document is one field; pydantic's type tags (``constrained-str``, ``function-after[...]``)
    are not fields."""
    parts = list(loc)
    if parts == ["body"]:
        return "body"  # the body as a whole (not an object, say)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    name = index = ""
    for part in parts:
        if isinstance(part, int):
            index += f"[{part}]"
            continue
        text = str(part)
        if name and (not index or "-" in text or "[" in text or text in _TYPE_TAGS):
            break  # a key inside a document, or a type tag
        name = f"{name}{index}.{text}" if name else text
        index = ""
        if text in _DOCUMENTS:
            break
    return name or None


def _validation_limit(error: Mapping[str, Any]) -> int | float | list[str] | None:
    ctx = error.get("ctx") or {}
    if error.get("type") in ("literal_error", "enum") and "expected" in ctx:
        return sorted(_QUOTED.findall(str(ctx["expected"]))) or None
    for name in ("max_length", "le", "lt", "ge", "gt", "min_length", "decimal_places"):
        if name in ctx:
            return _limit(ctx[name])
    return None


def _validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    if not errors:
        return ApiError(422, "invalid_request", "invalid request")
    first = errors[0]
    if first.get("type") == "json_invalid":
        return ApiError(400, "bad_request", "the body is not valid JSON", field="body")
    raised = (first.get("ctx") or {}).get("error")
    if isinstance(raised, ValidationError):
        # A model field validated by the library's own rule: its error as it is.
        return from_library(raised, 0)
    field = _field(first.get("loc", ()))
    limit = _validation_limit(first)
    message = str(first.get("msg", "invalid value"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    text = f"{field}: {message}{more}" if field else f"{message}{more}"
    return ApiError(422, "invalid_request", text, field=field, limit=limit)


def install_error_handlers(
    app: FastAPI, retry_after: int, authenticate_first: Callable[[Request], Awaitable[None]]
) -> None:
    """Route every kind of error to the envelope. ``authenticate_first(request)`` raises the
    401 of a request that must authenticate and does not: input errors are answered only
    to callers that may call the operation (FastAPI parses a body before any dependency)."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return render(request, exc)

    async def on_library_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ChatledgerError)
        error = from_library(exc, retry_after)
        if error.status >= 500 and error.status != 503:
            logger.error(
                "request %s failed: %s", request_id_of(request), type(exc).__name__, exc_info=exc
            )
        elif error.status == 503:
            logger.warning("request %s: %s", request_id_of(request), exc)
        return render(request, error)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        try:
            await authenticate_first(request)
        except ApiError as denied:
            return render(request, denied)
        return render(request, _validation_error(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        if isinstance(exc, _TooLarge):
            return render(request, exc.error)
        if status == 404:
            message = f"no route {request.method} {request.url.path}"
        elif status == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        headers = dict(exc.headers or {})
        if status == 405:
            headers["Allow"] = ", ".join(OperationIndex.of(request.app).methods(request.url.path))
        kind = _HTTP_TYPES.get(status, "internal_error" if status >= 500 else "bad_request")
        return render(request, ApiError(status, kind, message, headers=headers))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("request %s failed", request_id_of(request), exc_info=exc)
        return render(request, ApiError(500, "internal_error", "internal error"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(ChatledgerError, on_library_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


class RequestId:
    """Gives each request an id (``X-Request-ID`` in the response and in error bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope["chatledger.request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive`` when the body passes the limit. An HTTPException, so that FastAPI
    re-raises it as it is while reading the body and the handler renders the envelope."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit:,} bytes")
        self.error = _too_large(limit)


class BodyLimit:
    """Rejects a request body larger than ``max_bytes`` with a 413: at once when its
    ``Content-Length`` says so, else while it streams in (chunked bodies included), before
    the route does anything with it.

    Starlette's own limiter answers in plain text on some paths; this one always answers in
    the envelope (its 413 is rendered by the HTTPException handler, or here when it escapes).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._reject(scope, receive, send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = render(Request(scope, receive), _too_large(self.max_bytes))
        await response(scope, receive, send)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the request body exceeds the limit of {limit:,} bytes",
        field="body",
        limit=limit,
        headers={"Connection": "close"},
    )
