"""LangGraph checkpoints (chatledger.integrations) and hidden message ranges

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 18:48:30.440444
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import chatledger._types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "graph_threads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.String(length=200), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", chatledger._types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_graph_threads_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graph_threads")),
        sa.UniqueConstraint("conversation_id", name=op.f("uq_graph_threads_conversation_id")),
        sa.UniqueConstraint("thread_id", name=op.f("uq_graph_threads_thread_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "hidden_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", chatledger._types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "first_seq >= 1 AND last_seq >= first_seq", name=op.f("ck_hidden_messages_range")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_hidden_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hidden_messages")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )
    with op.batch_alter_table("hidden_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_hidden_messages_conversation_id", ["conversation_id", "last_seq"], unique=False
        )

    op.create_table(
        "graph_blobs",
        sa.Column("thread_key", sa.Uuid(), nullable=False),
        sa.Column("checkpoint_ns", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column(
            "blob",
            sa.LargeBinary()
            .with_variant(mysql.LONGBLOB(), "mariadb")
            .with_variant(mysql.LONGBLOB(), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["thread_key"],
            ["graph_threads.id"],
            name=op.f("fk_graph_blobs_thread_key_graph_threads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "thread_key", "checkpoint_ns", "channel", "version", name=op.f("pk_graph_blobs")
        ),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "graph_checkpoints",
        sa.Column("thread_key", sa.Uuid(), nullable=False),
        sa.Column("checkpoint_ns", sa.String(length=200), nullable=False),
        sa.Column("checkpoint_id", sa.String(length=64), nullable=False),
        sa.Column("parent_checkpoint_id", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column(
            "checkpoint",
            sa.LargeBinary()
            .with_variant(mysql.LONGBLOB(), "mariadb")
            .with_variant(mysql.LONGBLOB(), "mysql"),
            nullable=False,
        ),
        sa.Column("metadata_type", sa.String(length=64), nullable=False),
        sa.Column(
            "metadata",
            sa.LargeBinary()
            .with_variant(mysql.LONGBLOB(), "mariadb")
            .with_variant(mysql.LONGBLOB(), "mysql"),
            nullable=False,
        ),
        sa.Column("created_at", chatledger._types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_key"],
            ["graph_threads.id"],
            name=op.f("fk_graph_checkpoints_thread_key_graph_threads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "thread_key", "checkpoint_ns", "checkpoint_id", name=op.f("pk_graph_checkpoints")
        ),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "graph_writes",
        sa.Column("thread_key", sa.Uuid(), nullable=False),
        sa.Column("checkpoint_ns", sa.String(length=200), nullable=False),
        sa.Column("checkpoint_id", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.String(length=200), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column(
            "blob",
            sa.LargeBinary()
            .with_variant(mysql.LONGBLOB(), "mariadb")
            .with_variant(mysql.LONGBLOB(), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "task_path",
            sa.Text()
            .with_variant(mysql.LONGTEXT(), "mariadb")
            .with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["thread_key"],
            ["graph_threads.id"],
            name=op.f("fk_graph_writes_thread_key_graph_threads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "thread_key",
            "checkpoint_ns",
            "checkpoint_id",
            "task_id",
            "idx",
            name=op.f("pk_graph_writes"),
        ),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_nopad_bin",
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("graph_writes")
    op.drop_table("graph_checkpoints")
    op.drop_table("graph_blobs")
    # Its index goes with the table (MariaDB refuses to drop an index a foreign key needs).
    op.drop_table("hidden_messages")
    op.drop_table("graph_threads")
