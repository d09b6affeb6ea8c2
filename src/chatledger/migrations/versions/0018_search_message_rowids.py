"""SQLite's message index derives its rowids: no key table for messages

A message's FTS5 rowid becomes its conversation's key (the titles' key table) times 2**32
plus its seq, so an append no longer writes a key row into a table and its unique index
(~0.1x of an append's time, and ~5% of the file for a message history). SQLite
rebuilds its index objects, in batches with progress in the ``chatledger._fulltext`` log;
PostgreSQL and MariaDB have nothing to change. Downgrading rebuilds the layout of 0014.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-03 17:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from chatledger._backends import backend_of

revision: str = "0018"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    backend_of(conn).fulltext.relayout(conn, 3)


def downgrade() -> None:
    conn = op.get_bind()
    backend_of(conn).fulltext.relayout(conn, 2)
