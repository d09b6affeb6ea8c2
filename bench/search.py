"""Search and retrieval benchmark (issue 16).

Per backend, on scratch databases:

- **search**: owner-scoped full-text search through chatledger
  (``as_user(u).search.messages``, snippets included; by relevance, and newest first) against
  the same engine query issued by the raw driver (the same conditions: owner, status, hidden
  messages; four columns, no records, no snippets; the two take turns at running first), and
  against ``LIKE '%term%'`` newest first (what peers without an index write) over the user's
  messages and over the whole table; p50/p99 each. Three classes of query terms (:data:`TERMS`:
  common, rare, absent), for a typical user and for a heavy one holding ``--heavy`` messages
  (a tenth of them by default): a ``LIKE`` that meets 21 matches early stops early, one for a
  rare or absent term reads everything in its scope.
- **append**: one message appended through chatledger, with the full-text index and after
  dropping it (p50 each, interleaved in blocks).
- **append-parts** (SQLite, not run by default): the append without the index, with the FTS5
  row alone and with the index, one file per variant, appends taking turns op by op.
- **vector**: top-10 by cosine over ``--chunks`` chunks of ``--dimension`` floats, p50 for
  each engine present (sqlite-vec inside SQLite, and the exact numpy scan it falls back to),
  and recall@10 against an in-memory brute force.

Full figures (a quiet machine; one benchmark at a time)::

    .venv/bin/python -m bench.search --messages 1000000 --users 1000 \\
        --chunks 100000 --dimension 384

A quick check: ``python -m bench.search --messages 5000 --users 50 --chunks 2000 --dimension 64
--queries 5``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import numpy
import sqlalchemy as sa

from chatledger import Ledger, _vectors
from chatledger._backends import backend_for, sqlite_library

from .databases import BACKENDS, Scratch, Scratches
from .harness import percentile

CONVERSATIONS_PER_USER = 10
SYLLABLES = [a + b for a in "bcdfgklmnprstvz" for b in "aeiou"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """``size`` distinct pseudo-words of 2 to 4 syllables."""
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def load_messages(
    ledger: Ledger,
    users: int,
    messages: int,
    words: list[str],
    rng: random.Random,
    heavy: int = 0,
) -> tuple[list[uuid.UUID], uuid.UUID | None]:
    """``messages`` messages of 8-40 Zipf-distributed words: ``heavy`` of them (if any) held by
    one more user, the rest spread over ``users`` users, each user with
    :data:`CONVERSATIONS_PER_USER` conversations. Returns the typical users' ids and the heavy
    user's."""
    weights = [1 / rank for rank in range(1, len(words) + 1)]

    def user_with(count: int) -> uuid.UUID:
        user = ledger.users.create()
        per_conversation = max(1, count // CONVERSATIONS_PER_USER)
        for _ in range(CONVERSATIONS_PER_USER):
            chat = ledger.conversations.create(user.id, title=" ".join(rng.sample(words[:500], 4)))
            batch = [
                {
                    "role": rng.choice(("user", "assistant")),
                    "content": " ".join(rng.choices(words, weights, k=rng.randint(8, 40))),
                }
                for _ in range(per_conversation)
            ]
            for start in range(0, len(batch), 1000):
                ledger.messages.append_many(chat.id, batch[start : start + 1000])
        return user.id

    heavy_id = user_with(heavy) if heavy else None
    owners = [user_with((messages - heavy) // users) for _ in range(users)]
    return owners, heavy_id


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Milliseconds taken by ``fn(*args, **kwargs)``, and its result."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return (time.perf_counter() - start) * 1e3, result


def summary(values: Sequence[float]) -> str:
    return f"{percentile(values, 50):.2f} / {percentile(values, 99):.2f}"


class Raw:
    """The same engine queries, by the raw driver."""

    def __init__(self, scratch: Scratch) -> None:
        self.backend = scratch.backend
        if scratch.backend == "sqlite":
            assert scratch.path is not None
            # The library chatledger opens SQLite with (the bundled pysqlite3 when installed).
            self.conn: Any = sqlite_library().connect(scratch.path)
        elif scratch.backend == "postgresql":
            import psycopg

            self.conn = psycopg.connect(scratch.psycopg_conninfo(), autocommit=True)
        else:
            import pymysql

            self.conn = pymysql.connect(**scratch.pymysql_kwargs(), autocommit=True)

    def _owner(self, owner: uuid.UUID) -> str:
        return owner.hex if self.backend == "sqlite" else str(owner)

    def _run(self, sql: str, params: Sequence[Any]) -> list[Any]:
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        cursor.close()
        return list(rows)

    def search(self, owner: uuid.UUID, engine_query: str) -> list[Any]:
        if self.backend == "sqlite":
            sql = (
                "SELECT m.conversation_id, m.seq, m.content, -f.rank AS score "
                "FROM search_messages f JOIN search_titles_keys k ON k.rowid = f.rowid >> 32 "
                "JOIN messages m ON m.conversation_id = k.id AND m.seq = f.rowid & 4294967295 "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE search_messages MATCH ? AND c.owner_id = ? AND c.status != 'deleted' "
                "AND m.hidden_at IS NULL "
                "ORDER BY score DESC, m.conversation_id DESC, m.seq DESC LIMIT 21"
            )
        elif self.backend == "postgresql":
            vector = (
                "to_tsvector('simple'::regconfig, "
                "regexp_replace(m.content, '[[:punct:]]+', ' ', 'g'))"
            )
            # The owner's conversations as an array, not a join: with the join the planner
            # walks the owner's messages recomputing each tsvector (FullText.scopes_by_array).
            sql = (
                f"SELECT m.conversation_id, m.seq, m.content, "
                f"ts_rank({vector}, q)::float8 AS score "
                "FROM messages m, to_tsquery('simple'::regconfig, %s) q "
                f"WHERE {vector} @@ q AND m.conversation_id = ANY(ARRAY("
                "SELECT c.id FROM conversations c WHERE c.owner_id = %s "
                "AND c.status <> 'deleted')) AND m.hidden_at IS NULL "
                "ORDER BY score DESC, m.conversation_id DESC, m.seq DESC LIMIT 21"
            )
        else:
            sql = (
                "SELECT m.conversation_id, m.seq, m.content, "
                "MATCH (m.content) AGAINST (%s IN BOOLEAN MODE) AS score "
                "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE MATCH (m.content) AGAINST (%s IN BOOLEAN MODE) AND c.owner_id = %s "
                "AND c.status <> 'deleted' AND m.hidden_at IS NULL "
                "ORDER BY score DESC, m.conversation_id DESC, m.seq DESC LIMIT 21"
            )
            return self._run(sql, (engine_query, engine_query, self._owner(owner)))
        return self._run(sql, (engine_query, self._owner(owner)))

    def like(self, owner: uuid.UUID | None, word: str) -> list[Any]:
        mark = "?" if self.backend == "sqlite" else "%s"
        operator = "ILIKE" if self.backend == "postgresql" else "LIKE"
        scoped = f"c.owner_id = {mark} AND " if owner is not None else ""
        sql = (
            "SELECT m.conversation_id, m.seq, m.content FROM messages m "
            "JOIN conversations c ON c.id = m.conversation_id "
            f"WHERE {scoped}m.content {operator} {mark} "
            "ORDER BY m.created_at DESC LIMIT 21"
        )
        params: list[Any] = [] if owner is None else [self._owner(owner)]
        return self._run(sql, [*params, f"%{word}%"])

    def close(self) -> None:
        self.conn.close()


def engine_query(backend: str, query: str) -> str:
    from chatledger._ops import search_syntax

    parsed = search_syntax.parse(query)
    render = {
        "sqlite": search_syntax.fts5,
        "postgresql": search_syntax.tsquery,
        "mariadb": search_syntax.boolean_mode,
    }[backend]
    return render(parsed)


#: The query classes, each drawn ``--queries`` times: ``common`` words (the 50th-500th most
#: frequent of the vocabulary: one word, two words, a 4-letter prefix), ``rare`` ones (the
#: 4,500th-5,000th: a few hundred messages hold each at 1M) and ``absent`` ones (letters no
#: vocabulary word has: every ``LIKE`` reads its whole scope).
TERMS: Final = ("common", "rare", "absent")


def draw(kind: str, words: list[str], rng: random.Random, number: int) -> list[str]:
    if kind == "common":
        a, b = rng.sample(words[50:500], 2)
        return [a, f"{a} {b}", f"{a[:4]}*"]
    if kind == "rare":
        return [rng.choice(words[4500:5000])]
    return [f"quix{number}"]


def bench_search(scratch: Scratch, args: argparse.Namespace, out: list[str]) -> None:
    """Every query class for a typical user and for the heavy one: chatledger in relevance and
    in time order, the raw engine query (relevance), and ``LIKE`` newest first (what the peers
    write) over the user's messages and over the whole table."""
    rng = random.Random(16)
    words = vocabulary(5000, rng)
    heavy = args.messages // 10 if args.heavy is None else args.heavy
    with Ledger(scratch.url) as ledger:
        started = time.perf_counter()
        owners, heavy_id = load_messages(ledger, args.users, args.messages, words, rng, heavy)
        load_s = time.perf_counter() - started
        analyze(scratch)
        people = [("typical", None)] + ([("heavy", heavy_id)] if heavy_id else [])
        raw = Raw(scratch)
        try:
            for person, chosen in people:
                for kind in TERMS:
                    timings: dict[str, list[float]] = {
                        "chatledger": [],
                        "newest": [],
                        "raw": [],
                        "like_user": [],
                        "like_all": [],
                    }
                    queries = [
                        q for number in range(args.queries) for q in draw(kind, words, rng, number)
                    ]
                    for number, query in enumerate(queries):
                        owner = chosen or rng.choice(owners)
                        scope = ledger.as_user(owner)
                        native = engine_query(scratch.backend, query)
                        word = query.split()[0].rstrip("*")
                        # Whichever runs first reads the index pages from the OS, the second
                        # finds them warm (measured: ~0.05 ms of a 0.1 ms SQLite query): take
                        # turns.
                        if number % 2:
                            timings["raw"].append(timed(raw.search, owner, native)[0])
                        timings["chatledger"].append(timed(scope.search.messages, query)[0])
                        if not number % 2:
                            timings["raw"].append(timed(raw.search, owner, native)[0])
                        timings["newest"].append(
                            timed(scope.search.messages, query, order="newest")[0]
                        )
                        timings["like_user"].append(timed(raw.like, owner, word)[0])
                        if len(timings["like_all"]) < args.like_scans:
                            timings["like_all"].append(timed(raw.like, None, word)[0])
                    out.append(search_row(scratch.backend, person, kind, timings, load_s))
        finally:
            raw.close()


def analyze(scratch: Scratch) -> None:
    """Fresh planner statistics on the servers, as their automatic statistics would have
    after a load (SQLite keeps none unless asked: chatledger does not ask)."""
    if scratch.backend == "sqlite":
        return
    statement = (
        "ANALYZE" if scratch.backend == "postgresql" else "ANALYZE TABLE messages, conversations"
    )
    engine = sa.create_engine(scratch.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement).close()
            conn.commit()
    finally:
        engine.dispose()


def search_row(
    backend: str, person: str, kind: str, timings: dict[str, list[float]], load_s: float
) -> str:
    fts = percentile(timings["chatledger"], 50)
    ratio = fts / percentile(timings["raw"], 50)
    by_user = percentile(timings["like_user"], 50) / fts
    by_table = percentile(timings["like_all"], 50) / fts
    return (
        f"| {backend} | {person} | {kind} | {summary(timings['chatledger'])} | "
        f"{summary(timings['raw'])} | {ratio:.2f}x | {summary(timings['newest'])} | "
        f"{summary(timings['like_user'])} | {summary(timings['like_all'])} | "
        f"{by_user:.1f}x / {by_table:.1f}x | {load_s:.0f} s |"
    )


def bench_append(scratch: Scratch, args: argparse.Namespace, out: list[str]) -> None:
    rng = random.Random(17)
    words = vocabulary(2000, rng)
    fulltext = backend_for(scratch.url).fulltext
    with_index: list[float] = []
    without: list[float] = []
    with Ledger(scratch.url) as ledger:
        user = ledger.users.create()
        chat = ledger.conversations.create(user.id)
        options = {"module": sqlite_library()} if scratch.backend == "sqlite" else {}
        engine = sa.create_engine(scratch.url, poolclass=sa.pool.NullPool, **options)
        indexed = True
        for block in range(2 * args.blocks):
            if (block % 2 == 0) != indexed:
                with engine.begin() as conn:
                    if indexed:
                        fulltext.drop(conn)
                    else:
                        fulltext.create(conn)
                indexed = not indexed
            target = with_index if indexed else without
            for _ in range(args.appends):
                text = " ".join(rng.choices(words, k=30))
                target.append(timed(ledger.messages.append, chat.id, "user", text)[0])
        if not indexed:
            with engine.begin() as conn:
                fulltext.create(conn)
        engine.dispose()
    ratio = percentile(with_index, 50) / percentile(without, 50)
    out.append(
        f"| {scratch.backend} | {percentile(with_index, 50):.3f} | "
        f"{percentile(without, 50):.3f} | {ratio:.2f}x |"
    )


#: What SQLite's append pays for (bench_append_parts): the messages index's insert trigger
#: dropped (""), replaced by one inserting the FTS5 row under the message's own rowid (no
#: look-up; not usable: VACUUM renumbers those rowids), or kept (None).
_FTS5_ONLY: Final = "INSERT INTO search_messages (rowid, body) VALUES (NEW.rowid, NEW.content)"
APPEND_PARTS: Final = {
    "without the index": "",
    "the FTS5 row alone (the floor)": _FTS5_ONLY,
    "the index": None,
}


def bench_append_parts(scratch: Scratch, args: argparse.Namespace, out: list[str]) -> None:
    """SQLite: an append with each part of the index, one file per variant, appends taking
    turns op by op (no block drifts)."""
    if scratch.backend != "sqlite":
        return
    assert scratch.path is not None
    rng = random.Random(19)
    words = vocabulary(2000, rng)
    with Ledger(scratch.url) as ledger:
        user = ledger.users.create()
        chat = ledger.conversations.create(user.id)
        for _ in range(5):
            batch = [
                {"role": "user", "content": " ".join(rng.choices(words, k=30))} for _ in range(1000)
            ]
            ledger.messages.append_many(chat.id, batch)
    ledgers: dict[str, Ledger] = {}
    try:
        for number, (name, trigger) in enumerate(APPEND_PARTS.items()):
            path = scratch.path.with_name(f"{scratch.path.stem}-{number}.db")
            shutil.copy(scratch.path, path)
            conn = sqlite_library().connect(str(path), isolation_level=None)
            if trigger is not None:
                conn.execute("DROP TRIGGER search_messages_insert")
            if trigger:
                conn.execute(
                    "CREATE TRIGGER search_messages_insert AFTER INSERT ON messages "
                    f"BEGIN {trigger}; END"
                )
            conn.close()
            ledgers[name] = Ledger(f"sqlite:///{path}")
        timings: dict[str, list[float]] = {name: [] for name in ledgers}
        for turn in range(args.appends * args.blocks):
            names = list(ledgers) if turn % 2 else list(reversed(ledgers))
            for name in names:
                text = " ".join(rng.choices(words, k=30))
                timings[name].append(timed(ledgers[name].messages.append, chat.id, "user", text)[0])
    finally:
        for ledger in ledgers.values():
            ledger.close()
    base = percentile(timings["without the index"], 50)
    for name, values in timings.items():
        p50 = percentile(values, 50)
        out.append(f"| {name} | {p50:.3f} | {p50 / base:.2f}x |")


def bench_vector(scratch: Scratch, args: argparse.Namespace, out: list[str]) -> None:
    generator = numpy.random.default_rng(18)
    vectors = generator.standard_normal((args.chunks, args.dimension)).astype(numpy.float32)
    vectors /= numpy.linalg.norm(vectors, axis=1, keepdims=True)
    with Ledger(scratch.url) as ledger:
        kb = ledger.knowledge
        kb.configure("bench", dimension=args.dimension, metric="cosine")
        ids: list[uuid.UUID] = []
        for start in range(0, args.chunks, 1000):
            stop = min(start + 1000, args.chunks)
            kb.bulk_upsert(
                {"source": "bench", "external_id": str(n), "content": f"chunk {n}"}
                for n in range(start, stop)
            )
            chunks = [kb.get_by_key("bench", str(n)) for n in range(start, stop)]
            ids += [chunk.id for chunk in chunks]
            kb.embed(
                {
                    chunk.id: vectors[n].tolist()
                    for n, chunk in zip(range(start, stop), chunks, strict=True)
                }
            )
        queries = [
            generator.standard_normal(args.dimension).astype(numpy.float32)
            for _ in range(args.queries)
        ]
        engine = kb.vector_engine()
        engines = [engine.name]
        if engine.name != "numpy":
            engines.append("numpy")  # the exact scan the engine falls back to
        for name in engines:
            latencies: list[float] = []
            recalls: list[float] = []
            with _engine(name):
                for query in queries:
                    took, hits = timed(kb.retrieve, sources="bench", vector=query.tolist(), k=10)
                    latencies.append(took)
                    scores = vectors @ (query / numpy.linalg.norm(query))
                    truth = {ids[i] for i in numpy.argsort(-scores)[:10]}
                    recalls.append(len(truth & {hit.chunk.id for hit in hits}) / 10)
            label = f"{name} {engine.version}" if name == engine.name else "exact scan (numpy)"
            out.append(
                f"| {scratch.backend} | {label} | {args.chunks:,} x {args.dimension} | "
                f"{percentile(latencies, 50):.1f} | {sum(recalls) / len(recalls):.3f} |"
            )


@contextlib.contextmanager
def _engine(name: str) -> Iterator[None]:
    """Vector searches scored by ``name``: the engine in the database, or (``numpy``) the
    exact scan it falls back to."""
    if name != "numpy":
        yield
        return
    original = _vectors.SQLiteVectors.rank
    _vectors.SQLiteVectors.rank = _vectors.Vectors.rank  # type: ignore[method-assign]
    try:
        yield
    finally:
        _vectors.SQLiteVectors.rank = original  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--queries", type=int, default=20, help="draws per query class")
    parser.add_argument(
        "--heavy", type=int, default=None, help="messages of the heavy user (default: a tenth)"
    )
    parser.add_argument(
        "--like-scans", type=int, default=10, help="LIKE scans of the whole table per class"
    )
    parser.add_argument("--appends", type=int, default=200, help="appends per block")
    parser.add_argument("--blocks", type=int, default=3, help="blocks with and without the index")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument(
        "--only", default="search,append,vector", help="also: append-parts (SQLite only)"
    )
    args = parser.parse_args(argv)
    backends = tuple(args.backends.split(","))
    only = set(args.only.split(","))
    scratches = Scratches(backends)
    search_rows: list[str] = []
    append_rows: list[str] = []
    part_rows: list[str] = []
    vector_rows: list[str] = []
    try:
        for backend in backends:
            if not scratches.available(backend):
                print(scratches.unreachable[backend])
                continue
            for name, bench, rows in (
                ("search", bench_search, search_rows),
                ("append", bench_append, append_rows),
                ("append-parts", bench_append_parts, part_rows),
                ("vector", bench_vector, vector_rows),
            ):
                if name in only:
                    scratch = scratches.create(backend, name)
                    try:
                        bench(scratch, args, rows)
                    finally:
                        scratches.drop(scratch)
    finally:
        scratches.close()
    if search_rows:
        print(
            f"{args.messages:,} messages, {args.users:,} typical users and a heavy one\n\n"
            "| backend | user | terms | chatledger p50/p99 ms | raw driver p50/p99 ms | "
            "chatledger/raw p50 | chatledger newest-first p50/p99 ms | LIKE (user) p50/p99 ms | "
            "LIKE (table) p50/p99 ms | LIKE user / table vs chatledger p50 | load |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(search_rows))
    if append_rows:
        print("\n| backend | append with index p50 ms | without p50 ms | ratio |")
        print("|---|---|---|---|")
        print("\n".join(append_rows))
    if part_rows:
        print("\n| SQLite append (turns op by op) | p50 ms | / without |")
        print("|---|---|---|")
        print("\n".join(part_rows))
    if vector_rows:
        print("\n| backend | engine | chunks x dimension | top-10 p50 ms | recall@10 |")
        print("|---|---|---|---|---|")
        print("\n".join(vector_rows))


if __name__ == "__main__":
    main()
