"""HTTP idempotency keys: the stored response knows its message

``idempotent_requests.message_id`` names the message a stored response carries, with a foreign
key that deletes the response with the message (a hard delete, retention, a user's erasure);
erasing a message's content deletes the responses that carry it. Rows stored before this
revision carry no message id: they are deleted here (a retry of one runs its append again, and
the message's own idempotency key answers with the message already written).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM idempotent_requests WHERE state = 'done'")
    with op.batch_alter_table("idempotent_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.Uuid(), nullable=True))
        batch_op.create_index("ix_idempotent_requests_message_id", ["message_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_idempotent_requests_message_id_messages",
            "messages",
            ["message_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("idempotent_requests", schema=None) as batch_op:
        batch_op.drop_constraint("fk_idempotent_requests_message_id_messages", type_="foreignkey")
        batch_op.drop_index("ix_idempotent_requests_message_id")
        batch_op.drop_column("message_id")
