"""Admin routes: the audit log, every user's conversations, a user's export and erasure."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ..._schema import EVENT_TYPE_MAX
from ...records import (
    AuditCategory,
    AuditEvent,
    AuditSeverity,
    AuditVerification,
    Conversation,
    ConversationStatus,
    ErasureReport,
)
from ..auth import Admin, audit, not_self
from ..errors import ERROR_RESPONSES
from ..models import NO_NUL, AuditRecord, PageOut, page_out
from ._params import After, Before, Limit, Order, Since, Until

__all__ = ["router"]

router = APIRouter(tags=["admin"], responses={403: ERROR_RESPONSES[403], 409: ERROR_RESPONSES[409]})


@router.get("/admin/conversations")
async def list_all_conversations(
    caller: Admin,
    status: Annotated[list[ConversationStatus] | None, Query()] = None,
    limit: Limit = 20,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
) -> PageOut[Conversation]:
    """A page of every user's conversations, anonymous ones included, in creation order,
    newest first by default (admin). Without ``status``, all but the deleted ones."""
    page = await caller.ledger.conversations.list_all(
        status=status or None, limit=limit, after=after, before=before, order=order
    )
    return PageOut[Conversation].model_validate(page_out(page))


@router.get("/audit/events")
async def list_audit_events(
    caller: Admin,
    user_id: uuid.UUID | None = None,
    event_type: Annotated[str | None, Query(max_length=EVENT_TYPE_MAX, pattern=NO_NUL)] = None,
    category: AuditCategory | None = None,
    severity: AuditSeverity | None = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "desc",
) -> PageOut[AuditEvent]:
    """A page of audit events in ``seq`` order, newest first by default, filtered (admin)."""
    page = await caller.ledger.audit.list(
        user_id=user_id,
        event_type=event_type,
        category=category,
        severity=severity,
        since=since,
        until=until,
        limit=limit,
        after=after,
        before=before,
        order=order,
    )
    return PageOut[AuditEvent].model_validate(page_out(page))


@router.post("/audit/events", status_code=201)
async def record_audit_event(body: AuditRecord, caller: Admin) -> AuditEvent:
    """Append an application event to the audit log (admin)."""
    return await caller.ledger.audit.record(**body.model_dump())


@router.get("/audit/events/{seq}")
async def get_audit_event(
    seq: Annotated[int, Path(ge=1, le=2**63 - 1)], caller: Admin
) -> AuditEvent:
    """One audit event by ``seq`` (admin)."""
    return await caller.ledger.audit.get(seq)


@router.get("/audit/verify")
async def verify_audit_log(caller: Admin) -> AuditVerification:
    """Check the audit log's hash chain from the first event to the head (admin)."""
    return await caller.ledger.audit.verify()


@router.get("/users/{user_id}/export")
async def export_user(user_id: uuid.UUID, caller: Admin) -> dict[str, Any]:
    """Everything stored about a user, as one JSON document (admin; audited)."""
    document = await caller.ledger.users.export(user_id)
    await audit(
        caller.ledger,
        "admin.user_exported",
        user_id=caller.user.id,
        category="compliance",
        metadata={"target_user_id": str(user_id)},
    )
    return document


@router.post("/users/{user_id}/erase")
async def erase_user(user_id: uuid.UUID, caller: Admin) -> ErasureReport:
    """Erase a user for good: every row of theirs, audit events redacted (admin; audited;
    not the caller's own user)."""
    not_self(caller, user_id, "erase")
    report = await caller.ledger.users.erase(user_id)
    await audit(
        caller.ledger,
        "admin.user_erased",
        user_id=caller.user.id,
        category="compliance",
        severity="warning",
        metadata={"target_user_id": str(user_id), "deleted": report.deleted},
    )
    return report
