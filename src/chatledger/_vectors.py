"""Vector engines, one per backend (each :class:`~chatledger._backends.Backend` holds one as
``vectors``): what a database offers for vector search, and scoring inside it when it can.

Embeddings are stored as float32 little-endian blobs (``knowledge_chunks.embedding``). Where
no engine scores them in the database, :mod:`chatledger._ops.retrieval` scans them exactly
(numpy). Every engine here is **exact** too, so both paths return the same chunks:

- SQLite: the ``sqlite-vec`` extension (the ``vector`` extra), loaded into each connection on
  its first vector search when the SQLite library allows loading extensions (the bundled
  ``pysqlite3`` does; Debian's ``sqlite3`` module does not). ``vec_distance_cosine`` and
  ``vec_distance_l2`` read the stored blobs as they are, so the database returns the top k
  and only k rows cross into Python. ``dot`` has no sqlite-vec function: exact scan.
- PostgreSQL: ``pgvector`` is detected (``pg_extension``) and reported, not used: it scores
  its own ``vector`` column type, and chatledger's embeddings are ``bytea`` (moving them to a
  ``vector`` column, with HNSW indexes per source, is a migration for servers that have it).
- MariaDB: 11.7+ ``VECTOR`` is detected from the server version and reported, not used (for
  the same reason; 10.11, the version chatledger is tested on, has none).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Double,
    LargeBinary,
    bindparam,
    desc,
    func,
    literal,
    select,
)

__all__ = ["MariaDBVectors", "PostgresVectors", "SQLiteVectors", "Vectors"]

logger = logging.getLogger(__name__)

#: The key, in a pooled connection's ``info``, of its sqlite-vec version ("" when it cannot load).
_LOADED: Final = "chatledger.sqlite_vec"


class Vectors:
    """The vector engine of one backend: by default none (the caller scans exactly)."""

    def extensions(self, conn: Connection) -> tuple[str, ...]:
        """The vector extensions the database offers, with their versions (used or not)."""
        return ()

    def engine(self, conn: Connection) -> tuple[str, str | None] | None:
        """The engine that scores vectors in this database (name, version), or ``None``."""
        return None

    def rank(
        self,
        conn: Connection,
        conditions: Sequence[ColumnElement[bool]],
        vector: bytes,
        metric: str,
        limit: int,
    ) -> list[tuple[uuid.UUID, float]] | None:
        """The ``limit`` chunks (among those meeting ``conditions``) closest to ``vector``
        (float32 little-endian), best first, with the similarity the exact scan gives
        (higher is closer); ``None`` when the database cannot score them."""
        return None


def load_sqlite_vec(dbapi_connection: Any) -> str:
    """Load sqlite-vec into a DB-API SQLite connection; its version, or ``""`` when the
    package is not installed or the library cannot load extensions."""
    try:
        import sqlite_vec
    except ImportError:
        return ""
    enable = getattr(dbapi_connection, "enable_load_extension", None)
    if enable is None:
        return ""
    try:
        enable(True)
        try:
            sqlite_vec.load(dbapi_connection)
        finally:
            enable(False)
        cursor = dbapi_connection.execute("SELECT vec_version()")
        version = str(cursor.fetchone()[0])
        cursor.close()
    except Exception as exc:  # the library's own error type: sqlite3 or pysqlite3
        logger.warning("sqlite-vec could not be loaded (%s): vector search scans exactly", exc)
        return ""
    return version


class SQLiteVectors(Vectors):
    _DISTANCES: ClassVar[dict[str, Any]] = {
        "cosine": func.vec_distance_cosine,
        "l2": func.vec_distance_l2,
    }

    def _version(self, conn: Connection) -> str:
        info = conn.connection.info
        version = info.get(_LOADED)
        if version is None:
            version = info[_LOADED] = load_sqlite_vec(conn.connection.dbapi_connection)
        return str(version)

    def extensions(self, conn: Connection) -> tuple[str, ...]:
        version = self._version(conn)
        return (f"sqlite-vec {version}",) if version else ()

    def engine(self, conn: Connection) -> tuple[str, str | None] | None:
        version = self._version(conn)
        return ("sqlite-vec", version) if version else None

    def rank(
        self,
        conn: Connection,
        conditions: Sequence[ColumnElement[bool]],
        vector: bytes,
        metric: str,
        limit: int,
    ) -> list[tuple[uuid.UUID, float]] | None:
        if metric not in self._DISTANCES or not self._version(conn):
            return None
        from ._schema import knowledge_chunks

        k = knowledge_chunks.c
        query = bindparam("v_query", vector, type_=LargeBinary())
        distance = self._DISTANCES[metric](k.embedding, query)
        if metric == "cosine":
            # A zero vector has no direction: sqlite-vec answers NULL, the exact scan 0.
            score: ColumnElement[float] = literal(1.0, Double()) - func.coalesce(distance, 1.0)
        else:
            score = -distance
        statement = (
            select(k.id, score.label("score"))
            .where(k.embedding.is_not(None), *conditions)
            .order_by(desc("score"), k.id)
            .limit(limit)
        )
        return [(row[0], float(row[1])) for row in conn.execute(statement)]


class PostgresVectors(Vectors):
    def extensions(self, conn: Connection) -> tuple[str, ...]:
        version = conn.exec_driver_sql(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).scalar()
        return () if version is None else (f"pgvector {version}",)


#: The first MariaDB version with the ``VECTOR`` type and ``VEC_DISTANCE_*`` functions.
MARIADB_VECTOR: Final = (11, 7)


class MariaDBVectors(Vectors):
    def extensions(self, conn: Connection) -> tuple[str, ...]:
        version = conn.dialect.server_version_info or ()
        if tuple(version[:2]) >= MARIADB_VECTOR:
            return ("mariadb-vector " + ".".join(str(part) for part in version[:3]),)
        return ()
