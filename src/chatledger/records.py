"""The plain, immutable objects chatledger operations return.

They are frozen dataclasses, detached from any database session: safe to cache, pass between
threads, or serialise (``dataclasses.asdict``, or Pydantic's ``TypeAdapter`` for JSON).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar

__all__ = [
    "ANONYMOUS_USER_ID",
    "ApiKey",
    "AuditCategory",
    "AuditEvent",
    "AuditSeverity",
    "AuditVerification",
    "ChunkHit",
    "Citation",
    "Conversation",
    "ConversationHit",
    "ConversationStatus",
    "CreatedApiKey",
    "EnsuredUser",
    "ErasureReport",
    "Feedback",
    "FeedbackSummary",
    "KnowledgeChunk",
    "KnowledgeSource",
    "Message",
    "MessageDetail",
    "MessageHit",
    "MessageStatus",
    "Order",
    "Page",
    "ProductFeedback",
    "RetentionReport",
    "Role",
    "SearchPage",
    "Stream",
    "StreamEvent",
    "SurveyResponse",
    "Thumb",
    "TokenEntry",
    "ToolCall",
    "ToolCallStatus",
    "ToolStats",
    "UpsertReport",
    "UsageTotals",
    "User",
    "VectorEngine",
    "Visitor",
]

#: Who wrote a message.
Role: TypeAlias = Literal["user", "assistant", "system", "tool"]
#: The life cycle of a conversation. ``deleted`` is a soft delete: hidden from default listings.
ConversationStatus: TypeAlias = Literal["active", "archived", "closed", "deleted"]
#: The life cycle of a message (docs/streaming.md).
MessageStatus: TypeAlias = Literal["streaming", "completed", "incomplete", "failed"]
#: The state of a tool call: ``pending`` until a ``tool`` message answers it (docs/tools.md).
ToolCallStatus: TypeAlias = Literal["pending", "success", "error"]
#: Sort order of a listing: ``"asc"`` oldest first, ``"desc"`` newest first.
Order: TypeAlias = Literal["asc", "desc"]
#: A thumbs-up or thumbs-down rating.
Thumb: TypeAlias = Literal["up", "down"]
AuditCategory: TypeAlias = Literal["security", "compliance", "access", "system", "general"]
AuditSeverity: TypeAlias = Literal["debug", "info", "warning", "error", "critical"]

T = TypeVar("T")

#: The owner of anonymous conversations (an app's sessions without a signed-in user): the nil
#: UUID. ``ledger.conversations.create(ANONYMOUS_USER_ID)`` starts one; its user row (role
#: ``"anonymous"``) is made on first use. Only the unscoped ledger (an admin key over HTTP)
#: sees these conversations: no user scope, and no API key, can act as this user.
ANONYMOUS_USER_ID: Final = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class User:
    """A person or agent that owns conversations."""

    id: uuid.UUID
    external_id: str | None
    email: str | None
    username: str | None
    display_name: str | None
    role: str
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EnsuredUser:
    """What :meth:`~chatledger.Users.ensure` found or made: the user, and whether this call
    created it. Unpacks like a pair: ``user, created = ledger.users.ensure("auth0|42")``."""

    user: User
    created: bool

    def __iter__(self) -> Iterator[Any]:
        yield self.user
        yield self.created


@dataclass(frozen=True, slots=True)
class Conversation:
    """A chat thread and its counters."""

    id: uuid.UUID
    owner_id: uuid.UUID
    title: str | None
    intent: str | None
    status: ConversationStatus
    message_count: int
    last_message_at: datetime | None
    last_activity_at: datetime
    archived_at: datetime | None
    metadata: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    #: The ``seq`` of the active leaf: where the next append without a parent continues
    #: (``None`` before the first message).
    active_leaf_seq: int | None = None
    #: How many messages the active path holds (``message_count`` counts every branch).
    path_length: int = 0
    #: For a fork: the conversation and the message it was forked from.
    forked_from_conversation_id: uuid.UUID | None = None
    forked_from_message_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation. ``seq`` numbers a conversation's messages 1, 2, 3, …
    without gaps, in the order they were appended.

    A message is a node of the conversation's tree (see docs/trees.md): ``parent_seq`` is the
    ``seq`` of its parent (``None`` for a root), ``depth`` its distance from the root (0 for a
    root), ``sibling_index`` its rank among its parent's children (0 first: "2 / 3" is
    ``sibling_index + 1`` of the sibling count), and ``on_active_path`` whether it was on the
    conversation's active path when it was read."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    seq: int
    role: Role
    content: str
    intent: str | None
    metadata: dict[str, Any] | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost: Decimal | None
    latency_ms: int | None
    request_id: str | None
    idempotency_key: str | None
    created_at: datetime
    parent_seq: int | None = None
    depth: int = 0
    sibling_index: int = 0
    on_active_path: bool = True
    #: ``streaming`` while a reply is being written (its text is read with
    #: ``store.streams.read``), then ``completed``, ``incomplete`` or ``failed``
    #: (docs/streaming.md); every message appended whole is ``completed``.
    status: MessageStatus = "completed"
    #: Why the reply ended ``incomplete`` or ``failed``.
    status_reason: str | None = None
    #: Input tokens served from the provider's prompt cache (part of ``input_tokens``).
    cached_input_tokens: int | None = None
    #: Reasoning tokens the provider reported (part of ``output_tokens``).
    reasoning_tokens: int | None = None
    #: When the message was hidden from history reads (``messages.hide``), and by whom.
    hidden_at: datetime | None = None
    hidden_by: uuid.UUID | None = None
    #: When an admin erased its content and metadata for good (``messages.erase``).
    erased_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Stream:
    """The stream of a reply that was begun streaming (docs/streaming.md): how much of it has
    been flushed, until when its writer's lease runs, the tokens it holds. ``finished_at`` is
    set, and the lease and hold cleared, when it was finished, aborted or swept."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    chunk_count: int
    char_count: int
    lease_seconds: int
    lease_expires_at: datetime | None
    hold: int | None
    charge_reason: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call an assistant message asked for, and its answer (docs/tools.md).

    ``call_id`` is the provider's or framework's id ("call_…", "toolu_…"), unique in the
    conversation; ``position`` orders the parallel calls of one message. While ``pending``
    nothing answered it; ``success`` / ``error`` name the ``tool`` message that did
    (``result_message_id``, ``result_seq``) and how long the tool took (``latency_ms``)."""

    conversation_id: uuid.UUID
    call_id: str
    message_id: uuid.UUID
    message_seq: int
    position: int
    name: str
    arguments: dict[str, Any]
    metadata: dict[str, Any] | None
    status: ToolCallStatus
    result_message_id: uuid.UUID | None
    result_seq: int | None
    requested_at: datetime
    answered_at: datetime | None
    latency_ms: int | None

    @property
    def answered(self) -> bool:
        """Whether a ``tool`` message answered the call (with a result or an error)."""
        return self.status != "pending"


@dataclass(frozen=True, slots=True)
class ToolStats:
    """How one tool was used (``store.tools.stats``): its calls by state, and the latency of
    the answered ones in milliseconds (``None`` when none was answered)."""

    name: str
    calls: int
    succeeded: int
    failed: int
    pending: int
    avg_latency_ms: float | None
    max_latency_ms: int | None

    @property
    def error_rate(self) -> float:
        """The share of answered calls that failed (0.0 when none was answered)."""
        answered = self.succeeded + self.failed
        return self.failed / answered if answered else 0.0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """Text of a streamed reply from character ``start`` to ``end`` (exclusive), read while
    it streams or after. ``end`` is where the next read resumes (the SSE event id);
    ``status`` is the message's state when it was read: the last event of a finished reply
    carries its final state."""

    message_id: uuid.UUID
    start: int
    end: int
    text: str
    status: MessageStatus
    status_reason: str | None

    @property
    def done(self) -> bool:
        """Whether the reply is finished (no more text will come)."""
        return self.status != "streaming"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing.

    Pass ``after=page.last_cursor`` for the next page in the same order, or
    ``before=page.first_cursor`` for the previous one. ``has_more`` says whether more items lie
    beyond this page in the direction it was read.
    """

    items: list[T]
    has_more: bool
    first_cursor: str | None
    last_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One rater's current rating of one message: a thumb, a score on a declared scale, or both."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    rater_id: uuid.UUID
    thumb: Thumb | None
    score: float | None
    scale_min: float | None
    scale_max: float | None
    categories: list[str] | None
    comment: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackSummary:
    """Ratings aggregated over one group (a conversation, a model or a UTC day)."""

    key: str
    ratings: int
    thumbs_up: int
    thumbs_down: int
    average_score: float | None


@dataclass(frozen=True, slots=True)
class ProductFeedback:
    """A standalone product-feedback form."""

    id: uuid.UUID
    agent_name: str
    agent_type: str | None
    issues: str | None
    feature_requests: str | None
    additional_comments: str | None
    usability_rating: int | None
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class Citation:
    """A source an assistant message cites: a knowledge chunk or an external URL."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    chunk_id: uuid.UUID | None
    url: str | None
    title: str | None
    snippet: str | None
    start_char: int | None
    end_char: int | None
    score: float | None
    rank: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """A message with its ratings and citations."""

    message: Message
    feedback: list[Feedback]
    citations: list[Citation]


@dataclass(frozen=True, slots=True)
class Visitor:
    """A visitor (person or AI agent) of a site, with its key/value answers."""

    id: uuid.UUID
    name: str
    agent_type: str | None
    purpose: str | None
    visit_time: datetime
    visit_count: int
    created_at: datetime
    answers: dict[str, str]


@dataclass(frozen=True, slots=True)
class SurveyResponse:
    """A user's answers to a named survey, and the tokens it granted (0 if none)."""

    id: uuid.UUID
    user_id: uuid.UUID
    survey: str
    answers: dict[str, Any]
    tokens_granted: int
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One change of a user's token balance."""

    id: uuid.UUID
    user_id: uuid.UUID
    delta: int
    balance_after: int
    reason: str
    message_id: uuid.UUID | None
    survey_response_id: uuid.UUID | None
    grant_key: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Token and cost totals of one group (a conversation, user, model or UTC day)."""

    key: str
    messages: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    #: Of ``input_tokens``: served from the provider's prompt cache.
    cached_input_tokens: int = 0
    #: Of ``output_tokens``: reasoning tokens.
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An append-only audit event; ``hash`` chains it to the one before."""

    seq: int
    id: uuid.UUID
    user_id: uuid.UUID | None
    event_type: str
    category: AuditCategory
    severity: AuditSeverity
    description: str | None
    metadata: dict[str, Any] | None
    created_at: datetime
    hash: str
    redacted: bool


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The result of checking the audit hash chain."""

    ok: bool
    checked: int
    first_broken_seq: int | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class KnowledgeChunk:
    """A chunk of a knowledge source."""

    id: uuid.UUID
    source: str
    external_id: str
    title: str | None
    content: str
    metadata: dict[str, Any] | None
    content_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SearchPage(Generic[T]):
    """One page of search results, read by keyset like :class:`Page`.

    ``ignored`` lists the query's words no backend searches (shorter than 3 characters, or
    stop words such as "the"): a query made only of those finds nothing.
    """

    items: list[T]
    has_more: bool
    first_cursor: str | None
    last_cursor: str | None
    ignored: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class MessageHit:
    """A message a search found: ``snippet`` is an excerpt of its content, ``highlights``
    the ``(start, end)`` offsets of the matched words in the snippet; ``score`` is the
    engine's relevance (higher is better; comparable within one search only)."""

    message: Message
    conversation_title: str | None
    score: float
    snippet: str
    highlights: tuple[tuple[int, int], ...]

    def marked(self, before: str = "<mark>", after: str = "</mark>") -> str:
        """The snippet with the matches wrapped in ``before`` and ``after`` (not escaped)."""
        return _marked(self.snippet, self.highlights, before, after)


@dataclass(frozen=True, slots=True)
class ConversationHit:
    """A conversation whose title a search found (the sidebar's search box)."""

    conversation: Conversation
    score: float
    snippet: str
    highlights: tuple[tuple[int, int], ...]

    def marked(self, before: str = "<mark>", after: str = "</mark>") -> str:
        """The title with the matches wrapped in ``before`` and ``after`` (not escaped)."""
        return _marked(self.snippet, self.highlights, before, after)


def _marked(text: str, spans: tuple[tuple[int, int], ...], before: str, after: str) -> str:
    parts: list[str] = []
    position = 0
    for start, end in spans:
        parts += [text[position:start], before, text[start:end], after]
        position = end
    parts.append(text[position:])
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class ChunkHit:
    """A knowledge chunk a retrieval found, at ``rank`` (1 is best). ``score`` is the fused
    score (reciprocal-rank fusion) in a hybrid search, the similarity in a vector search
    (higher is better: cosine similarity, dot product, or minus the L2 distance) and the
    engine's relevance in a text search; ``text_rank`` and ``vector_rank`` say where each
    part ranked the chunk (``None``: not found by that part)."""

    chunk: KnowledgeChunk
    rank: int
    score: float
    text_rank: int | None
    vector_rank: int | None


@dataclass(frozen=True, slots=True)
class KnowledgeSource:
    """The embedding settings of a knowledge source."""

    source: str
    dimension: int
    metric: Literal["cosine", "l2", "dot"]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VectorEngine:
    """What scores vector searches on a database: ``name`` is ``"sqlite-vec"`` (inside
    SQLite), ``"numpy"`` or ``"python"`` (an exact scan in the client), with its
    ``version``; ``exact`` says whether results are exact (every engine chatledger uses is);
    ``extensions`` lists the vector extensions the database offers, used or not
    (``"pgvector 0.8.0"``, ``"mariadb-vector 11.8.2"``, ``"sqlite-vec v0.1.9"``)."""

    name: str
    version: str | None
    exact: bool
    extensions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UpsertReport:
    """What a bulk upsert did."""

    inserted: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's stored facts (never its secret)."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str | None
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """A new API key and its secret, which is shown this once and never stored."""

    key: ApiKey
    secret: str

    def __repr__(self) -> str:
        return f"CreatedApiKey(key={self.key!r}, secret='***')"


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What erasing a user removed: rows deleted per table, audit events redacted."""

    user_id: uuid.UUID
    deleted: dict[str, int]
    redacted_audit_events: int


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What a retention run did (or, in a dry run, would do)."""

    dry_run: bool
    action: Literal["archive", "delete"]
    cutoff: datetime
    conversations: int
    messages: int
