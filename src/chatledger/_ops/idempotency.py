"""HTTP idempotency keys: the claims behind the HTTP API's ``Idempotency-Key`` header.

A request sent with a key first *claims* it, in a transaction of its own that commits before the
request's work starts, so every process serving the API sees the claim:

- no row: a ``running`` row is inserted and the caller does the work;
- a ``done`` row with the same request hash: the stored response is replayed;
- a row with another request hash: the key was reused for another request (a client bug);
- a ``running`` row with the same hash: the first request is still in flight.

A ``running`` claim older than ``running_timeout`` was left by a process that died: it is taken
over. A row older than ``ttl`` has expired: it is taken over too, and :func:`purge` deletes such
rows. Racing first claims are settled by the primary key: the loser reads the winner's row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import Connection, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from .._backends import backend_of
from .._schema import idempotent_requests, messages
from . import _once

__all__ = ["Claim", "ClaimOutcome", "claim", "complete", "purge", "release", "released"]

#: What a claim found: the caller's to run, a response to replay, a key reused for another
#: request, or a first request still running.
ClaimOutcome = Literal["claimed", "replay", "mismatch", "running"]

_T: Final = idempotent_requests
_C: Final = idempotent_requests.c


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming an idempotency key; ``status`` and ``body`` are the stored
    response when ``outcome`` is ``"replay"``."""

    outcome: ClaimOutcome
    status: int | None = None
    body: str | None = None


def _key(api_key_id: uuid.UUID, key: str) -> Any:
    return and_(_C.api_key_id == api_key_id, _C.key == key)


def _take_over(
    conn: Connection, api_key_id: uuid.UUID, key: str, request_hash: str, now: datetime
) -> Claim:
    conn.execute(
        update(_T)
        .where(_key(api_key_id, key))
        .values(
            request_hash=request_hash,
            state="running",
            response_status=None,
            response_body=None,
            created_at=now,
            completed_at=None,
            message_id=None,
        )
    )
    return Claim("claimed")


def claim(
    conn: Connection,
    api_key_id: uuid.UUID,
    key: str,
    request_hash: str,
    now: datetime,
    running_timeout: timedelta,
    ttl: timedelta,
) -> Claim:
    """Claim ``key`` of ``api_key_id`` for a request whose canonical hash is ``request_hash``
    (see the module docstring for the outcomes)."""
    columns = (_C.request_hash, _C.state, _C.response_status, _C.response_body, _C.created_at)
    query = select(*columns).where(_key(api_key_id, key)).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    _T.insert(),
                    {
                        "api_key_id": api_key_id,
                        "key": key,
                        "request_hash": request_hash,
                        "state": "running",
                        "created_at": now,
                    },
                )
            return Claim("claimed")
        except IntegrityError as exc:
            if backend_of(conn).violation(exc).kind != "unique":
                raise
        row = conn.execute(query).first()
        if row is None:  # the winner released its claim meanwhile: claim it again
            return claim(conn, api_key_id, key, request_hash, now, running_timeout, ttl)
    stored_hash, state, status, body, created_at = row
    if state == "running" and stored_hash == request_hash and created_at == now:
        # This call's own claim: an earlier attempt committed it and its reply was lost
        # (``now`` is the call's, the same on every attempt, to the microsecond).
        return Claim("claimed")
    if created_at <= now - ttl or (state == "running" and created_at <= now - running_timeout):
        return _take_over(conn, api_key_id, key, request_hash, now)
    if stored_hash != request_hash:
        return Claim("mismatch")
    if state == "running":
        return Claim("running")
    return Claim("replay", status=status, body=body)


def complete(
    conn: Connection,
    api_key_id: uuid.UUID,
    key: str,
    request_hash: str,
    status: int,
    body: str,
    now: datetime,
    message_id: uuid.UUID | None = None,
) -> bool:
    """Store the response of a claimed request, to be replayed, with the id of the message it
    carries (the response goes when the message goes, or its content is erased). ``False``
    when the claim is no longer this request's (it expired and another request took it
    over), or the message is gone already (a response carrying it is not kept)."""
    if message_id is not None:
        # Locked: an erasure or delete of the message waits for this commit, then deletes
        # the response (it would otherwise miss a row not yet committed).
        carried = conn.execute(
            select(messages.c.erased_at)
            .where(messages.c.id == message_id)
            .with_for_update(read=True)
        ).first()
        if carried is None or carried.erased_at is not None:
            release(conn, api_key_id, key, request_hash)
            return False
    result = conn.execute(
        update(_T)
        .where(_key(api_key_id, key), _C.state == "running", _C.request_hash == request_hash)
        .values(
            state="done",
            response_status=status,
            response_body=body,
            completed_at=now,
            message_id=message_id,
        )
    )
    if result.rowcount == 1:
        return True
    # An earlier attempt of this call may have stored it already (its reply was lost).
    done = conn.execute(
        select(_C.response_status, _C.completed_at).where(
            _key(api_key_id, key), _C.state == "done", _C.request_hash == request_hash
        )
    ).first()
    return done is not None and tuple(done) == (status, now)


def _released(
    conn: Connection, drawn: Any, api_key_id: uuid.UUID, key: str, request_hash: str
) -> bool | _once.NotWritten:
    row = conn.execute(select(_C.request_hash, _C.state).where(_key(api_key_id, key))).first()
    if row is None:
        return True  # gone: released (a re-run would answer that the claim is not its own)
    return _once.NOT_WRITTEN


def released(api_key_id: uuid.UUID, key: str, request_hash: str) -> _once.Settle[bool]:
    """A release committed when the claim is gone."""
    return _once.Settle("idempotency claim", _released, (api_key_id, key, request_hash))


def release(conn: Connection, api_key_id: uuid.UUID, key: str, request_hash: str) -> bool:
    """Give up a claim whose request failed, so that a retry runs it again. ``False`` when the
    claim is no longer this request's."""
    result = conn.execute(
        delete(_T).where(
            _key(api_key_id, key), _C.state == "running", _C.request_hash == request_hash
        )
    )
    return result.rowcount == 1


def purge(conn: Connection, now: datetime, running_timeout: timedelta, ttl: timedelta) -> int:
    """Delete expired rows: any older than ``ttl``, and ``running`` claims older than
    ``running_timeout`` (left by a process that died). Returns how many were deleted."""
    result = conn.execute(
        delete(_T).where(
            or_(
                _C.created_at <= now - ttl,
                and_(_C.state == "running", _C.created_at <= now - running_timeout),
            )
        )
    )
    return int(result.rowcount)
