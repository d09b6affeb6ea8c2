"""The tables, as typed declarative models. The Alembic history in ``migrations/`` must agree
with them: CI fails when autogenerate finds a difference.

Column sizes are defined once here and used by both the DDL and input validation. Every
constraint and index has a stable name (``NAMING_CONVENTION``), so that migrations can refer to
them and errors can be mapped back to the field at fault.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ._types import (
    JSONDocument,
    LongBlob,
    LongText,
    Money,
    SearchableText,
    UTCDateTime,
    searchable_string,
)

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: MariaDB table options: InnoDB, full UTF-8, and byte-wise NO PAD comparison, so that uniqueness
#: and equality behave as on PostgreSQL and SQLite: no case or accent folding, and trailing
#: spaces count (``utf8mb4_bin`` is PAD SPACE: it would make "k" and "k " the same key).
MYSQL_TABLE_OPTIONS: Final[dict[str, str]] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}

ROLES: Final = ("user", "assistant", "system", "tool")
CONVERSATION_STATUSES: Final = ("active", "archived", "closed", "deleted")
#: The life cycle of a message: ``streaming`` while a reply is being written (docs/streaming.md),
#: then ``completed``, ``incomplete`` (aborted or swept, with a reason) or ``failed``.
MESSAGE_STATUSES: Final = ("streaming", "completed", "incomplete", "failed")
#: The state of a tool call (docs/tools.md): ``pending`` until a ``tool`` message answers it,
#: then ``success`` or ``error`` (the tool failed; its result says why).
TOOL_CALL_STATUSES: Final = ("pending", "success", "error")

# Column sizes, in characters.
EXTERNAL_ID_MAX: Final = 255
EMAIL_MAX: Final = 320
USERNAME_MAX: Final = 100
DISPLAY_NAME_MAX: Final = 200
USER_ROLE_MAX: Final = 50
TITLE_MAX: Final = 500
INTENT_MAX: Final = 100
MODEL_MAX: Final = 200
REQUEST_ID_MAX: Final = 200
IDEMPOTENCY_KEY_MAX: Final = 200
INT32_MAX: Final = 2**31 - 1
#: Largest token amount one credit or debit may move (exact in a double, too).
TOKEN_AMOUNT_MAX: Final = 2**53
PASSWORD_HASH_MAX: Final = 255
FEEDBACK_COMMENT_MAX: Final = 10_000
CATEGORY_MAX: Final = 100
AGENT_NAME_MAX: Final = 100
AGENT_TYPE_MAX: Final = 500
FORM_TEXT_MAX: Final = 2_000
URL_MAX: Final = 2_048
SNIPPET_MAX: Final = 20_000
VISITOR_NAME_MAX: Final = 100
PURPOSE_MAX: Final = 500
ANSWER_KEY_MAX: Final = 50
ANSWER_VALUE_MAX: Final = 500
SURVEY_NAME_MAX: Final = 100
REASON_MAX: Final = 200
GRANT_KEY_MAX: Final = 200
EVENT_TYPE_MAX: Final = 100
DESCRIPTION_MAX: Final = 10_000
SOURCE_MAX: Final = 200
API_KEY_NAME_MAX: Final = 100
API_KEY_PREFIX_MAX: Final = 16
SHA256_HEX: Final = 64
#: A tool call's id as the provider or framework drew it ("call_…", "toolu_…"), and a tool's name.
TOOL_CALL_ID_MAX: Final = 200
TOOL_NAME_MAX: Final = 200
#: Tool calls one assistant message may carry (parallel tool calls).
TOOL_CALLS_PER_MESSAGE_MAX: Final = 128

THUMBS: Final = ("up", "down")
AUDIT_CATEGORIES: Final = ("security", "compliance", "access", "system", "general")
AUDIT_SEVERITIES: Final = ("debug", "info", "warning", "error", "critical")
IDEMPOTENT_REQUEST_STATES: Final = ("running", "done")
#: How embeddings of a knowledge source are compared.
METRICS: Final = ("cosine", "l2", "dot")
EMBEDDING_DIMENSION_MAX: Final = 4_096


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base holding chatledger's :class:`MetaData`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UserRow(Base):
    """A person or agent that owns conversations."""

    __tablename__ = "users"
    __table_args__ = (MYSQL_TABLE_OPTIONS,)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(EXTERNAL_ID_MAX), unique=True)
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX), unique=True)
    username: Mapped[str | None] = mapped_column(String(USERNAME_MAX), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_MAX))
    role: Mapped[str] = mapped_column(String(USER_ROLE_MAX))
    #: argon2 hash (PHC string), or None for users who sign in elsewhere.
    password_hash: Mapped[str | None] = mapped_column(String(PASSWORD_HASH_MAX))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConversationRow(Base):
    """A chat thread. ``message_count`` and ``last_message_at`` are maintained by appends, in
    the same transaction as the message insert."""

    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(searchable_string(TITLE_MAX))
    intent: Mapped[str | None] = mapped_column(String(INTENT_MAX))
    status: Mapped[str] = mapped_column(String(16))
    message_count: Mapped[int] = mapped_column(Integer)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: ``last_message_at``, or ``created_at`` before the first message: the sidebar order.
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The ``seq`` of the active leaf, the end of the path the next reply continues (NULL
    #: before the first message). Moved by every append, in its transaction, and by switches.
    active_leaf_seq: Mapped[int | None] = mapped_column(Integer)
    #: How many messages the active path holds (root to active leaf).
    path_length: Mapped[int] = mapped_column(Integer)
    #: Provenance of a fork: the conversation and message it was forked from. Plain ids, no
    #: foreign keys: the source may belong to another owner and may be deleted or erased
    #: later (and a key to ``messages`` would make the two tables a cycle).
    forked_from_conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    forked_from_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        CheckConstraint(_in("status", CONVERSATION_STATUSES), name="status"),
        CheckConstraint("message_count >= 0", name="message_count"),
        CheckConstraint(
            "path_length >= 0 AND path_length <= message_count"
            " AND (active_leaf_seq IS NULL) = (message_count = 0)"
            " AND active_leaf_seq <= message_count",
            name="active_path",
        ),
        Index("ix_conversations_owner_activity", "owner_id", "last_activity_at", "id"),
        MYSQL_TABLE_OPTIONS,
    )


def _self_foreign_keys(
    ddl: Any,
    target: Any,
    bind: Any,
    tables: Any = None,
    state: Any = None,
    *,
    dialect: Dialect,
    compiler: Any = None,
    checkfirst: bool,
) -> bool:
    """``create_all`` emits ``fk_messages_parent`` where a self-referencing foreign key
    works (not on MariaDB: see ``_backends.Backend.self_foreign_keys``; the migration makes
    its triggers)."""
    return dialect.name != "mysql"


class MessageRow(Base):
    """One message. Append-only; keyed by ``(conversation_id, seq)``, so rows of one
    conversation are contiguous (clustered on InnoDB) and the table can be sharded by
    ``conversation_id``.

    A message is a node of its conversation's tree (docs/trees.md): ``parent_seq`` names its
    parent in the same conversation (a composite foreign key; on MariaDB, whose cascading
    deletes cannot follow a chain of self-references, a trigger made by ``_backends``), which
    always precedes it, so no cycle can exist. ``on_active_path`` is the one mutable column:
    the conversation's active path materialised, so that its last n messages are one index
    range; an append or a switch rewrites it for the messages that leave or join the path."""

    __tablename__ = "messages"

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(SearchableText)
    intent: Mapped[str | None] = mapped_column(String(INTENT_MAX))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDocument)
    model: Mapped[str | None] = mapped_column(String(MODEL_MAX))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(REQUEST_ID_MAX))
    idempotency_key: Mapped[str | None] = mapped_column(String(IDEMPOTENCY_KEY_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    parent_seq: Mapped[int | None] = mapped_column(Integer)
    #: 0 for a root.
    depth: Mapped[int] = mapped_column(Integer)
    #: The rank among the children of the parent (the roots, for a root), 0 first.
    sibling_index: Mapped[int] = mapped_column(Integer)
    on_active_path: Mapped[bool] = mapped_column(Boolean(create_constraint=False))
    #: ``streaming`` until a streamed reply is finished; every other message is ``completed``
    #: when written. ``content`` holds the final text from the finish on (docs/streaming.md).
    status: Mapped[str] = mapped_column(String(16))
    #: Why a reply ended ``incomplete`` or ``failed``.
    status_reason: Mapped[str | None] = mapped_column(String(REASON_MAX))
    #: Input tokens the provider served from its prompt cache (part of ``input_tokens``).
    cached_input_tokens: Mapped[int | None] = mapped_column(Integer)
    #: Reasoning ("thinking") tokens the provider reported (part of ``output_tokens``).
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)
    #: When the message was hidden from history reads, and by whom (a user id; no foreign
    #: key: the record outlives the user). Set again by an erasure.
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    #: When an admin erased its content and metadata for good (docs/apps.md).
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        PrimaryKeyConstraint("conversation_id", "seq"),
        ForeignKeyConstraint(
            ["conversation_id", "parent_seq"],
            ["messages.conversation_id", "messages.seq"],
            name="fk_messages_parent",
        ).ddl_if(callable_=_self_foreign_keys),
        Index("ix_messages_parent", "conversation_id", "parent_seq"),
        Index("ix_messages_active_path", "conversation_id", "on_active_path", "seq"),
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint("seq >= 1", name="seq"),
        CheckConstraint(
            "(parent_seq IS NULL AND depth = 0)"
            " OR (parent_seq >= 1 AND parent_seq < seq AND depth >= 1 AND depth < seq)",
            name="parent",
        ),
        CheckConstraint("sibling_index >= 0", name="sibling_index"),
        CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0 AND latency_ms >= 0 AND cost >= 0",
            name="usage_non_negative",
        ),
        # Usage reports over a time window (the console's usage page, usage.totals with
        # since/until): a range of this index holds every column they read, so they never
        # touch the table's rows.
        Index(
            "ix_messages_usage",
            "created_at",
            "model",
            "input_tokens",
            "output_tokens",
            "cost",
            "conversation_id",
        ),
        CheckConstraint("cached_input_tokens >= 0 AND reasoning_tokens >= 0", name="usage_details"),
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        Index(
            "uq_messages_conversation_id_idempotency_key",
            "conversation_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
        MYSQL_TABLE_OPTIONS,
    )


class MessageStreamRow(Base):
    """The stream of a reply begun in state ``streaming``. Live until its finish (or the
    sweep, once ``lease_expires_at`` has passed without a flush); then ``finished_at`` is set
    and its chunks are gone (the text is the message's content).

    ``hold`` tokens of the conversation owner are reserved (``token_balances.held``) until the
    finish settles the real amount or the sweep releases them."""

    __tablename__ = "message_streams"

    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    #: How many chunks and characters have been flushed.
    chunk_count: Mapped[int] = mapped_column(Integer)
    char_count: Mapped[int] = mapped_column(Integer)
    #: How long a flush renews the lease for, and when it runs out.
    lease_seconds: Mapped[int] = mapped_column(Integer)
    #: ``NULL`` once finished.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Tokens reserved until the finish (``NULL``: none, or settled).
    hold: Mapped[int | None] = mapped_column(BigInteger)
    charge_reason: Mapped[str | None] = mapped_column(String(REASON_MAX))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_message_streams_conversation_id", "conversation_id"),
        Index("ix_message_streams_lease_expires_at", "lease_expires_at"),
        CheckConstraint(
            "chunk_count >= 0 AND char_count >= 0 AND lease_seconds >= 1 AND hold >= 1",
            name="counts",
        ),
        MYSQL_TABLE_OPTIONS,
    )


class StreamChunkRow(Base):
    """One flushed batch of deltas of a streaming reply: characters ``[start_char,
    start_char + len(text))`` of its text. Deleted with the stream when the text moves to the
    message at the finish."""

    __tablename__ = "stream_chunks"

    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("message_streams.message_id", ondelete="CASCADE")
    )
    idx: Mapped[int] = mapped_column(Integer)
    start_char: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        PrimaryKeyConstraint("message_id", "idx"),
        CheckConstraint("idx >= 0 AND start_char >= 0", name="position"),
        MYSQL_TABLE_OPTIONS,
    )


class MessageFeedbackRow(Base):
    """One rater's current rating of one message (rating again replaces it)."""

    __tablename__ = "message_feedback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE")
    )
    rater_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    thumb: Mapped[str | None] = mapped_column(String(4))
    score: Mapped[float | None] = mapped_column(Double)
    scale_min: Mapped[float | None] = mapped_column(Double)
    scale_max: Mapped[float | None] = mapped_column(Double)
    categories: Mapped[list[str] | None] = mapped_column(JSONDocument)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("message_id", "rater_id"),
        Index("ix_message_feedback_conversation_id", "conversation_id"),
        Index("ix_message_feedback_rater_id", "rater_id"),
        CheckConstraint(_in("thumb", THUMBS), name="thumb"),
        CheckConstraint("thumb IS NOT NULL OR score IS NOT NULL", name="rated"),
        MYSQL_TABLE_OPTIONS,
    )


class ProductFeedbackRow(Base):
    """A standalone product-feedback form, as anonymous visitors or agents submit it."""

    __tablename__ = "product_feedback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    agent_name: Mapped[str] = mapped_column(String(AGENT_NAME_MAX))
    agent_type: Mapped[str | None] = mapped_column(String(AGENT_TYPE_MAX))
    issues: Mapped[str | None] = mapped_column(Text)
    feature_requests: Mapped[str | None] = mapped_column(Text)
    additional_comments: Mapped[str | None] = mapped_column(Text)
    usability_rating: Mapped[int | None] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("usability_rating BETWEEN 1 AND 10", name="usability_rating"),
        Index("ix_product_feedback_submitted_at", "submitted_at", "id"),
        MYSQL_TABLE_OPTIONS,
    )


class KnowledgeChunkRow(Base):
    """A chunk of a knowledge source, for retrieval; unique by (source, external_id)."""

    __tablename__ = "knowledge_chunks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(String(SOURCE_MAX))
    external_id: Mapped[str] = mapped_column(String(EXTERNAL_ID_MAX))
    title: Mapped[str | None] = mapped_column(String(TITLE_MAX))
    content: Mapped[str] = mapped_column(SearchableText)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDocument)
    #: The chunk's embedding (float32 little-endian; dimension and metric per source in
    #: ``knowledge_sources``); cleared when the content changes without a new one.
    embedding: Mapped[bytes | None] = mapped_column(LongBlob)
    content_hash: Mapped[str] = mapped_column(String(SHA256_HEX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # Look-ups by external id that do not name the source.
        Index("ix_knowledge_chunks_external_id", "external_id"),
        MYSQL_TABLE_OPTIONS,
    )


class KnowledgeSourceRow(Base):
    """The embedding space of a knowledge source: every embedding of its chunks has
    ``dimension`` floats and is compared with ``metric``."""

    __tablename__ = "knowledge_sources"

    source: Mapped[str] = mapped_column(String(SOURCE_MAX), primary_key=True)
    dimension: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_in("metric", METRICS), name="metric"),
        CheckConstraint(f"dimension BETWEEN 1 AND {EMBEDDING_DIMENSION_MAX}", name="dimension"),
        MYSQL_TABLE_OPTIONS,
    )


class CitationRow(Base):
    """A source an assistant message cites: a knowledge chunk or an external URL."""

    __tablename__ = "citations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE")
    )
    chunk_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("knowledge_chunks.id", ondelete="SET NULL")
    )
    url: Mapped[str | None] = mapped_column(String(URL_MAX))
    title: Mapped[str | None] = mapped_column(String(TITLE_MAX))
    snippet: Mapped[str | None] = mapped_column(LongText)
    start_char: Mapped[int | None] = mapped_column(Integer)
    end_char: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Double)
    rank: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_citations_message_id", "message_id"),
        Index("ix_citations_chunk_id", "chunk_id"),
        Index("ix_citations_conversation_id", "conversation_id"),
        CheckConstraint("start_char >= 0 AND end_char >= start_char", name="span"),
        MYSQL_TABLE_OPTIONS,
    )


class VisitorRow(Base):
    """A visitor (person or AI agent) of a site. ``identity`` is the SHA-256 of the caller's
    visitor key, or of the normalised (name, agent_type): a repeat visit finds the same row."""

    __tablename__ = "visitors"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    identity: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    name: Mapped[str] = mapped_column(String(VISITOR_NAME_MAX))
    agent_type: Mapped[str | None] = mapped_column(String(AGENT_TYPE_MAX))
    purpose: Mapped[str | None] = mapped_column(String(PURPOSE_MAX))
    visit_time: Mapped[datetime] = mapped_column(UTCDateTime)
    visit_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("visit_count >= 1", name="visit_count"),
        Index("ix_visitors_visit_time", "visit_time", "id"),
        MYSQL_TABLE_OPTIONS,
    )


class VisitorAnswerRow(Base):
    """One key/value answer of a visitor."""

    __tablename__ = "visitor_answers"

    visitor_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("visitors.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(ANSWER_KEY_MAX), primary_key=True)
    value: Mapped[str] = mapped_column(String(ANSWER_VALUE_MAX))

    __table_args__ = (MYSQL_TABLE_OPTIONS,)


class SurveyResponseRow(Base):
    """A user's answers to a named survey."""

    __tablename__ = "survey_responses"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    survey: Mapped[str] = mapped_column(String(SURVEY_NAME_MAX))
    answers: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    tokens_granted: Mapped[int] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_survey_responses_user_id", "user_id", "survey"),
        MYSQL_TABLE_OPTIONS,
    )


class TokenBalanceRow(Base):
    """A user's token balance; always the sum of the user's ledger entries."""

    __tablename__ = "token_balances"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[int] = mapped_column(BigInteger)
    #: Tokens reserved by streaming replies (the sum of their ``message_streams.hold``); a
    #: debit or a new hold may use only ``balance - held``.
    held: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance"),
        CheckConstraint("held >= 0 AND held <= balance", name="held"),
        MYSQL_TABLE_OPTIONS,
    )


class TokenLedgerRow(Base):
    """One change of a user's balance. ``grant_key`` makes a grant happen at most once."""

    __tablename__ = "token_ledger"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(REASON_MAX))
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="SET NULL")
    )
    survey_response_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("survey_responses.id", ondelete="SET NULL")
    )
    grant_key: Mapped[str | None] = mapped_column(String(GRANT_KEY_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("user_id", "grant_key"),
        Index("ix_token_ledger_user_id", "user_id", "created_at"),
        Index("ix_token_ledger_message_id", "message_id"),
        Index("ix_token_ledger_survey_response_id", "survey_response_id"),
        CheckConstraint("balance_after >= 0", name="balance_after"),
        MYSQL_TABLE_OPTIONS,
    )


class AuditEventRow(Base):
    """An append-only audit event, chained: ``hash = SHA-256(prev_hash, seq, content_digest)``.
    No foreign key on ``user_id``: events outlive users (erasure redacts them instead)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(EVENT_TYPE_MAX))
    category: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    content_digest: Mapped[str] = mapped_column(String(SHA256_HEX))
    prev_hash: Mapped[str] = mapped_column(String(SHA256_HEX))
    hash: Mapped[str] = mapped_column(String(SHA256_HEX))
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_in("category", AUDIT_CATEGORIES), name="category"),
        CheckConstraint(_in("severity", AUDIT_SEVERITIES), name="severity"),
        Index("ix_audit_events_user_id", "user_id", "seq"),
        Index("ix_audit_events_event_type", "event_type", "seq"),
        Index("ix_audit_events_created_at", "created_at"),
        MYSQL_TABLE_OPTIONS,
    )


class AuditChainRow(Base):
    """The head of the audit chain: one row, locked by every append to serialise them."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(SHA256_HEX))

    __table_args__ = (MYSQL_TABLE_OPTIONS,)


class ApiKeyRow(Base):
    """An API key: only a SHA-256 of the secret and a lookup prefix are stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(API_KEY_NAME_MAX))
    prefix: Mapped[str] = mapped_column(String(API_KEY_PREFIX_MAX), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(SHA256_HEX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_api_keys_user_id", "user_id"), MYSQL_TABLE_OPTIONS)


class IdempotentRequestRow(Base):
    """An HTTP request sent with an ``Idempotency-Key``, per API key: claimed (``running``)
    before its work starts, then ``done`` with the response to replay. The request hash tells a
    retry (same body) from a misuse of the key (another body). ``message_id`` is the message
    the response carries: deleting the message deletes the stored response with it (foreign
    key), and erasing its content deletes it too (``_ops.redactions.erase``), so no copy of the
    text outlives it."""

    __tablename__ = "idempotent_requests"

    api_key_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(SHA256_HEX))
    state: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE")
    )

    __table_args__ = (
        CheckConstraint(_in("state", IDEMPOTENT_REQUEST_STATES), name="state"),
        Index("ix_idempotent_requests_created_at", "created_at"),
        Index("ix_idempotent_requests_message_id", "message_id"),
        MYSQL_TABLE_OPTIONS,
    )


class ToolCallRow(Base):
    """A tool call an assistant message asked for, and its answer (docs/tools.md).

    Keyed by ``(conversation_id, call_id)``: a call id names one call in its conversation, so
    a ``tool`` message answers exactly one call, and a call is answered at most once (its row
    goes from ``pending`` to ``success`` or ``error`` once, in the transaction that appends the
    result). ``message_seq``/``result_seq`` repeat the two messages' ``seq`` so that history
    windows keep calls and results together without joining ``messages``."""

    __tablename__ = "tool_calls"

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    call_id: Mapped[str] = mapped_column(String(TOOL_CALL_ID_MAX))
    #: The assistant message that asked for the call, and its rank among that message's
    #: calls (parallel calls: 0, 1, 2, ...).
    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE")
    )
    message_seq: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(TOOL_NAME_MAX))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDocument)
    status: Mapped[str] = mapped_column(String(16))
    #: The ``tool`` message that answered it (``NULL`` while pending).
    result_message_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    result_seq: Mapped[int | None] = mapped_column(Integer)
    #: When the asking message and the answer were written.
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: How long the tool ran (given with the result, else ``answered_at - requested_at``).
    latency_ms: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        PrimaryKeyConstraint("conversation_id", "call_id"),
        UniqueConstraint("message_id", "position"),
        Index("ix_tool_calls_name", "name", "requested_at"),
        Index("ix_tool_calls_status", "status", "requested_at"),
        # History windows: the answers inside a window whose call is older (messages.last).
        Index("ix_tool_calls_result", "conversation_id", "result_seq"),
        CheckConstraint(_in("status", TOOL_CALL_STATUSES), name="status"),
        CheckConstraint(
            "(status = 'pending' AND result_seq IS NULL AND answered_at IS NULL)"
            " OR (status <> 'pending' AND result_seq > message_seq AND answered_at IS NOT NULL)",
            name="answer",
        ),
        CheckConstraint("position >= 0 AND latency_ms >= 0", name="counts"),
        MYSQL_TABLE_OPTIONS,
    )


# -- LangGraph checkpoints and framework views (chatledger.integrations) ------------------------


THREAD_ID_MAX: Final = 200
CHECKPOINT_NS_MAX: Final = 200
CHECKPOINT_ID_MAX: Final = 64
CHANNEL_MAX: Final = 200
CHANNEL_VERSION_MAX: Final = 64
TASK_ID_MAX: Final = 200
SERDE_TYPE_MAX: Final = 64


class CheckpointThreadRow(Base):
    """A LangGraph thread bound to the conversation its messages are logged in (one each)."""

    __tablename__ = "graph_threads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    #: The owner of the conversation: thread ids (and chat-store keys) are per owner.
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    thread_id: Mapped[str] = mapped_column(String(THREAD_ID_MAX), index=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("owner_id", "thread_id"),
        MYSQL_TABLE_OPTIONS,
    )


class CheckpointRow(Base):
    """One LangGraph checkpoint, without its channel values (those are blobs by version)."""

    __tablename__ = "graph_checkpoints"

    thread_key: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("graph_threads.id", ondelete="CASCADE")
    )
    checkpoint_ns: Mapped[str] = mapped_column(String(CHECKPOINT_NS_MAX))
    checkpoint_id: Mapped[str] = mapped_column(String(CHECKPOINT_ID_MAX))
    parent_checkpoint_id: Mapped[str | None] = mapped_column(String(CHECKPOINT_ID_MAX))
    type: Mapped[str] = mapped_column(String(SERDE_TYPE_MAX))
    checkpoint: Mapped[bytes] = mapped_column(LongBlob)
    metadata_type: Mapped[str] = mapped_column(String(SERDE_TYPE_MAX))
    metadata_: Mapped[bytes] = mapped_column("metadata", LongBlob)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        PrimaryKeyConstraint("thread_key", "checkpoint_ns", "checkpoint_id"),
        MYSQL_TABLE_OPTIONS,
    )


class CheckpointBlobRow(Base):
    """The value of one channel at one version (shared by the checkpoints that did not
    change it)."""

    __tablename__ = "graph_blobs"

    thread_key: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("graph_threads.id", ondelete="CASCADE")
    )
    checkpoint_ns: Mapped[str] = mapped_column(String(CHECKPOINT_NS_MAX))
    channel: Mapped[str] = mapped_column(String(CHANNEL_MAX))
    version: Mapped[str] = mapped_column(String(CHANNEL_VERSION_MAX))
    type: Mapped[str] = mapped_column(String(SERDE_TYPE_MAX))
    blob: Mapped[bytes | None] = mapped_column(LongBlob)

    __table_args__ = (
        PrimaryKeyConstraint("thread_key", "checkpoint_ns", "channel", "version"),
        MYSQL_TABLE_OPTIONS,
    )


class CheckpointWriteRow(Base):
    """A pending write of a task, stored against the checkpoint it follows."""

    __tablename__ = "graph_writes"

    thread_key: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("graph_threads.id", ondelete="CASCADE")
    )
    checkpoint_ns: Mapped[str] = mapped_column(String(CHECKPOINT_NS_MAX))
    checkpoint_id: Mapped[str] = mapped_column(String(CHECKPOINT_ID_MAX))
    task_id: Mapped[str] = mapped_column(String(TASK_ID_MAX))
    idx: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(CHANNEL_MAX))
    type: Mapped[str] = mapped_column(String(SERDE_TYPE_MAX))
    blob: Mapped[bytes | None] = mapped_column(LongBlob)
    task_path: Mapped[str] = mapped_column(LongText)

    __table_args__ = (
        PrimaryKeyConstraint("thread_key", "checkpoint_ns", "checkpoint_id", "task_id", "idx"),
        MYSQL_TABLE_OPTIONS,
    )


class HiddenMessagesRow(Base):
    """Messages ``first_seq..last_seq`` of a conversation, hidden from the framework views
    (LangChain's ``clear()``, LlamaIndex's deletes). Messages stay append-only: they are
    still in the ledger, its counts and usage totals."""

    __tablename__ = "hidden_messages"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("first_seq >= 1 AND last_seq >= first_seq", name="range"),
        Index("ix_hidden_messages_conversation_id", "conversation_id", "last_seq"),
        MYSQL_TABLE_OPTIONS,
    )


users: Final[Table] = Base.metadata.tables["users"]
conversations: Final[Table] = Base.metadata.tables["conversations"]
messages: Final[Table] = Base.metadata.tables["messages"]
message_feedback: Final[Table] = Base.metadata.tables["message_feedback"]
product_feedback: Final[Table] = Base.metadata.tables["product_feedback"]
knowledge_chunks: Final[Table] = Base.metadata.tables["knowledge_chunks"]
knowledge_sources: Final[Table] = Base.metadata.tables["knowledge_sources"]
citations: Final[Table] = Base.metadata.tables["citations"]
visitors: Final[Table] = Base.metadata.tables["visitors"]
visitor_answers: Final[Table] = Base.metadata.tables["visitor_answers"]
survey_responses: Final[Table] = Base.metadata.tables["survey_responses"]
token_balances: Final[Table] = Base.metadata.tables["token_balances"]
token_ledger: Final[Table] = Base.metadata.tables["token_ledger"]
audit_events: Final[Table] = Base.metadata.tables["audit_events"]
audit_chain: Final[Table] = Base.metadata.tables["audit_chain"]
api_keys: Final[Table] = Base.metadata.tables["api_keys"]
idempotent_requests: Final[Table] = Base.metadata.tables["idempotent_requests"]
graph_threads: Final[Table] = Base.metadata.tables["graph_threads"]
graph_checkpoints: Final[Table] = Base.metadata.tables["graph_checkpoints"]
graph_blobs: Final[Table] = Base.metadata.tables["graph_blobs"]
graph_writes: Final[Table] = Base.metadata.tables["graph_writes"]
hidden_messages: Final[Table] = Base.metadata.tables["hidden_messages"]
message_streams: Final[Table] = Base.metadata.tables["message_streams"]
stream_chunks: Final[Table] = Base.metadata.tables["stream_chunks"]
tool_calls: Final[Table] = Base.metadata.tables["tool_calls"]

#: Table -> the kind of object a row is, as errors name it.
KINDS: Final[dict[str, str]] = {
    "users": "user",
    "conversations": "conversation",
    "messages": "message",
    "knowledge_chunks": "knowledge chunk",
    "knowledge_sources": "knowledge source",
    "survey_responses": "survey response",
    "visitors": "visitor",
    "graph_threads": "checkpoint thread",
    "tool_calls": "tool call",
}

#: Unique constraints and indexes -> the field whose value is taken.
UNIQUE_FIELDS: Final[dict[str, str]] = {
    "uq_users_external_id": "external_id",
    "uq_users_email": "email",
    "uq_users_username": "username",
    "uq_messages_id": "id",
    "uq_messages_conversation_id_idempotency_key": "idempotency_key",
    "pk_messages": "seq",
    "uq_message_feedback_message_id_rater_id": "rater_id",
    "uq_knowledge_chunks_source_external_id": "external_id",
    "uq_visitors_identity": "identity",
    "pk_visitor_answers": "key",
    "uq_token_ledger_user_id_grant_key": "grant_key",
    "uq_api_keys_prefix": "prefix",
    "uq_audit_events_id": "id",
    "pk_audit_events": "seq",
    "pk_idempotent_requests": "key",
    "uq_graph_threads_owner_id_thread_id": "thread_id",
    "uq_graph_threads_conversation_id": "conversation_id",
    "pk_tool_calls": "call_id",
    "uq_tool_calls_result_message_id": "tool_call_id",
}
