"""A covering index of messages for usage reports over a time window

Revision ID: 0011
Revises: 0004
Create Date: 2026-12-03 10:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["created_at", "model", "input_tokens", "output_tokens", "cost", "conversation_id"]


def upgrade() -> None:
    op.create_index("ix_messages_usage", "messages", COLUMNS, unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_usage", table_name="messages")
