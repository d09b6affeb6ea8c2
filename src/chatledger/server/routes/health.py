"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ... import migrate
from ..._async._store import run_op
from ...errors import ChatledgerError
from ..auth import ledger_of
from ..errors import ERROR_RESPONSES, ApiError

__all__ = ["router"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """The database answers and its schema is the one this chatledger needs."""

    status: Literal["ready"]
    revision: str


@router.get("/healthz", summary="Liveness")
async def healthz() -> Health:
    """The process is up (touches nothing else)."""
    return Health(status="ok")


@router.get("/readyz", summary="Readiness", responses={503: ERROR_RESPONSES[503]})
async def readyz(request: Request) -> Readiness:
    """The database is reachable and its schema is at the revision this chatledger needs;
    else 503."""
    ledger = ledger_of(request)
    head = migrate.head()
    try:
        revision = await run_op(ledger, migrate.current)
    except ChatledgerError as exc:
        raise ApiError(503, "unavailable", "the database is unreachable") from exc
    if revision != head:
        raise ApiError(
            503, "unavailable", f"the schema is at revision {revision}, chatledger needs {head}"
        )
    return Readiness(status="ready", revision=head)
