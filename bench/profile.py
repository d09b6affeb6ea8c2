"""Where chatledger's time goes: one operation in a loop under pyinstrument, beside the raw
reference doing the same work, with the top functions by self time and their share.

    python -m bench.profile --backend postgresql --op append
    python -m bench.profile --backend sqlite --op read --surface async --ops 3000
    python -m bench.profile --backend mariadb --op bulk --tree

Ops: append (per-turn), read (last 20 of a 200-message conversation), sidebar (first page of
1,000 conversations), bulk (append_many of 10,000). The async surface on SQLite runs on worker
threads, which pyinstrument does not sample: use py-spy for it
(``py-spy record -o profile.svg -- python -m bench.profile --backend sqlite --surface async``).
"""

from __future__ import annotations

import argparse
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .chatledger_runs import ChatledgerAsync, ChatledgerSync
from .data import messages
from .databases import Scratches
from .raw import raw_for

__all__ = ["main"]


def _flat(session: Any, top: int) -> list[tuple[str, float, float]]:
    """(file:function, self seconds, share of the total) for the ``top`` heaviest frames."""
    root = session.root_frame()
    totals: dict[str, float] = defaultdict(float)
    stack = [root]
    while stack:
        frame = stack.pop()
        stack.extend(frame.children)
        if frame.identifier.startswith("["):  # synthetic ([self], [await]): counted in parent
            continue
        path = Path(frame.file_path or "?")
        name = f"{'/'.join(path.parts[-2:])}:{frame.function}"
        totals[name] += frame.total_self_time
    whole = root.time or 1.0
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:top]
    return [(name, seconds, seconds / whole) for name, seconds in ranked]


def _profiled(label: str, run: Callable[[], None], *, tree: bool, top: int) -> float:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0001, async_mode="disabled")
    started = time.perf_counter()
    profiler.start()
    run()
    profiler.stop()
    elapsed = time.perf_counter() - started
    print(f"\n=== {label}: {elapsed:.3f}s")
    session = profiler.last_session
    assert session is not None
    for name, seconds, share in _flat(session, top):
        print(f"  {share:6.1%}  {seconds:8.3f}s  {name}")
    if tree:
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql", "mariadb"))
    parser.add_argument("--op", default="append", choices=("append", "read", "sidebar", "bulk"))
    parser.add_argument("--surface", default="sync", choices=("sync", "async"))
    parser.add_argument("--ops", type=int, default=2000, help="operations per profile")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument("--tree", action="store_true", help="print pyinstrument's call tree")
    parser.add_argument("--no-raw", action="store_true", help="profile chatledger only")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    scratches = Scratches((args.backend,))
    if not scratches.available(args.backend):
        raise SystemExit(scratches.unreachable[args.backend])
    try:
        scratch = scratches.create(args.backend, f"profile_{args.op}")
        setup = ChatledgerSync(scratch)
        owner = setup.user("bench-user")
        setup.close()
        raw = raw_for(scratch)
        per = 200
        conversations = raw.create_conversations(
            owner, 100, messages_each=per if args.op == "read" else 0, spread=True
        )
        if args.op == "read":
            raw.load_messages(conversations, per)
        if args.op == "sidebar":
            conversations += raw.create_conversations(owner, 900, spread=True)
        batch = messages(10_000)
        items = [msg.as_batch_item() for msg in batch]
        ops = args.ops if args.op != "bulk" else max(1, args.ops // 400)
        bulk_targets = raw.create_conversations(owner, 2 * ops + 2) if args.op == "bulk" else []
        ledger: Any
        ledger = ChatledgerSync(scratch) if args.surface == "sync" else ChatledgerAsync(scratch)

        def pick(i: int) -> uuid.UUID:
            return conversations[(i * 37) % 100]

        def chatledger_op(i: int) -> Any:
            if args.op == "append":
                return ledger.append(pick(i), batch[i % len(batch)])
            if args.op == "read":
                return ledger.last(pick(i))
            if args.op == "sidebar":
                return ledger.sidebar(owner)
            return ledger.bulk(bulk_targets[i], items)

        def raw_op(i: int) -> Any:
            if args.op == "append":
                return raw.append(pick(i), batch[i % len(batch)])
            if args.op == "read":
                return raw.last(pick(i))
            if args.op == "sidebar":
                return raw.sidebar(owner)
            bulk = raw.bulk_copy if args.backend == "postgresql" else raw.bulk
            return bulk(bulk_targets[ops + 1 + i], batch)

        def run_chatledger(count: int, offset: int = 0) -> None:
            if args.surface == "async":

                async def body() -> None:
                    for i in range(offset, offset + count):
                        await chatledger_op(i)

                ledger.loop.run_until_complete(body())
                return
            for i in range(offset, offset + count):
                chatledger_op(i)

        def run_raw(count: int, offset: int = 0) -> None:
            for i in range(offset, offset + count):
                raw_op(i)

        # Warm both (connections, prepared statements, caches), then profile.
        if args.op != "bulk":
            run_chatledger(min(ops, 50))
            run_raw(min(ops, 50))
        spent = _profiled(
            f"chatledger {args.surface} {args.op} x{ops} on {args.backend}",
            lambda: run_chatledger(ops),
            tree=args.tree,
            top=args.top,
        )
        if not args.no_raw:
            raw_spent = _profiled(
                f"raw {args.op} x{ops} on {args.backend}",
                lambda: run_raw(ops),
                tree=args.tree,
                top=args.top,
            )
            print(f"\nchatledger / raw time: {spent / raw_spent:.2f}x")
        ledger.close()
        raw.close()
    finally:
        scratches.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
