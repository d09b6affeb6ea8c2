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
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ._types import JSONDocument, LongText, Money, UTCDateTime

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
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConversationRow(Base):
    """A chat thread. ``message_count`` and ``last_message_at`` are maintained by appends, in
    the same transaction as the message insert."""

    __tablename__ = "conversations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(TITLE_MAX))
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

    __table_args__ = (
        CheckConstraint(_in("status", CONVERSATION_STATUSES), name="status"),
        CheckConstraint("message_count >= 0", name="message_count"),
        Index("ix_conversations_owner_activity", "owner_id", "last_activity_at", "id"),
        MYSQL_TABLE_OPTIONS,
    )


class MessageRow(Base):
    """One message. Append-only; keyed by ``(conversation_id, seq)``, so rows of one
    conversation are contiguous (clustered on InnoDB) and the table can be sharded by
    ``conversation_id``."""

    __tablename__ = "messages"

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(LongText)
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

    __table_args__ = (
        PrimaryKeyConstraint("conversation_id", "seq"),
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint("seq >= 1", name="seq"),
        CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0 AND latency_ms >= 0 AND cost >= 0",
            name="usage_non_negative",
        ),
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


users: Final[Table] = Base.metadata.tables["users"]
conversations: Final[Table] = Base.metadata.tables["conversations"]
messages: Final[Table] = Base.metadata.tables["messages"]

#: Unique constraints and indexes -> the field whose value is taken.
UNIQUE_FIELDS: Final[dict[str, str]] = {
    "uq_users_external_id": "external_id",
    "uq_users_email": "email",
    "uq_users_username": "username",
    "uq_messages_id": "id",
    "uq_messages_conversation_id_idempotency_key": "idempotency_key",
    "pk_messages": "seq",
}
