"""The LangGraph saver: ``ChatledgerSaver`` against LangGraph's official saver, per turn.

    PYTHONPATH=src python -m bench.saver [--backends sqlite,postgresql,mariadb]
                                         [--turns 200] [--block 10] [--thread-turns 50]

One turn is ``graph.invoke({"messages": [HumanMessage]}, thread)`` on the minimal chat graph
(``bench/_chat_graph.py``: one node answering with one ``AIMessage``). Each saver runs on a
scratch database of its own on the same server (``SqliteSaver`` / ``PostgresSaver`` /
``PyMySQLSaver``, connections set up as ``checkpointer_for`` makes them), and the two alternate in
blocks of ``--block`` turns within this one process, so that the machine's load swings hit both
alike. A thread takes ``--thread-turns`` turns, then a new one starts (both savers' threads grow
alike). It prints the p50 and p90 of a turn's wall time for each saver and the ratio of the
p50s (chatledger / official); the median process CPU time per turn of each saver's blocks (this
process's threads only: a database server's own CPU is not in it) and its ratio; the statements
and transactions of one ChatledgerSaver turn (SQLAlchemy's ``before_cursor_execute``, ``begin``
and ``commit`` events; BEGIN/COMMIT are not counted as statements) and, on SQLite, the official
saver's statements (``sqlite3``'s trace callback, BEGIN/COMMIT excluded).

On a machine shared with other work, read the ratios (both savers suffer the same load, block
by block), not the milliseconds.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import event

from .databases import BACKENDS, Scratch, Scratches

_SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")


class Side:
    """One saver, its graph and its current thread."""

    def __init__(self, name: str, saver: Any, thread_turns: int) -> None:
        from ._chat_graph import builder

        self.name = name
        self.saver = saver
        self.graph = builder().compile(checkpointer=saver)
        self.thread_turns = thread_turns
        self.turns = 0
        self.thread = ""
        self.times: list[float] = []
        #: Process CPU time per turn, one value per block (all threads of this process).
        self.cpu: list[float] = []

    def turn(self, text: str) -> None:
        from langchain_core.messages import HumanMessage

        if self.turns % self.thread_turns == 0:
            self.thread = f"bench-{uuid.uuid4()}"
        self.turns += 1
        self.graph.invoke(
            {"messages": [HumanMessage(content=text)]}, {"configurable": {"thread_id": self.thread}}
        )

    def timed(self, text: str) -> None:
        start = time.perf_counter()
        self.turn(text)
        self.times.append(time.perf_counter() - start)


def _official(scratch: Scratch, stack: ExitStack) -> tuple[Any, Callable[[], int] | None]:
    """LangGraph's saver for the scratch database, and (SQLite) a statement counter."""
    if scratch.backend == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(str(scratch.path), check_same_thread=False)
        stack.callback(conn.close)
        for pragma in _SQLITE_PRAGMAS:
            conn.execute(pragma)
        seen = [0]

        def trace(statement: str) -> None:
            if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT"):
                seen[0] += 1

        conn.set_trace_callback(trace)
        saver: Any = SqliteSaver(conn)
        saver.setup()
        return saver, lambda: seen[0]
    if scratch.backend == "postgresql":
        from langgraph.checkpoint.postgres import PostgresSaver

        saver = stack.enter_context(
            PostgresSaver.from_conn_string(
                scratch.url_string.replace("postgresql+psycopg", "postgresql")
            )
        )
        saver.setup()
        return saver, None
    import pymysql
    from langgraph.checkpoint.mysql.pymysql import PyMySQLSaver

    kwargs = scratch.pymysql_kwargs()
    kwargs["autocommit"] = True
    conn = pymysql.connect(**kwargs)
    stack.callback(conn.close)
    saver = PyMySQLSaver(conn)
    saver.setup()
    return saver, None


@contextmanager
def counting(engines: Any) -> Iterator[dict[str, int]]:
    """Statements, transactions (begins) and commits on ``engines`` while the block runs."""
    counts = {"statements": 0, "transactions": 0, "commits": 0}

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if sql.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            counts["statements"] += 1

    def begin(*_: Any) -> None:
        counts["transactions"] += 1

    def commit(*_: Any) -> None:
        counts["commits"] += 1

    hooks = (("before_cursor_execute", statement), ("begin", begin), ("commit", commit))
    for engine in engines:
        for name, hook in hooks:
            event.listen(engine, name, hook)
    try:
        yield counts
    finally:
        for engine in engines:
            for name, hook in hooks:
                event.remove(engine, name, hook)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(backend: str, scratches: Scratches, args: argparse.Namespace) -> dict[str, Any]:
    from chatledger import Ledger
    from chatledger.integrations.langgraph import ChatledgerSaver

    with ExitStack() as stack:
        ledger = stack.enter_context(Ledger(scratches.create(backend, "ledger").url_string))
        user = ledger.users.create(external_id=f"bench-{uuid.uuid4()}")
        ours = Side("chatledger", ChatledgerSaver(ledger, user_id=user.id), args.thread_turns)
        official_saver, official_count = _official(scratches.create(backend, "official"), stack)
        theirs = Side(type(official_saver).__name__, official_saver, args.thread_turns)
        for side in (ours, theirs):  # warm-up: a thread's first turns, caches, prepared plans
            for i in range(3):
                side.turn(f"warm-up {i}")
        # Counted turns: one more turn of a warm thread.
        with counting(ledger._core.db.engines) as counts:
            ours.turn("counted")
        theirs_statements = None
        if official_count is not None:
            before = official_count()
            theirs.turn("counted")
            theirs_statements = official_count() - before
        done = 0
        while done < args.turns:
            for side in (ours, theirs) if done % (2 * args.block) == 0 else (theirs, ours):
                cpu = time.process_time()
                for i in range(args.block):
                    side.timed(f"turn {done + i}")
                side.cpu.append((time.process_time() - cpu) / args.block)
            done += args.block
        result: dict[str, Any] = {
            "backend": backend,
            "ours_p50": _p(ours.times, 0.5),
            "ours_p90": _p(ours.times, 0.9),
            "theirs": theirs.name,
            "theirs_p50": _p(theirs.times, 0.5),
            "theirs_p90": _p(theirs.times, 0.9),
            "ours_cpu": statistics.median(ours.cpu) * 1000,
            "theirs_cpu": statistics.median(theirs.cpu) * 1000,
            "statements": counts["statements"],
            "transactions": counts["transactions"],
            "commits": counts["commits"],
            "theirs_statements": theirs_statements,
        }
        result["ratio"] = result["ours_p50"] / result["theirs_p50"]
        result["cpu_ratio"] = result["ours_cpu"] / result["theirs_cpu"]
        return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.saver", description=__doc__)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--turns", type=int, default=200, help="timed turns per saver")
    parser.add_argument("--block", type=int, default=10, help="turns per block")
    parser.add_argument("--thread-turns", type=int, default=50, help="turns per thread")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    backends = tuple(args.backends.split(","))
    scratches = Scratches(backends)
    try:
        print(
            f"{'backend':<11} {'official':<15} {'ChatledgerSaver p50/p90':>24} "
            f"{'official p50/p90':>18} {'ratio':>6} {'CPU ms ours/official':>21} "
            f"{'ratio':>6} {'stmts/tx per turn':>18} {'official stmts':>15}"
        )
        for backend in backends:
            if not scratches.available(backend):
                print(f"{backend:<11} n/a: {scratches.unreachable.get(backend)}")
                continue
            r = run(backend, scratches, args)
            theirs = "n/a" if r["theirs_statements"] is None else str(r["theirs_statements"])
            print(
                f"{backend:<11} {r['theirs']:<15} "
                f"{r['ours_p50']:>11.2f} / {r['ours_p90']:>6.2f} ms "
                f"{r['theirs_p50']:>7.2f} / {r['theirs_p90']:>6.2f} ms {r['ratio']:>6.2f} "
                f"{r['ours_cpu']:>10.2f} / {r['theirs_cpu']:>6.2f} ms {r['cpu_ratio']:>6.2f} "
                f"{r['statements']:>9} / {r['transactions']:<7} {theirs:>15}",
                flush=True,
            )
    finally:
        scratches.close()


if __name__ == "__main__":
    main()
