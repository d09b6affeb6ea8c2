"""The citations resource: the sources assistant messages cite."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import _validate as check
from .._ops import citations as _citations
from .._validate import Id
from ..records import ChunkHit, Citation, Message

if TYPE_CHECKING:
    from ._store import _AsyncStore

__all__ = ["AsyncCitations"]


class AsyncCitations:
    """Sources cited by assistant messages: knowledge chunks or external URLs. In a user scope,
    only that user's conversations' messages."""

    def __init__(self, store: _AsyncStore) -> None:
        self._store = store

    async def add(
        self,
        message_id: Id,
        *,
        chunk_id: Id | None = None,
        url: str | None = None,
        title: str | None = None,
        snippet: str | None = None,
        start_char: int | None = None,
        end_char: int | None = None,
        score: float | None = None,
        rank: int | None = None,
    ) -> Citation:
        """Attach a citation to an assistant message: a knowledge ``chunk_id``, an http(s)
        ``url`` (at most 2,048 characters), or both; a ``title`` (500), the quoted ``snippet``
        (20,000), its character span ``start_char``..``end_char`` (given together,
        ``0 <= start_char <= end_char``), a retrieval ``score`` and a ``rank`` (from 0).

        A message of another role is a ConflictError on ``role``; an unknown chunk is a
        NotFoundError (``"knowledge chunk"``).
        """
        key = check.identifier("message_id", message_id)
        new = _citations.prepare(
            chunk_id=chunk_id,
            url=url,
            title=title,
            snippet=snippet,
            start_char=start_char,
            end_char=end_char,
            score=score,
            rank=rank,
        )
        (stored,) = await self._store._call(
            _citations.add_many,
            self._store._owner,
            key,
            [new],
            write=True,
            settle=_citations.ADDED,
        )
        return stored

    async def add_many(
        self, message_id: Id, citations: Iterable[Mapping[str, Any]]
    ) -> list[Citation]:
        """Attach several citations in one transaction: all of them or none. Each item is a
        mapping of the keywords of :meth:`add`; errors name the item (``citations[2].url``)."""
        key = check.identifier("message_id", message_id)
        batch = _citations.prepare_many(self._store.limits, citations)
        if not batch:
            return []
        return await self._store._call(
            _citations.add_many,
            self._store._owner,
            key,
            batch,
            write=True,
            settle=_citations.ADDED,
        )

    async def cite(self, message_id: Id, hits: Iterable[ChunkHit]) -> list[Citation]:
        """Attach the chunks a retrieval found (``knowledge.retrieve``) to the assistant
        message that used them, each with its rank and score, in one transaction: "which
        sources did this answer use" is then :meth:`for_message`."""
        key = check.identifier("message_id", message_id)
        batch = [
            _citations.prepare(
                chunk_id=hit.chunk.id, title=hit.chunk.title, score=hit.score, rank=hit.rank
            )
            for hit in hits
        ]
        if not batch:
            return []
        return await self._store._call(
            _citations.add_many, self._store._owner, key, batch, write=True
        )

    async def for_message(self, message_id: Id) -> list[Citation]:
        """The message's citations by ``rank`` (unranked last), then in the order added."""
        key = check.identifier("message_id", message_id)
        return await self._store._call(_citations.for_message, self._store._owner, key)

    async def citing_chunk(self, chunk_id: Id, *, limit: int = 50) -> list[Message]:
        """The messages that cite a knowledge chunk, newest first, each once (in a user scope:
        that user's). NotFoundError if the chunk does not exist."""
        key = check.identifier("chunk_id", chunk_id)
        size = check.page_size("limit", limit, self._store.limits)
        return await self._store._call(_citations.citing_chunk, self._store._owner, key, size)
