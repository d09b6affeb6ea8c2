"""Read-your-writes over HTTP: the ``Chatledger-Consistency`` header.

A response to a request that wrote carries ``Chatledger-Consistency: <token>``, the
replication position of those writes (when the service reads from replicas or runs on
LiteFS). A client sends the last token it received back on its next requests, to any app
server of the same database: their reads then see those writes, served by a replica that has
replayed them (waiting up to ``replica_wait``) or by the primary. See docs/scale-out.md.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._run.replicas import ASKED, request_tokens
from ..errors import ValidationError
from .errors import ApiError, render

__all__ = ["HEADER", "Consistency"]

#: The header a write's response carries and a client sends back.
HEADER: Final = "Chatledger-Consistency"
_KEY: Final = HEADER.lower().encode()


class Consistency:
    """Reads the client's token into the request's reads; answers the request's writes'
    position in the response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = None
        for key, value in scope.get("headers", ()):
            if key == _KEY:
                asked = value.decode("latin-1").strip() or None
        try:
            tokens = request_tokens(asked)
        except ValidationError:
            error = ApiError(
                400,
                "bad_request",
                f"{HEADER}: not a token this service gave (send back the header's value as "
                "it was received)",
                field=HEADER,
            )
            await render(None, error)(scope, receive, send)
            return
        reset = ASKED.set(tokens)

        async def send_with_token(message: Message) -> None:
            if message["type"] == "http.response.start" and tokens.wrote is not None:
                headers = list(message.get("headers", []))
                headers.append((_KEY, tokens.wrote.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_token)
        finally:
            ASKED.reset(reset)
