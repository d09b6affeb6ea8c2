"""MariaDB: an append in one statement

A ``BEFORE INSERT`` trigger on ``messages`` numbers a message inserted with ``seq`` 0: it locks
and reads the conversation row, hangs the message under the active leaf (``seq``,
``parent_seq``, ``depth``) and bumps the counters, inside the insert. Every other insert gives
its own numbers and is left alone. SQLite and PostgreSQL get nothing (PostgreSQL's append is
one writable CTE already; on SQLite a trigger costs as much as the second statement it saves).

Revision ID: 0015
Revises: 0008
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from chatledger._backends import backend_of

revision: str = "0015"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The statuses that take appends when this revision was written (``_ops.messages.APPENDABLE``).
_APPENDABLE = ("active", "archived")


def upgrade() -> None:
    for statement in backend_of(op.get_bind()).append_trigger_ddl(_APPENDABLE):
        op.execute(statement)


def downgrade() -> None:
    for statement in backend_of(op.get_bind()).drop_append_trigger_ddl():
        op.execute(statement)
