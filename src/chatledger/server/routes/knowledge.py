"""Knowledge chunks: shared reference material, read by any key, written by admin keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from ..._schema import EXTERNAL_ID_MAX, SOURCE_MAX
from ...records import KnowledgeChunk, UpsertReport
from ..auth import Admin, Caller, audit
from ..errors import ERROR_RESPONSES
from ..models import NOT_BLANK, KnowledgeAdd, KnowledgeBulk, KnowledgeUpsert, PageOut, page_out
from ._params import After, Before, Limit, Order

__all__ = ["router"]

router = APIRouter(
    tags=["knowledge"], responses={403: ERROR_RESPONSES[403], 409: ERROR_RESPONSES[409]}
)


@router.put("/knowledge/chunks", status_code=200)
async def upsert_chunk(body: KnowledgeUpsert, caller: Admin) -> KnowledgeChunk:
    """Insert or replace the chunk ``(source, external_id)`` (admin); unchanged content
    writes nothing."""
    return await caller.ledger.knowledge.upsert(
        body.source, body.external_id, body.content, title=body.title, metadata=body.metadata
    )


@router.post("/knowledge/chunks", status_code=201)
async def add_chunk(body: KnowledgeAdd, caller: Admin) -> KnowledgeChunk:
    """Insert a chunk without a key (admin): a new chunk every time, whose ``external_id``
    is its own id."""
    return await caller.ledger.knowledge.add(
        body.source, body.content, title=body.title, metadata=body.metadata
    )


@router.post("/knowledge/bulk")
async def bulk_upsert_chunks(body: KnowledgeBulk, caller: Admin) -> UpsertReport:
    """Upsert up to 1,000 chunks in one transaction, all or none (admin)."""
    report = await caller.ledger.knowledge.bulk_upsert(
        [chunk.model_dump() for chunk in body.chunks]
    )
    await audit(
        caller.ledger,
        "admin.knowledge_bulk_upsert",
        user_id=caller.user.id,
        category="general",
        metadata={"inserted": report.inserted, "updated": report.updated},
    )
    return report


@router.get("/knowledge/chunks")
async def list_chunks(
    caller: Caller,
    source: Annotated[str, Query(min_length=1, max_length=SOURCE_MAX, pattern=NOT_BLANK)],
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
) -> PageOut[KnowledgeChunk]:
    """A page of a source's chunks in ``external_id`` order."""
    page = await caller.ledger.knowledge.list(source, limit=limit, after=after, before=before)
    return PageOut[KnowledgeChunk].model_validate(page_out(page))


@router.get("/knowledge/all-chunks")
async def list_all_chunks(
    caller: Caller,
    limit: Limit = 50,
    after: After = None,
    before: Before = None,
    order: Order = "asc",
) -> PageOut[KnowledgeChunk]:
    """A page of every source's chunks in creation order, oldest first by default."""
    page = await caller.ledger.knowledge.list_all(
        limit=limit, after=after, before=before, order=order
    )
    return PageOut[KnowledgeChunk].model_validate(page_out(page))


@router.get("/knowledge/lookup")
async def find_chunk(
    caller: Caller,
    external_id: Annotated[str, Query(min_length=1, max_length=EXTERNAL_ID_MAX, pattern=NOT_BLANK)],
) -> KnowledgeChunk:
    """The chunk with ``external_id``, whatever its source (409 when several sources hold
    it: list the source's chunks instead)."""
    return await caller.ledger.knowledge.get_by_external_id(external_id)


@router.get("/knowledge/chunks/{chunk_id}")
async def get_chunk(chunk_id: uuid.UUID, caller: Caller) -> KnowledgeChunk:
    """One chunk."""
    return await caller.ledger.knowledge.get(chunk_id)


@router.delete("/knowledge/chunks/{chunk_id}", status_code=204)
async def delete_chunk(chunk_id: uuid.UUID, caller: Admin) -> Response:
    """Delete a chunk (admin); citations of it stay, without the chunk."""
    await caller.ledger.knowledge.delete(chunk_id)
    return Response(status_code=204)
