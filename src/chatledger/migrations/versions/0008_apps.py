"""Hidden and erased messages; knowledge chunks found by external id alone

``messages`` gains ``hidden_at``, ``hidden_by`` (who hid it: a user id, no foreign key, like
the fork provenance) and ``erased_at`` (an admin erased its content for good). The rows stay:
``seq`` is gap-free and the trees' parent links hold. ``knowledge_chunks`` gets an index on
``external_id`` for look-ups that do not name the source.

Revision ID: 0008
Revises: 0012
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chatledger._types

revision: str = "0008"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "messages", sa.Column("hidden_at", chatledger._types.UTCDateTime(), nullable=True)
    )
    op.add_column("messages", sa.Column("hidden_by", sa.Uuid(), nullable=True))
    op.add_column(
        "messages", sa.Column("erased_at", chatledger._types.UTCDateTime(), nullable=True)
    )
    op.create_index(
        "ix_knowledge_chunks_external_id", "knowledge_chunks", ["external_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_knowledge_chunks_external_id", table_name="knowledge_chunks")
    # Not a batch: on SQLite that would rebuild ``messages`` and lose its full-text triggers;
    # SQLite (3.35+) drops a column in place.
    for column in ("erased_at", "hidden_by", "hidden_at"):
        op.drop_column("messages", column)
