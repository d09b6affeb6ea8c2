"""``Idempotency-Key`` on message appends: replay, mismatch (422) and in-flight (409).

The key is claimed in a transaction of its own that commits before the append starts, so the
claim holds across processes and hosts sharing the database. A success is stored and replayed
for 24 hours (``ServerSettings.idempotency_ttl``) with ``Idempotent-Replayed: true``; a failure
releases the claim so that a retry runs again (nothing was written). A claim left ``running`` by
a process that died is taken over after 60 seconds (``idempotency_running_timeout``). The key
also goes to ``messages.append(idempotency_key=...)``, so even a replay the table no longer
holds writes no second message. A stored response names the message it carries: it is deleted
with the message, or when the message's content is erased (a retry then runs again and gets
the message as it is now).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import Request, Response
from pydantic import TypeAdapter

from .._async._idempotency import AsyncIdempotentRequests
from ..records import Message
from .auth import Principal
from .errors import ApiError
from .settings import ServerSettings

__all__ = ["REPLAYED", "canonical_hash", "idempotent"]

logger = logging.getLogger("chatledger.server")

#: The response header that marks a replayed response.
REPLAYED: Final = "Idempotent-Replayed"

_MESSAGE: Final = TypeAdapter(Message)


def canonical_hash(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the method, the path and the body's canonical JSON: the same request sent
    twice, however its JSON is spaced or its keys ordered, hashes the same."""
    try:
        canonical = json.dumps(
            json.loads(body or b"null"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    text = f"{method} {path}\n{canonical}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _json(status: int, body: str, *, replayed: bool = False) -> Response:
    headers = {REPLAYED: "true"} if replayed else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def idempotent(
    request: Request,
    caller: Principal,
    key: str | None,
    status: int,
    work: Callable[[str | None], Awaitable[Message]],
) -> Response:
    """Run ``work(key)`` (which returns the message of a ``status`` response) at most once
    per ``key`` of the caller's API key; without a key, just run it."""
    if key is None:
        return _json(status, _MESSAGE.dump_json(await work(None)).decode())
    settings: ServerSettings = request.app.state.settings
    claims = AsyncIdempotentRequests(caller.ledger)
    digest = canonical_hash(request.method, request.url.path, await request.body())
    claim = await claims.claim(
        caller.key.id,
        key,
        digest,
        running_timeout=settings.idempotency_running_timeout,
        ttl=settings.idempotency_ttl,
    )
    if claim.outcome == "replay":
        assert claim.status is not None
        assert claim.body is not None
        return _json(claim.status, claim.body, replayed=True)
    if claim.outcome == "mismatch":
        raise ApiError(
            422,
            "idempotency_key_mismatch",
            "this Idempotency-Key was used for a different request",
            field="Idempotency-Key",
        )
    if claim.outcome == "running":
        raise ApiError(
            409,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still running; retry later",
            field="Idempotency-Key",
            headers={"Retry-After": str(settings.retry_after)},
        )
    try:
        message = await work(key)
    except BaseException:
        await _release(claims, caller, key, digest)
        raise
    body = _MESSAGE.dump_json(message).decode()
    await claims.complete(caller.key.id, key, digest, status, body, message_id=message.id)
    return _json(status, body)


async def _release(
    claims: AsyncIdempotentRequests, caller: Principal, key: str, digest: str
) -> None:
    """Give the claim up after a failure; if even that fails, it expires on its own."""
    try:
        await claims.release(caller.key.id, key, digest)
    except Exception:  # the original error is the one to report
        logger.warning(
            "could not release Idempotency-Key claim; it expires on its own", exc_info=True
        )
