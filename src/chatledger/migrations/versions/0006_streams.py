"""Streaming replies: message status and usage details, live streams and their chunks,
token holds

Every existing message is ``completed``; every balance holds nothing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 11:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import chatledger._types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("status_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("cached_input_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reasoning_tokens", sa.Integer(), nullable=True))
    op.execute("UPDATE messages SET status = 'completed'")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column("status", existing_type=sa.String(length=16), nullable=False)
        batch_op.create_check_constraint(
            "usage_details", "cached_input_tokens >= 0 AND reasoning_tokens >= 0"
        )
        batch_op.create_check_constraint(
            "status", "status IN ('streaming', 'completed', 'incomplete', 'failed')"
        )
    with op.batch_alter_table("token_balances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held", sa.BigInteger(), nullable=True))
    op.execute("UPDATE token_balances SET held = 0")
    with op.batch_alter_table("token_balances", schema=None) as batch_op:
        batch_op.alter_column("held", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_check_constraint("held", "held >= 0 AND held <= balance")
    op.create_table(
        "message_streams",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("char_count", sa.Integer(), nullable=False),
        sa.Column("lease_seconds", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", chatledger._types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("hold", sa.BigInteger(), nullable=True),
        sa.Column("charge_reason", sa.String(length=200), nullable=True),
        sa.Column("started_at", chatledger._types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", chatledger._types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", chatledger._types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "chunk_count >= 0 AND char_count >= 0 AND lease_seconds >= 1 AND hold >= 1",
            name=op.f("ck_message_streams_counts"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_message_streams_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_streams_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_streams")),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
    )
    with op.batch_alter_table("message_streams", schema=None) as batch_op:
        batch_op.create_index("ix_message_streams_conversation_id", ["conversation_id"])
        batch_op.create_index("ix_message_streams_lease_expires_at", ["lease_expires_at"])
    op.create_table(
        "stream_chunks",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("start_char", sa.Integer(), nullable=False),
        sa.Column(
            "text",
            sa.Text()
            .with_variant(mysql.LONGTEXT(), "mariadb")
            .with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=False,
        ),
        sa.Column("created_at", chatledger._types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("idx >= 0 AND start_char >= 0", name=op.f("ck_stream_chunks_position")),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message_streams.message_id"],
            name=op.f("fk_stream_chunks_message_id_message_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "idx", name=op.f("pk_stream_chunks")),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
    )


def downgrade() -> None:
    op.drop_table("stream_chunks")
    op.drop_table("message_streams")  # its indexes go with it
    with op.batch_alter_table("token_balances", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_token_balances_held"), type_="check")
        batch_op.drop_column("held")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_messages_status"), type_="check")
        batch_op.drop_constraint(op.f("ck_messages_usage_details"), type_="check")
        batch_op.drop_column("reasoning_tokens")
        batch_op.drop_column("cached_input_tokens")
        batch_op.drop_column("status_reason")
        batch_op.drop_column("status")
