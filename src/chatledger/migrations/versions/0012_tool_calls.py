"""Tool calls: the calls an assistant message asks for, and the tool messages answering them

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-03 13:31:46
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import chatledger._types

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tool_calls",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("message_seq", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("arguments", _json(), nullable=False),
        sa.Column("metadata", _json(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result_message_id", sa.Uuid(), nullable=True),
        sa.Column("result_seq", sa.Integer(), nullable=True),
        sa.Column("requested_at", chatledger._types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", chatledger._types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(status = 'pending' AND result_seq IS NULL AND answered_at IS NULL)"
            " OR (status <> 'pending' AND result_seq > message_seq AND answered_at IS NOT NULL)",
            name=op.f("ck_tool_calls_answer"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'success', 'error')", name=op.f("ck_tool_calls_status")
        ),
        sa.CheckConstraint("position >= 0 AND latency_ms >= 0", name=op.f("ck_tool_calls_counts")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_tool_calls_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_tool_calls_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["result_message_id"],
            ["messages.id"],
            name=op.f("fk_tool_calls_result_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "call_id", name=op.f("pk_tool_calls")),
        sa.UniqueConstraint(
            "message_id", "position", name=op.f("uq_tool_calls_message_id_position")
        ),
        sa.UniqueConstraint("result_message_id", name=op.f("uq_tool_calls_result_message_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.create_index("ix_tool_calls_name", ["name", "requested_at"], unique=False)
        batch_op.create_index("ix_tool_calls_status", ["status", "requested_at"], unique=False)
        batch_op.create_index(
            "ix_tool_calls_result", ["conversation_id", "result_seq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_tool_calls_result")
        batch_op.drop_index("ix_tool_calls_status")
        batch_op.drop_index("ix_tool_calls_name")
    op.drop_table("tool_calls")
