"""Citations: the sources an assistant message cites, a knowledge chunk or an external URL.

A citation belongs to its message (deleting the message or its conversation deletes it) and
refers to a chunk weakly: deleting the chunk keeps the citation with ``chunk_id`` NULL (its URL,
title and snippet remain as they were quoted).
"""

from __future__ import annotations

import math
import numbers
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Connection, Row, case, exists, select
from sqlalchemy.exc import IntegrityError

from .. import _ids
from .. import _validate as check
from .._backends import backend_of
from .._schema import (
    SNIPPET_MAX,
    TITLE_MAX,
    URL_MAX,
    citations,
    conversations,
    knowledge_chunks,
    messages,
)
from ..errors import ConflictError, NotFoundError, ValidationError
from ..records import Citation, Message
from . import _once
from ._common import from_row, record_columns, record_values, utcnow

__all__ = [
    "CITING_ROLE",
    "NewCitation",
    "add_many",
    "citing_chunk",
    "for_message",
    "of_message",
    "prepare",
    "prepare_many",
]

#: The only role whose messages cite sources.
CITING_ROLE: Final = "assistant"
_SCHEMES: Final = ("http", "https")
_COLUMNS: Final = record_columns(citations, Citation)
_MESSAGE_COLUMNS: Final = record_columns(messages, Message)
_FIELDS: Final = frozenset(
    ("chunk_id", "url", "title", "snippet", "start_char", "end_char", "score", "rank")
)


@dataclass(frozen=True, slots=True)
class NewCitation:
    """A validated citation, ready to store."""

    chunk_id: uuid.UUID | None
    url: str | None
    title: str | None
    snippet: str | None
    start_char: int | None
    end_char: int | None
    score: float | None
    rank: int | None


def _url(value: object) -> str | None:
    """``None`` or an absolute http(s) URL with a host, without white space or control
    characters."""
    url = check.optional_text("url", value, URL_MAX)
    if url is None:
        return None
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValidationError("url", "must not contain white space or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValidationError("url", "is not a valid URL") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise ValidationError("url", "must be an http or https URL", limit=_SCHEMES)
    if not host:
        raise ValidationError("url", "must name a host")
    return url


def _score(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError("score", f"must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except (OverflowError, ValueError):
        raise ValidationError("score", f"{value!r} is not representable as a float") from None
    if not math.isfinite(number):
        raise ValidationError("score", "must be finite")
    return number


def prepare(
    *,
    chunk_id: object = None,
    url: object = None,
    title: object = None,
    snippet: object = None,
    start_char: object = None,
    end_char: object = None,
    score: object = None,
    rank: object = None,
) -> NewCitation:
    """Validate a citation: a chunk, a URL or both; a span is given whole or not at all."""
    chunk = None if chunk_id is None else check.identifier("chunk_id", chunk_id)
    link = _url(url)
    if chunk is None and link is None:
        raise ValidationError("chunk_id", "give a chunk_id, a url, or both")
    start = check.count("start_char", start_char)
    end = check.count("end_char", end_char)
    if (start is None) != (end is None):
        raise ValidationError(
            "end_char" if end is None else "start_char",
            "give start_char and end_char together",
        )
    if start is not None and end is not None and end < start:
        raise ValidationError("end_char", f"{end} is before start_char {start}", limit=start)
    return NewCitation(
        chunk_id=chunk,
        url=link,
        title=check.optional_text("title", title, TITLE_MAX),
        snippet=check.optional_text("snippet", snippet, SNIPPET_MAX),
        start_char=start,
        end_char=end,
        score=_score(score),
        rank=check.count("rank", rank),
    )


def prepare_many(limits: check.Limits, batch: object) -> list[NewCitation]:
    """Validate a batch of citation mappings; errors name the item (``citations[2].url``)."""
    if isinstance(batch, str | bytes | Mapping) or not isinstance(batch, Iterable):
        raise ValidationError("citations", "must be a list of mappings")
    prepared: list[NewCitation] = []
    for index, item in enumerate(batch):
        where = f"citations[{index}]"
        if len(prepared) >= limits.max_batch_size:
            raise ValidationError(
                "citations",
                f"more than {limits.max_batch_size:,} citations in one batch",
                limit=limits.max_batch_size,
            )
        if not isinstance(item, Mapping):
            raise ValidationError(where, f"must be a mapping, not {type(item).__name__}")
        unknown = set(item) - _FIELDS
        if unknown:
            raise ValidationError(where, f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        try:
            prepared.append(prepare(**item))
        except ValidationError as exc:
            raise ValidationError(f"{where}.{exc.field}", exc.problem, limit=exc.limit) from None
    return prepared


def _to_citation(row: Row[Any]) -> Citation:
    return from_row(Citation, row)


#: A retried batch learns whether an earlier attempt committed (see ``_once``).
ADDED: Final = _once.inserted_many("citation", citations, Citation)


def add_many(
    conn: Connection,
    owner: uuid.UUID | None,
    message_id: uuid.UUID,
    batch: list[NewCitation],
) -> list[Citation]:
    """Attach the citations to an assistant message, all or none."""
    m, c = messages.c, conversations.c
    query = select(m.conversation_id, m.role).where(m.id == message_id)
    if owner is not None:
        query = query.join(conversations, c.id == m.conversation_id).where(c.owner_id == owner)
    found = conn.execute(query).first()
    if found is None:
        raise NotFoundError("message", message_id)
    conversation_id, role = found
    if role != CITING_ROLE:
        raise ConflictError(
            f"only {CITING_ROLE} messages cite sources, not a {role} message", field="role"
        )
    wanted = list(dict.fromkeys(new.chunk_id for new in batch if new.chunk_id is not None))
    if wanted:
        k = knowledge_chunks.c
        present = set(conn.execute(select(k.id).where(k.id.in_(wanted))).scalars())
        missing = [chunk for chunk in wanted if chunk not in present]
        if missing:
            raise NotFoundError("knowledge chunk", missing[0])
    now = utcnow()
    stored = [
        Citation(
            id=_ids.new_id(),
            conversation_id=conversation_id,
            message_id=message_id,
            chunk_id=new.chunk_id,
            url=new.url,
            title=new.title,
            snippet=new.snippet,
            start_char=new.start_char,
            end_char=new.end_char,
            score=new.score,
            rank=new.rank,
            created_at=now,
        )
        for new in batch
    ]
    try:
        conn.execute(citations.insert(), [record_values(citation) for citation in stored])
    except IntegrityError as exc:
        violation = backend_of(conn).violation(exc)
        if violation.kind != "foreign_key":
            raise
        # A chunk or the message was deleted since we looked.
        if violation.name is None or "chunk" in violation.name:
            raise NotFoundError("knowledge chunk") from exc
        raise NotFoundError("message", message_id) from exc
    return stored


def _of_message(message_id: uuid.UUID) -> Any:
    t = citations.c
    return (
        select(*_COLUMNS)
        .where(t.message_id == message_id)
        .order_by(case((t.rank.is_(None), 1), else_=0), t.rank, t.created_at, t.id)
    )


def of_message(conn: Connection, message_id: uuid.UUID) -> list[Citation]:
    """The message's citations by rank (unranked last), then in the order they were added;
    the caller has checked the message is visible."""
    return [_to_citation(row) for row in conn.execute(_of_message(message_id))]


def for_message(conn: Connection, owner: uuid.UUID | None, message_id: uuid.UUID) -> list[Citation]:
    """The message's citations (see :func:`of_message`)."""
    query = _of_message(message_id)
    if owner is not None:
        c = conversations.c
        query = query.where(
            exists().where(c.id == citations.c.conversation_id, c.owner_id == owner)
        )
    rows = conn.execute(query).all()
    if not rows:
        m, c = messages.c, conversations.c
        probe = select(m.id).where(m.id == message_id)
        if owner is not None:
            probe = probe.join(conversations, c.id == m.conversation_id).where(c.owner_id == owner)
        if conn.execute(probe).first() is None:
            raise NotFoundError("message", message_id)
    return [_to_citation(row) for row in rows]


def citing_chunk(
    conn: Connection, owner: uuid.UUID | None, chunk_id: uuid.UUID, limit: int
) -> list[Message]:
    """The messages that cite the chunk, newest first, each once."""
    m, c = messages.c, conversations.c
    cited = select(citations.c.message_id).where(citations.c.chunk_id == chunk_id)
    query = select(*_MESSAGE_COLUMNS).where(m.id.in_(cited))
    if owner is not None:
        query = query.join(conversations, c.id == m.conversation_id).where(c.owner_id == owner)
    rows = conn.execute(query.order_by(m.created_at.desc(), m.id.desc()).limit(limit)).all()
    if not rows:
        k = knowledge_chunks.c
        if conn.execute(select(k.id).where(k.id == chunk_id)).first() is None:
            raise NotFoundError("knowledge chunk", chunk_id)
    return [from_row(Message, row) for row in rows]
