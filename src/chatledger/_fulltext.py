"""Full-text search engines, one per backend (each :class:`~chatledger._backends.Backend` holds
one as ``fulltext``): the index objects, building them for existing rows, and the condition and
score a search adds to a query.

- SQLite: a contentless FTS5 table per indexed column (``unicode61``, diacritics kept, prefix
  index of 3), fed by triggers on the base table, so every write path (append, import, copy,
  erase, retention, cascades of hard deletes) updates it in its own transaction. The text is
  not stored a second time: snippets are computed from the base table, and the triggers
  remove a row from the index with its old text (FTS5's ``'delete'`` command), which the base
  table's trigger always has. Conversations and chunks have no stable integer key
  (``VACUUM`` renumbers implicit rowids), so a key table maps the FTS rowid to the row's
  primary key. A message's FTS rowid is derived instead: its conversation's key (in the
  titles' key table) times 2**32 plus its seq, so an append writes no key row (layout 3,
  revision 0018: the key table's two b-trees were ~0.1x of an append and ~5% of the file).
  A seq must stay below 2**32 (4 billion messages in one conversation). Score: ``-bm25``.
  Layout 1 (revision 0007) stored the text in the FTS table as well; layout 2 (revision
  0014) had a key table for messages too.
- PostgreSQL: a GIN expression index on ``to_tsvector('simple', <text with ASCII punctuation
  turned into spaces>)``: no stemming and no stop words (the language-neutral choice, and the
  one that agrees with the other engines); punctuation splits words as on SQLite. Maintained by
  the database in the writing statement. Score: ``ts_rank``.
- MariaDB: an InnoDB ``FULLTEXT`` index; the indexed columns use the case-insensitive,
  accent-sensitive collation ``utf8mb4_uca1400_as_ci`` (a binary collation would make the
  index case-sensitive). InnoDB applies index changes at COMMIT: a transaction does not find
  its own uncommitted messages, every other transaction sees them exactly when they commit.
  Words shorter than ``innodb_ft_min_token_size`` (3) and InnoDB's stop words are not indexed,
  which is why chatledger ignores them on every backend. Phrases are checked with ``REGEXP``
  on the rows the index found. Score: ``MATCH ... AGAINST`` (boolean mode).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Double,
    Integer,
    MetaData,
    Select,
    Table,
    Uuid,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    not_,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.expression import FromClause

from ._ops import search_syntax as syntax

__all__ = [
    "DOCUMENTS",
    "Document",
    "FullText",
    "MariaDBFullText",
    "PostgresFullText",
    "SQLiteFullText",
]

logger = logging.getLogger(__name__)

#: The collation of MariaDB's indexed columns (case-insensitive, accent-sensitive).
MARIADB_COLLATION: Final = "utf8mb4_uca1400_as_ci"
#: Rows per batch when the index is built for existing rows (SQLite).
BUILD_BATCH: Final = 5_000
#: The layout :meth:`FullText.create` builds by default (SQLite: 1 stores the text in the FTS
#: table too, 2 is contentless, 3 derives the messages' FTS rowids from their conversation's
#: key and seq; the other engines have one layout).
LAYOUT: Final = 3
#: Layout 3: a message's FTS rowid is ``(conversation key << SEQ_BITS) | seq``.
SEQ_BITS: Final = 32


@dataclass(frozen=True, slots=True)
class Document:
    """An indexed column: ``table.column``, rows keyed by ``keys``."""

    name: str
    table: str
    column: str
    keys: tuple[str, ...]

    @property
    def index(self) -> str:
        """The name of the index objects (``search_<name>``)."""
        return f"search_{self.name}"


DOCUMENTS: Final = (
    Document("messages", "messages", "content", ("conversation_id", "seq")),
    Document("titles", "conversations", "title", ("id",)),
    Document("chunks", "knowledge_chunks", "content", ("id",)),
)
BY_NAME: Final = {document.name: document for document in DOCUMENTS}


class FullText:
    """The full-text engine of one backend."""

    engine: ClassVar[str]
    #: Whether an owner-scoped message search names the owner's conversations as an array
    #: (``conversation_id = ANY(ARRAY(SELECT ...))``) instead of joining them: PostgreSQL's
    #: planner, given the join, estimates every owner at the average number of messages
    #: and walks the owner's messages recomputing each one's ``tsvector`` (12 ms for 1,000
    #: messages, 1.2 s for 100,000, whatever the words); given the array, it ANDs the GIN
    #: bitmap with the conversations' index (docs/search.md "The full-size run").
    scopes_by_array: ClassVar[bool] = False

    def create(self, conn: Connection, layout: int = LAYOUT) -> None:
        """Create the index objects and index the rows already stored; ``layout`` is for
        migrations that build an older one (see :data:`LAYOUT`)."""
        raise NotImplementedError

    def drop(self, conn: Connection) -> None:
        """Drop the index objects."""
        raise NotImplementedError

    def relayout(self, conn: Connection, layout: int) -> None:
        """Rebuild the index objects in ``layout`` (migrations; engines with one layout have
        nothing to do)."""

    def apply(
        self, query: Select[Any], base: FromClause, document: Document, shape: tuple[int, int]
    ) -> tuple[Select[Any], ColumnElement[float]]:
        """``query`` (whose FROM holds ``base``, the document's table) restricted to the rows
        matching a query of this ``shape`` (see :func:`shape`), and the score of a row
        (higher is more relevant). The query's text comes in bind parameters: :meth:`params`.
        Built once per shape (the statement is cached and compiled once)."""
        raise NotImplementedError

    def params(self, parsed: syntax.Query) -> dict[str, Any]:
        """The bind parameters of :meth:`apply`'s condition for ``parsed``."""
        raise NotImplementedError


def shape(parsed: syntax.Query) -> tuple[int, int]:
    """What a statement depends on besides parameter values: how many required and excluded
    phrases (MariaDB checks each with a ``REGEXP`` of its own)."""
    return (
        sum(term.is_phrase for term in parsed.required),
        sum(term.is_phrase for term in parsed.excluded),
    )


def _keys_table(document: Document) -> Table:
    columns = [Column("rowid", Integer, primary_key=True)]
    columns += [
        Column(key, Integer if key == "seq" else Uuid, nullable=False) for key in document.keys
    ]
    return Table(f"{document.index}_keys", MetaData(), *columns)


class SQLiteFullText(FullText):
    engine = "sqlite-fts5"
    _KEYS: ClassVar[dict[str, Table]] = {d.name: _keys_table(d) for d in DOCUMENTS}
    _FTS: ClassVar[dict[str, Table]] = {
        d.name: Table(d.index, MetaData(), Column("rowid", Integer), Column("rank", Double))
        for d in DOCUMENTS
    }

    def _statements(self, document: Document, layout: int) -> list[str]:
        if layout >= 3 and document.name == "messages":
            return self._derived_statements(document)
        name, table, column = document.index, document.table, document.column
        keys = ", ".join(document.keys)
        new_keys = ", ".join(f"NEW.{key}" for key in document.keys)
        old_match = " AND ".join(f"{key} = OLD.{key}" for key in document.keys)
        old_rowid = f"(SELECT rowid FROM {name}_keys WHERE {old_match})"
        insert = (
            f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {name}_keys ({keys}) VALUES ({new_keys}); "
            f"INSERT INTO {name} (rowid, body) VALUES (last_insert_rowid(), NEW.{column}); END"
        )
        if layout == 1:
            return [
                insert,
                f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN "
                f"DELETE FROM {name} WHERE rowid = {old_rowid}; "
                f"DELETE FROM {name}_keys WHERE {old_match}; END",
                f"CREATE TRIGGER {name}_update AFTER UPDATE OF {column} ON {table} BEGIN "
                f"UPDATE {name} SET body = NEW.{column} WHERE rowid = {old_rowid}; END",
            ]
        # Contentless: a row leaves the index by the 'delete' command, given its old text.
        forget = (
            f"INSERT INTO {name} ({name}, rowid, body) VALUES ('delete', {old_rowid}, OLD.{column})"
        )
        return [
            insert,
            f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN {forget}; "
            f"DELETE FROM {name}_keys WHERE {old_match}; END",
            f"CREATE TRIGGER {name}_update AFTER UPDATE OF {column} ON {table} "
            f"WHEN OLD.{column} IS NOT NEW.{column} BEGIN {forget}; "
            f"INSERT INTO {name} (rowid, body) VALUES ({old_rowid}, NEW.{column}); END",
        ]

    def _derived_statements(self, document: Document) -> list[str]:
        """Layout 3's triggers on messages: the FTS rowid is computed, no key row kept."""
        name, table, column = document.index, document.table, document.column
        forget = (
            f"INSERT INTO {name} ({name}, rowid, body) "
            f"VALUES ('delete', {_message_rowid('OLD')}, OLD.{column})"
        )
        remember = (
            f"INSERT INTO {name} (rowid, body) VALUES ({_message_rowid('NEW')}, NEW.{column})"
        )
        return [
            f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN {remember}; END",
            f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN {forget}; END",
            f"CREATE TRIGGER {name}_update AFTER UPDATE OF {column} ON {table} "
            f"WHEN OLD.{column} IS NOT NEW.{column} BEGIN {forget}; {remember}; END",
        ]

    def create(self, conn: Connection, layout: int = LAYOUT) -> None:
        content = "" if layout == 1 else ", content = ''"
        # Layout 3 numbers messages by their conversation's key: titles are indexed first.
        order = sorted(DOCUMENTS, key=lambda d: d.name != "titles") if layout >= 3 else DOCUMENTS
        for document in order:
            name, _table = document.index, document.table
            fts = (
                f"CREATE VIRTUAL TABLE {name} USING fts5(body, "
                f"tokenize = 'unicode61 remove_diacritics 0', prefix = '3'{content})"
            )
            if layout >= 3 and document.name == "messages":
                conn.exec_driver_sql(fts)
                self._build_derived(conn, document)
                for statement in self._derived_statements(document):
                    conn.exec_driver_sql(statement)
                continue
            key_columns = ", ".join(
                f"{key} {'INTEGER' if key == 'seq' else 'CHAR(32)'} NOT NULL"
                for key in document.keys
            )
            conn.exec_driver_sql(
                f"CREATE TABLE {name}_keys (rowid INTEGER PRIMARY KEY, {key_columns})"
            )
            conn.exec_driver_sql(
                f"CREATE UNIQUE INDEX {name}_keys_key ON {name}_keys ({', '.join(document.keys)})"
            )
            conn.exec_driver_sql(fts)
            self._build(conn, document)
            for statement in self._statements(document, layout):
                conn.exec_driver_sql(statement)

    def _build(self, conn: Connection, document: Document) -> None:
        """Index the stored rows through the key table, :data:`BUILD_BATCH` at a time."""
        name, table, column = document.index, document.table, document.column
        keys = ", ".join(document.keys)
        join = " AND ".join(f"k.{key} = t.{key}" for key in document.keys)
        for last, high in _batches(conn, document):
            first_key = conn.exec_driver_sql(f"SELECT coalesce(max(rowid), 0) FROM {name}_keys")
            start = first_key.scalar_one()
            conn.exec_driver_sql(
                f"INSERT INTO {name}_keys ({keys}) SELECT {keys} FROM {table} "
                "WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
                (last, high),
            )
            conn.exec_driver_sql(
                f"INSERT INTO {name} (rowid, body) SELECT k.rowid, t.{column} "
                f"FROM {name}_keys AS k JOIN {table} AS t ON {join} WHERE k.rowid > ?",
                (start,),
            )

    def _build_derived(self, conn: Connection, document: Document) -> None:
        """Index the stored messages under their derived rowids, :data:`BUILD_BATCH` at a
        time."""
        name, table, column = document.index, document.table, document.column
        for last, high in _batches(conn, document):
            conn.exec_driver_sql(
                f"INSERT INTO {name} (rowid, body) SELECT {_message_rowid('t')}, t.{column} "
                f"FROM {table} AS t WHERE t.rowid > ? AND t.rowid <= ?",
                (last, high),
            )

    def relayout(self, conn: Connection, layout: int) -> None:
        self.drop(conn)
        self.create(conn, layout=layout)

    def drop(self, conn: Connection) -> None:
        for document in DOCUMENTS:
            name = document.index
            for suffix in ("insert", "delete", "update"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}_{suffix}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}_keys")

    def apply(
        self, query: Select[Any], base: FromClause, document: Document, shape: tuple[int, int]
    ) -> tuple[Select[Any], ColumnElement[float]]:
        name = document.index
        fts = self._FTS[document.name]
        if document.name == "messages":
            # Written from the FTS row's side, so the plan reads the index, then each
            # conversation's key and message by primary key.
            keys = self._KEYS["titles"]
            query = query.join(keys, keys.c.id == base.c.conversation_id).join(
                fts,
                and_(
                    keys.c.rowid == fts.c.rowid.op(">>")(SEQ_BITS),
                    base.c.seq == fts.c.rowid.op("&")((1 << SEQ_BITS) - 1),
                ),
            )
        else:
            keys = self._KEYS[document.name]
            on = and_(*(keys.c[key] == base.c[key] for key in document.keys))
            query = query.join(keys, on).join(fts, fts.c.rowid == keys.c.rowid)
        match = literal_column(name).op("MATCH", is_comparison=True)(bindparam("fts_query"))
        return query.where(match), -fts.c.rank

    def params(self, parsed: syntax.Query) -> dict[str, Any]:
        return {"fts_query": syntax.fts5(parsed)}


def _batches(conn: Connection, document: Document) -> Iterator[tuple[int, int]]:
    """``(after, up_to)`` ranges of the document's table's rowids, :data:`BUILD_BATCH` rows
    each, logging the progress after each range is indexed."""
    table = document.table
    total = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
    last = 0
    while True:
        high = conn.exec_driver_sql(
            f"SELECT max(rowid) FROM (SELECT rowid FROM {table} WHERE rowid > ? "
            "ORDER BY rowid LIMIT ?)",
            (last, BUILD_BATCH),
        ).scalar()
        if high is None:
            return
        yield last, high
        done = conn.exec_driver_sql(f"SELECT count(*) FROM {table} WHERE rowid <= ?", (high,))
        logger.info("search index %s: %d of %d rows", document.index, done.scalar_one(), total)
        last = high


def _message_rowid(row: str) -> str:
    """Layout 3's FTS rowid of the message ``row`` (``NEW``, ``OLD``, a table alias)."""
    return (
        f"((SELECT rowid FROM {BY_NAME['titles'].index}_keys WHERE id = {row}.conversation_id) "
        f"<< {SEQ_BITS} | {row}.seq)"
    )


#: PostgreSQL's indexed expression, per document (the query repeats it so the index serves).
def _tsvector(table: str, column: str) -> str:
    return (
        f"to_tsvector('simple'::regconfig, "
        f"regexp_replace({table}.{column}, '[[:punct:]]+', ' ', 'g'))"
    )


class PostgresFullText(FullText):
    engine = "postgresql-tsvector"
    scopes_by_array = True

    def create(self, conn: Connection, layout: int = LAYOUT) -> None:
        for document in DOCUMENTS:
            logger.info("search index %s: building", document.index)
            expression = _tsvector(document.table, document.column).replace(
                f"{document.table}.", ""
            )
            conn.exec_driver_sql(
                f"CREATE INDEX {document.index} ON {document.table} USING gin ({expression})"
            )
            logger.info("search index %s: built", document.index)

    def drop(self, conn: Connection) -> None:
        for document in DOCUMENTS:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {document.index}")

    def apply(
        self, query: Select[Any], base: FromClause, document: Document, shape: tuple[int, int]
    ) -> tuple[Select[Any], ColumnElement[float]]:
        name = base.name if isinstance(base, Table) else document.table
        vector: ColumnElement[Any] = literal_column(_tsvector(name, document.column))
        tsquery = func.to_tsquery(literal_column("'simple'::regconfig"), bindparam("fts_query"))
        # ts_rank is a float4: as a float8, the cursor holds it exactly (keyset comparisons).
        score = cast(func.ts_rank(vector, tsquery), Double)
        return query.where(vector.op("@@", is_comparison=True)(tsquery)), score

    def params(self, parsed: syntax.Query) -> dict[str, Any]:
        return {"fts_query": syntax.tsquery(parsed)}


class MariaDBFullText(FullText):
    engine = "innodb-fulltext"

    def create(self, conn: Connection, layout: int = LAYOUT) -> None:
        for document in DOCUMENTS:
            logger.info("search index %s: building", document.index)
            conn.exec_driver_sql(
                f"ALTER TABLE {document.table} ADD FULLTEXT INDEX {document.index} "
                f"({document.column})"
            )
            logger.info("search index %s: built", document.index)

    def drop(self, conn: Connection) -> None:
        for document in DOCUMENTS:
            conn.exec_driver_sql(f"ALTER TABLE {document.table} DROP INDEX {document.index}")

    def apply(
        self, query: Select[Any], base: FromClause, document: Document, shape: tuple[int, int]
    ) -> tuple[Select[Any], ColumnElement[float]]:
        column = base.c[document.column]
        score = _match(column, bindparam("fts_query"))
        query = query.where(score > 0)
        required, excluded = shape
        for number in range(required):
            regexp = column.op("REGEXP", is_comparison=True)(bindparam(f"fts_phrase_{number}"))
            query = query.where(regexp)
        for number in range(excluded):
            regexp = column.op("REGEXP", is_comparison=True)(bindparam(f"fts_not_{number}"))
            query = query.where(not_(regexp))
        return query, score

    def params(self, parsed: syntax.Query) -> dict[str, Any]:
        values: dict[str, Any] = {"fts_query": syntax.boolean_mode(parsed)}
        phrases = [term for term in parsed.required if term.is_phrase]
        for number, term in enumerate(phrases):
            values[f"fts_phrase_{number}"] = syntax.phrase_pattern(term)
        phrases = [term for term in parsed.excluded if term.is_phrase]
        for number, term in enumerate(phrases):
            values[f"fts_not_{number}"] = syntax.phrase_pattern(term)
        return values


def _match(column: ColumnElement[Any], against: Any) -> ColumnElement[float]:
    """``MATCH (column) AGAINST (:q IN BOOLEAN MODE)``."""
    return mysql.match(column, against=against).in_boolean_mode()
