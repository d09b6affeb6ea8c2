"""The HTTP server's own refusals, in the envelope.

uvicorn answers a request it cannot parse (a malformed request line, header or chunked body,
headers too large) with a plain-text 400 before the app sees it. :data:`HTTPProtocol` is
uvicorn's protocol (httptools when installed, else h11) with that answer replaced by the
API's error envelope; ``chatledger serve`` runs with it. What still cannot carry the envelope
(a TLS handshake that fails, a connection reset) never reaches HTTP at all.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HTTPProtocol", "envelope_400"]

_STATUS: Final = b"HTTP/1.1 400 Bad Request\r\n"


def envelope_400(message: str) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """The status line, headers and body of the 400 sent for a request that is not HTTP."""
    request_id = secrets.token_hex(8)
    error = {
        "type": "bad_request",
        "message": f"the request is not valid HTTP/1.1 ({message.rstrip('.').lower()})",
        "field": None,
        "limit": None,
        "request_id": request_id,
    }
    body = json.dumps({"error": error}, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", request_id.encode()),
    ]
    return _STATUS, headers, body


def _send_400(protocol: Any, message: str) -> None:
    status, headers, body = envelope_400(message)
    defaults = [tuple(pair) for pair in protocol.server_state.default_headers]
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in [*defaults, *headers])
    protocol.transport.write(status + lines + b"\r\n" + body)
    protocol.transport.close()


class _H11(H11Protocol):
    """h11 with the envelope for requests it cannot parse."""

    def send_400_response(self, msg: str) -> None:
        """Answer the envelope, then close the connection."""
        _send_400(self, msg)


HTTPProtocol: type[asyncio.Protocol]
try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a uvicorn[standard] extra
    HTTPProtocol = _H11
else:

    class _HttpTools(HttpToolsProtocol):
        """httptools with the envelope for requests it cannot parse."""

        def send_400_response(self, msg: str) -> None:
            """Answer the envelope, then close the connection."""
            _send_400(self, msg)

    HTTPProtocol = _HttpTools
