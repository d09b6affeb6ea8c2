"""Message trees: parents, depth, sibling index, the active path; fork provenance

Every existing conversation becomes a one-branch tree: each message's parent is the one
before it in ``seq`` order, every message is on the active path, and the active leaf is the
last message.

Revision ID: 0005
Revises: 0011
Create Date: 2026-12-03 10:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chatledger._backends import backend_of

revision: str = "0005"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("active_leaf_seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("path_length", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("forked_from_conversation_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("forked_from_message_id", sa.Uuid(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("depth", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sibling_index", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("on_active_path", sa.Boolean(create_constraint=False), nullable=True)
        )
    # Linear history: a chain in seq order, all of it the active path.
    op.execute(
        "UPDATE messages SET parent_seq = CASE WHEN seq > 1 THEN seq - 1 END,"
        " depth = seq - 1, sibling_index = 0, on_active_path = TRUE"
    )
    op.execute(
        "UPDATE conversations SET path_length = message_count,"
        " active_leaf_seq = CASE WHEN message_count > 0 THEN message_count END"
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.alter_column("path_length", existing_type=sa.Integer(), nullable=False)
        batch_op.create_check_constraint(
            "active_path",
            "path_length >= 0 AND path_length <= message_count"
            " AND (active_leaf_seq IS NULL) = (message_count = 0)"
            " AND active_leaf_seq <= message_count",
        )
    backend = backend_of(op.get_bind())
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column("depth", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("sibling_index", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column(
            "on_active_path", existing_type=sa.Boolean(create_constraint=False), nullable=False
        )
        batch_op.create_index("ix_messages_parent", ["conversation_id", "parent_seq"])
        batch_op.create_index(
            "ix_messages_active_path", ["conversation_id", "on_active_path", "seq"]
        )
        batch_op.create_check_constraint(
            "parent",
            "(parent_seq IS NULL AND depth = 0)"
            " OR (parent_seq >= 1 AND parent_seq < seq AND depth >= 1 AND depth < seq)",
        )
        batch_op.create_check_constraint("sibling_index", "sibling_index >= 0")
        if backend.self_foreign_keys:
            batch_op.create_foreign_key(
                "fk_messages_parent",
                "messages",
                ["conversation_id", "parent_seq"],
                ["conversation_id", "seq"],
            )
    for statement in backend.parent_guard_ddl():
        op.execute(statement)


def downgrade() -> None:
    backend = backend_of(op.get_bind())
    for statement in backend.drop_parent_guard_ddl():
        op.execute(statement)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        if backend.self_foreign_keys:
            batch_op.drop_constraint(op.f("fk_messages_parent"), type_="foreignkey")
        batch_op.drop_constraint(op.f("ck_messages_sibling_index"), type_="check")
        batch_op.drop_constraint(op.f("ck_messages_parent"), type_="check")
        batch_op.drop_index("ix_messages_active_path")
        batch_op.drop_index("ix_messages_parent")
        batch_op.drop_column("on_active_path")
        batch_op.drop_column("sibling_index")
        batch_op.drop_column("depth")
        batch_op.drop_column("parent_seq")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_conversations_active_path"), type_="check")
        batch_op.drop_column("forked_from_message_id")
        batch_op.drop_column("forked_from_conversation_id")
        batch_op.drop_column("path_length")
        batch_op.drop_column("active_leaf_seq")
