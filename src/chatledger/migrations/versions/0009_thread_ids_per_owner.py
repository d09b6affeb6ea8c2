"""LangGraph thread ids and LlamaIndex chat-store keys per owner

``graph_threads`` gains ``owner_id`` (the owner of the bound conversation, filled from it), and
a thread id is unique per owner instead of globally: two users may use the same thread id or
key without seeing each other's data.

The downgrade refuses while two owners share a thread id (the old global uniqueness cannot
hold them); delete one of the two bindings first.

Revision ID: 0009
Revises: 0014
Create Date: 2026-12-03 13:34:34
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("graph_threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE graph_threads SET owner_id = (SELECT c.owner_id FROM conversations c "
        "WHERE c.id = graph_threads.conversation_id)"
    )
    with op.batch_alter_table("graph_threads", schema=None) as batch_op:
        batch_op.alter_column("owner_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_constraint(batch_op.f("uq_graph_threads_thread_id"), type_="unique")
        batch_op.create_index(batch_op.f("ix_graph_threads_thread_id"), ["thread_id"])
        batch_op.create_unique_constraint(
            batch_op.f("uq_graph_threads_owner_id_thread_id"), ["owner_id", "thread_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_graph_threads_owner_id_users"),
            "users",
            ["owner_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    shared = (
        op.get_bind()
        .execute(
            sa.text("SELECT thread_id FROM graph_threads GROUP BY thread_id HAVING COUNT(*) > 1")
        )
        .scalars()
        .first()
    )
    if shared is not None:
        raise RuntimeError(
            f"cannot downgrade below 0009: thread id {shared!r} is used by several owners "
            "(a thread id was globally unique before); delete all but one of its bindings"
        )
    with op.batch_alter_table("graph_threads", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_graph_threads_owner_id_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_graph_threads_owner_id_thread_id"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_graph_threads_thread_id"))
        batch_op.create_unique_constraint(batch_op.f("uq_graph_threads_thread_id"), ["thread_id"])
        batch_op.drop_column("owner_id")
