"""Full-text search over messages, conversation titles and knowledge chunks; embeddings of
knowledge chunks and the embedding settings of their sources

Builds each backend's full-text index for the rows already stored (SQLite in batches, with
progress in the ``chatledger._fulltext`` log; PostgreSQL and MariaDB build theirs in one
statement each and log when each starts and ends). MariaDB's indexed columns move to the
collation ``utf8mb4_uca1400_as_ci`` (a full-text index on a binary collation is
case-sensitive).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chatledger._schema
import chatledger._types
from chatledger._backends import backend_of

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BINARY = "utf8mb4_nopad_bin"
_SEARCH = chatledger._types.SEARCH_COLLATION
#: MariaDB columns that get the search collation: (table, column, type, nullable).
_COLLATED = (
    ("messages", "content", "LONGTEXT", False),
    ("knowledge_chunks", "content", "LONGTEXT", False),
    ("conversations", "title", "VARCHAR(500)", True),
)


def upgrade() -> None:
    op.create_table(
        "knowledge_sources",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("created_at", chatledger._types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "metric IN ('cosine', 'l2', 'dot')", name=op.f("ck_knowledge_sources_metric")
        ),
        sa.CheckConstraint(
            "dimension BETWEEN 1 AND 4096", name=op.f("ck_knowledge_sources_dimension")
        ),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_knowledge_sources")),
        mysql_charset="utf8mb4",
        mysql_collate=_BINARY,
        mysql_engine="InnoDB",
    )
    with op.batch_alter_table("knowledge_chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embedding", chatledger._types.LongBlob(), nullable=True))
    conn = op.get_bind()
    if conn.dialect.name in ("mysql", "mariadb"):
        _collate(conn, _SEARCH)
    backend_of(conn).fulltext.create(conn, layout=1)  # 0014 rebuilds it as layout 2


def downgrade() -> None:
    conn = op.get_bind()
    backend_of(conn).fulltext.drop(conn)
    if conn.dialect.name in ("mysql", "mariadb"):
        _collate(conn, _BINARY)
    with op.batch_alter_table("knowledge_chunks", schema=None) as batch_op:
        batch_op.drop_column("embedding")
    op.drop_table("knowledge_sources")


def _collate(conn: sa.Connection, collation: str) -> None:
    for table, column, type_, nullable in _COLLATED:
        null = "NULL" if nullable else "NOT NULL"
        conn.exec_driver_sql(
            f"ALTER TABLE {table} MODIFY {column} {type_} COLLATE {collation} {null}"
        )
