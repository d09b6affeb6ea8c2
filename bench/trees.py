"""Message trees (issue 14): the last 20 messages of the active path against today's linear
last-20, and an append with a parent against a linear append, in the same run.

    python -m bench.trees [--messages 200000] [--backends sqlite,postgresql,mariadb]
                          [--rounds 5] [--reads 400] [--appends 200]

One scratch database per backend holds ``--messages`` messages: half in linear conversations
of 200, half in conversations of 200 with 3 branches (two regenerates and an edit), the active
leaf switched to a branch that is not the newest, so the active path is not the tail of the
``seq`` order. The rounds alternate the two kinds of conversation (and the two kinds of append);
p50 and p95 in microseconds and the ratios are printed, and "flat with size" is the ratio of
two runs (``--messages 2000000`` / ``200000``). Run it on a quiet machine: only one benchmark
at a time.
"""

from __future__ import annotations

import argparse
import functools
import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from chatledger import Ledger, migrate
from chatledger._bulk import bulk_insert
from chatledger._schema import conversations, messages, users

from .databases import BACKENDS, Scratches
from .harness import percentile

PER_CONVERSATION = 200


def _tree_rows(
    chat: uuid.UUID, start: datetime, branched: bool
) -> tuple[list[dict[str, Any]], int, int]:
    """The messages of one conversation as rows, its active leaf and its path length.

    Linear: 200 messages in a chain. Branched: a chain of 170, then at message 100 an edit
    (a new user message) with a 20-message branch, and at 150 two regenerates with 5 each; the
    active leaf is the end of the edit's branch (not the newest message)."""
    parent: dict[int, int | None] = {}
    if not branched:
        for seq in range(1, PER_CONVERSATION + 1):
            parent[seq] = seq - 1 or None
        leaf = PER_CONVERSATION
    else:
        for seq in range(1, 171):
            parent[seq] = seq - 1 or None
        seq = 170
        branches: list[tuple[int, int]] = [(99, 20), (149, 5), (149, 5)]
        leaves = []
        for fork, length in branches:
            previous: int | None = fork
            for _ in range(length):
                seq += 1
                parent[seq] = previous
                previous = seq
            leaves.append(seq)
        leaf = leaves[0]
    path = []
    step: int | None = leaf
    while step is not None:
        path.append(step)
        step = parent[step]
    on_path = set(path)
    depth: dict[int, int] = {}
    siblings: dict[int | None, int] = {}
    rows = []
    for seq in sorted(parent):
        p = parent[seq]
        depth[seq] = 0 if p is None else depth[p] + 1
        index = siblings.get(p, 0)
        siblings[p] = index + 1
        rows.append(
            {
                "conversation_id": chat,
                "seq": seq,
                "id": uuid.uuid4(),
                "role": "user" if depth[seq] % 2 == 0 else "assistant",
                "content": f"message {seq} " + "lorem ipsum " * 20,
                "intent": None,
                "metadata": None,
                "model": None,
                "input_tokens": None,
                "output_tokens": None,
                "cost": None,
                "latency_ms": None,
                "request_id": None,
                "idempotency_key": None,
                "created_at": start + timedelta(milliseconds=seq),
                "parent_seq": p,
                "depth": depth[seq],
                "sibling_index": index,
                "on_active_path": seq in on_path,
                "status": "completed",
            }
        )
    return rows, leaf, len(path)


def load(url: Any, total: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Fill a migrated database; (linear conversations, branched conversations)."""
    migrate.upgrade(url)
    owner = uuid.uuid4()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    count = max(2, total // PER_CONVERSATION)
    linear: list[uuid.UUID] = []
    branched: list[uuid.UUID] = []
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            bulk_insert(
                conn,
                users,
                [
                    {
                        "id": owner,
                        "role": "user",
                        "created_at": now,
                        "updated_at": now,
                        "external_id": None,
                        "email": None,
                        "username": None,
                        "display_name": None,
                        "password_hash": None,
                        "metadata": None,
                    }
                ],
            )
        for index in range(count):
            chat = uuid.uuid4()
            is_branched = index % 2 == 1
            rows, leaf, path_length = _tree_rows(chat, now, is_branched)
            with engine.begin() as conn:
                bulk_insert(
                    conn,
                    conversations,
                    [
                        {
                            "id": chat,
                            "owner_id": owner,
                            "title": None,
                            "intent": None,
                            "status": "active",
                            "message_count": len(rows),
                            "last_message_at": now,
                            "last_activity_at": now,
                            "archived_at": None,
                            "metadata": None,
                            "created_at": now,
                            "updated_at": now,
                            "active_leaf_seq": leaf,
                            "path_length": path_length,
                            "forked_from_conversation_id": None,
                            "forked_from_message_id": None,
                        }
                    ],
                )
                bulk_insert(conn, messages, rows)
            (branched if is_branched else linear).append(chat)
    finally:
        engine.dispose()
    return linear, branched


def _timed(fn: Callable[[], object], times: int) -> list[float]:
    spent = []
    for _ in range(times):
        began = time.perf_counter_ns()
        fn()
        spent.append((time.perf_counter_ns() - began) / 1000)
    return spent


def _cycle(items: list[uuid.UUID]) -> Iterator[uuid.UUID]:
    while True:
        yield from random.sample(items, len(items))


def _linear(ledger: Ledger, chat: uuid.UUID) -> object:
    return ledger.messages.append(chat, "assistant", "a")


def _under(ledger: Ledger, chat: uuid.UUID, parent: uuid.UUID) -> object:
    return ledger.messages.append(chat, "assistant", "b", parent_id=parent)


def measure(
    url: Any, linear: list[uuid.UUID], branched: list[uuid.UUID], args: Any
) -> dict[str, float]:
    results: dict[str, list[float]] = {
        k: [] for k in ("read_linear", "read_tree", "append", "append_parent")
    }
    with Ledger(url) as ledger:
        lin, tree = _cycle(linear), _cycle(branched)
        ledger.messages.last(linear[0], 20)  # warm the pool
        for _ in range(args.rounds):
            results["read_linear"] += _timed(
                lambda: ledger.messages.last(next(lin), 20), args.reads
            )
            results["read_tree"] += _timed(lambda: ledger.messages.last(next(tree), 20), args.reads)
            chat = ledger.conversations.create(ledger.users.create().id).id
            first = ledger.messages.append(chat, "user", "q").id
            results["append"] += _timed(functools.partial(_linear, ledger, chat), args.appends)
            # Regenerates: each a new child of the same message, the path rewritten.
            results["append_parent"] += _timed(
                functools.partial(_under, ledger, chat, first), args.appends
            )
    out: dict[str, float] = {}
    for name, values in results.items():
        out[f"{name}_p50"] = percentile(values, 50)
        out[f"{name}_p95"] = percentile(values, 95)
    out["read_ratio"] = out["read_tree_p50"] / out["read_linear_p50"]
    out["append_ratio"] = out["append_parent_p50"] / out["append_p50"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trees", description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--appends", type=int, default=200)
    args = parser.parse_args(argv)
    backends = tuple(b for b in args.backends.split(",") if b)
    scratches = Scratches(backends)
    try:
        for backend in backends:
            if not scratches.available(backend):
                print(f"{backend}: n/a ({scratches.unreachable.get(backend)})")
                continue
            scratch = scratches.create(backend, "trees")
            began = time.monotonic()
            linear, branched = load(scratch.url, args.messages)
            loaded = time.monotonic() - began
            row = measure(scratch.url, linear, branched, args)
            print(
                f"{backend}: {args.messages:,} messages (loaded in {loaded:.0f} s) | "
                f"last-20 linear p50 {row['read_linear_p50']:.0f} µs, "
                f"active path p50 {row['read_tree_p50']:.0f} µs "
                f"(p95 {row['read_linear_p95']:.0f} / {row['read_tree_p95']:.0f}), "
                f"ratio {row['read_ratio']:.2f} | append p50 {row['append_p50']:.0f} µs, "
                f"with parent {row['append_parent_p50']:.0f} µs, ratio {row['append_ratio']:.2f}"
            )
            scratches.drop(scratch)
    finally:
        scratches.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
