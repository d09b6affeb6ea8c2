"""SQLite's full-text index stops storing a second copy of the text (contentless FTS5)

The FTS5 tables of revision 0007 kept every message, title and chunk a second time; the
contentless layout keeps only the index (about a fifth less disk for a message history;
snippets were always computed from the base tables). SQLite rebuilds its index objects, in
batches with progress in the ``chatledger._fulltext`` log; PostgreSQL and MariaDB have
nothing to change. Downgrading rebuilds the layout of 0007.

Revision ID: 0014
Revises: 0007
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from chatledger._backends import backend_of

revision: str = "0014"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    backend_of(conn).fulltext.relayout(conn, 2)


def downgrade() -> None:
    conn = op.get_bind()
    backend_of(conn).fulltext.relayout(conn, 1)
