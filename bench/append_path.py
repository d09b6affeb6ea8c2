"""The append write path, step by step: statements per append and µs per append beside the raw
reference, interleaved in small blocks in one process (issue 21 items 2 and 4).

    python -m bench.append_path --backends sqlite postgresql mariadb --blocks 20 --block 50
    python -m bench.append_path --backends sqlite --threads 4 --thread-appends 500
    python -m bench.append_path --backends mariadb --previous  # the step against the code before

Cases: ``plain`` (no key), ``key`` (a fresh idempotency key each time), ``charge`` (debits one
token), ``tools`` (an assistant message asking for one tool call), and ``raw``
(bench/raw.py's tree-aware append). Statements are counted with a ``before_cursor_execute``
listener on a second ledger (commits counted apart: each is a round trip on the servers);
times are medians of the per-block means, taken with no listener. With ``--threads``, the
same number of threads append to ONE conversation, chatledger against raw, alternating.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from chatledger import Ledger

from .data import messages
from .databases import Scratches
from .raw import Raw, raw_for

__all__ = ["main"]

CASES = ("plain", "key", "charge", "tools")


def _appender(ledger: Ledger, conversation: uuid.UUID, case: str) -> Callable[[int], Any]:
    batch = messages(1000)
    tag = uuid.uuid4().hex[:8]

    def append(i: int) -> Any:
        msg = batch[i % len(batch)]
        extra: dict[str, Any] = {}
        if case == "key":
            extra["idempotency_key"] = f"{tag}-{i}"
        elif case == "charge":
            extra["charge"] = 1
        elif case == "tools":
            extra["tool_calls"] = [{"id": f"{tag}-{i}", "name": "f", "arguments": {"a": 1}}]
            return ledger.messages.append(conversation, "assistant", msg.content, **extra)
        return ledger.messages.append(conversation, msg.role, msg.content, **extra)  # type: ignore[arg-type]

    return append


def _statements(url: str, owner: uuid.UUID, case: str) -> tuple[float, float]:
    """(cursor executes, commits) per append of ``case``, on a ledger with a listener."""
    with Ledger(url) as ledger:
        conversation = ledger.conversations.create(owner).id
        append = _appender(ledger, conversation, case)
        append(0)
        counts = {"sql": 0, "commit": 0}
        engines = ledger._core.db.engines

        def on_sql(*_args: Any) -> None:
            counts["sql"] += 1

        def on_commit(*_args: Any) -> None:
            counts["commit"] += 1

        for engine in engines:
            event.listen(engine, "before_cursor_execute", on_sql)
            event.listen(engine, "commit", on_commit)
        for i in range(1, 21):
            append(i)
        return counts["sql"] / 20, counts["commit"] / 20


def _previous(ledger: Ledger, run: Callable[[int], Any]) -> Callable[[int], Any]:
    """``run`` with session 6's steps turned off (the previous code path, for comparison in
    the same process): no append numbered by the database, the idempotency key looked up
    again after the bump."""
    backend = type(ledger._core.db.backend)

    def call(i: int) -> Any:
        saved = backend.numbers_appends, backend.writes_exclusive
        backend.numbers_appends = backend.writes_exclusive = False
        try:
            return run(i)
        finally:
            backend.numbers_appends, backend.writes_exclusive = saved

    return call


def _timed(fn: Callable[[int], Any], start: int, count: int, clock: Callable[[], float]) -> float:
    began = clock()
    for i in range(start, start + count):
        fn(i)
    return (clock() - began) / count * 1e6


def _sequential(backend: str, scratches: Scratches, args: argparse.Namespace) -> None:
    scratch = scratches.create(backend, "append_path")
    url = scratch.url_string
    with Ledger(url) as ledger:
        owner = ledger.users.get_or_create("bench-user").id
        ledger.tokens.credit(10**9, user_id=owner, reason="bench")
        for case in CASES:
            sql, commits = _statements(url, owner, case)
            print(f"{backend:10} {case:7} statements/append: {sql:.2f} + {commits:.2f} commit")
        raw = raw_for(scratch)
        (raw_conversation,) = raw.create_conversations(owner, 1)
        batch = messages(1000)
        runs: dict[str, Callable[[int], Any]] = {
            "raw": lambda i: raw.append(raw_conversation, batch[i % len(batch)])
        }
        for case in CASES:
            runs[case] = _appender(ledger, ledger.conversations.create(owner).id, case)
            if args.previous:
                again = _appender(ledger, ledger.conversations.create(owner).id, case)
                runs[f"{case}/prev"] = _previous(ledger, again)
        clock = time.thread_time if args.cpu else time.perf_counter
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run in runs.values():  # warm
            _timed(run, 0, 20, clock)
        for block in range(args.blocks):
            order = list(runs.items())
            shift = block % len(order)
            for name, run in order[shift:] + order[:shift]:
                times[name].append(_timed(run, 100 + block * args.block, args.block, clock))
        reference = statistics.median(times["raw"])
        for name, values in times.items():
            median = statistics.median(values)
            print(
                f"{backend:10} {name:12} {median:8.1f} µs/append "
                f"(min {min(values):.1f})  raw/this {reference / median:.2f}"
            )
        raw.close()


def _append_many_times(
    ledger: Ledger,
    conversation: uuid.UUID,
    barrier: threading.Barrier,
    count: int,
    n: int,
    raw: Raw | None,
) -> None:
    """One thread's appends to ``conversation`` (through ``raw`` when given)."""
    batch = messages(1000)
    barrier.wait()
    for i in range(count):
        msg = batch[(n * 7 + i) % len(batch)]
        if raw is None:
            ledger.messages.append(conversation, msg.role, msg.content)  # type: ignore[arg-type]
        else:
            raw.append(conversation, msg)


def _contended(backend: str, scratches: Scratches, args: argparse.Namespace) -> None:
    """``threads`` threads appending to one conversation: chatledger, then raw, alternating."""
    scratch = scratches.create(backend, "append_threads")
    with Ledger(scratch.url_string) as ledger:
        owner = ledger.users.get_or_create("bench-user").id
        helper = raw_for(scratch)
        rates: dict[str, list[float]] = {"chatledger": [], "raw": []}
        for _rep in range(args.reps):
            for system in ("chatledger", "raw"):
                (conversation,) = helper.create_conversations(owner, 1)
                raws = [helper.clone() for _ in range(args.threads)] if system == "raw" else []
                barrier = threading.Barrier(args.threads + 1)
                work = functools.partial(
                    _append_many_times, ledger, conversation, barrier, args.thread_appends
                )
                threads = [
                    threading.Thread(target=work, args=(n, raws[n] if raws else None))
                    for n in range(args.threads)
                ]
                for thread in threads:
                    thread.start()
                barrier.wait()
                began = time.perf_counter()
                for thread in threads:
                    thread.join()
                elapsed = time.perf_counter() - began
                rates[system].append(args.threads * args.thread_appends / elapsed)
                seqs, counter = helper.verify(conversation)
                expected = args.threads * args.thread_appends
                assert len(seqs) == len(set(seqs)) == counter == expected, (system, counter)
                for mine in raws:
                    mine.close()
        ours, theirs = statistics.median(rates["chatledger"]), statistics.median(rates["raw"])
        print(
            f"{backend:10} {args.threads} threads, one conversation: chatledger {ours:,.0f}/s, "
            f"raw {theirs:,.0f}/s, ratio {ours / theirs:.2f} "
            f"(per rep: {[round(r) for r in rates['chatledger']]} vs "
            f"{[round(r) for r in rates['raw']]})"
        )
        helper.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.append_path", description=__doc__)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql", "mariadb"])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--thread-appends", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--previous", action="store_true", help="also time each case on the previous code path"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="this thread's CPU time, not wall time (SQLite)"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    scratches = Scratches(tuple(args.backends))
    try:
        for backend in args.backends:
            if not scratches.available(backend):
                print(f"{backend}: {scratches.unreachable[backend]}")
                continue
            if args.threads:
                _contended(backend, scratches, args)
            else:
                _sequential(backend, scratches, args)
    finally:
        scratches.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
