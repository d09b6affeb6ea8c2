"""Timing, percentiles, result records and the run's settings (smoke, quick, full)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "Chunk",
    "NotAvailable",
    "Record",
    "Settings",
    "Status",
    "Timing",
    "percentile",
    "settings_for",
    "time_async",
    "time_sync",
]

T = TypeVar("T")
Status = Literal["ok", "n/a", "error"]


class NotAvailable(Exception):
    """A system cannot do a workload; the message says why (shown as "n/a")."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The sizes of one mode."""

    mode: Literal["smoke", "quick", "full"]
    #: append: conversations written to, appends per system per round, rounds, warm-up
    #: appends. Many short rounds: commit latency (fsync) drifts, so systems alternate often.
    append_conversations: int
    append_ops: int
    append_rounds: int
    append_warmup: int
    #: read: the two store sizes (messages), reads per system per round, warm-up reads.
    store_small: int
    store_big: int
    messages_per_conversation: int
    read_ops: int
    read_warmup: int
    #: the wall-clock cap (s) for one peer's reads of one store (their reads can be slow).
    peer_read_budget: float
    #: sidebar: the user's conversations, other users' conversations, page reads per round.
    sidebar_conversations: int
    sidebar_noise: int
    sidebar_ops: int
    #: concurrency: threads (tasks), appends per thread, repetitions.
    threads: int
    thread_appends: int
    concurrency_reps: int
    #: bulk: messages per call, repetitions.
    bulk_size: int
    bulk_reps: int
    #: rounds: every system runs once per round, in rotated order, so drift hits all alike.
    rounds: int
    #: Within a round, raw and chatledger take turns in blocks of this many operations (in
    #: rotated order), so a burst of load from other processes hits every system alike.
    block: int = 10


def settings_for(mode: str) -> Settings:
    """The sizes of ``mode``."""
    if mode == "smoke":
        return Settings(
            mode="smoke",
            append_conversations=10,
            append_ops=25,
            append_rounds=1,
            append_warmup=5,
            store_small=1_000,
            store_big=2_000,
            messages_per_conversation=50,
            read_ops=10,
            read_warmup=5,
            peer_read_budget=2.0,
            sidebar_conversations=50,
            sidebar_noise=50,
            sidebar_ops=10,
            threads=4,
            thread_appends=5,
            concurrency_reps=1,
            bulk_size=300,
            bulk_reps=1,
            rounds=1,
            block=5,
        )
    if mode == "quick":
        return Settings(
            mode="quick",
            append_conversations=100,
            append_ops=60,
            append_rounds=10,
            append_warmup=30,
            store_small=20_000,
            store_big=200_000,
            messages_per_conversation=200,
            read_ops=100,
            read_warmup=30,
            peer_read_budget=8.0,
            sidebar_conversations=1_000,
            sidebar_noise=4_000,
            sidebar_ops=100,
            threads=4,
            thread_appends=100,
            concurrency_reps=2,
            bulk_size=10_000,
            bulk_reps=6,
            rounds=3,
        )
    if mode == "full":
        return Settings(
            mode="full",
            append_conversations=500,
            append_ops=150,
            append_rounds=20,
            append_warmup=100,
            store_small=200_000,
            store_big=2_000_000,
            messages_per_conversation=200,
            read_ops=300,
            read_warmup=100,
            peer_read_budget=30.0,
            sidebar_conversations=1_000,
            sidebar_noise=9_000,
            sidebar_ops=300,
            threads=4,
            thread_appends=400,
            concurrency_reps=3,
            bulk_size=10_000,
            bulk_reps=5,
            rounds=5,
        )
    raise ValueError(f"unknown mode {mode!r}")


@dataclass(slots=True)
class Chunk:
    """The latencies of a run of operations and its wall time."""

    latencies_ns: list[int] = field(default_factory=list)
    wall_ns: int = 0
    errors: int = 0

    def extend(self, other: Chunk) -> None:
        self.latencies_ns.extend(other.latencies_ns)
        self.wall_ns += other.wall_ns
        self.errors += other.errors


def time_sync(fn: Callable[[T], object], args: Sequence[T]) -> Chunk:
    """Call ``fn(arg)`` for each arg; each call timed with ``perf_counter_ns``."""
    clock = time.perf_counter_ns
    latencies: list[int] = []
    start = clock()
    for arg in args:
        before = clock()
        fn(arg)
        latencies.append(clock() - before)
    return Chunk(latencies, clock() - start)


async def time_async(fn: Callable[[T], Awaitable[object]], args: Sequence[T]) -> Chunk:
    """Await ``fn(arg)`` for each arg, one after the other; each await timed."""
    clock = time.perf_counter_ns
    latencies: list[int] = []
    start = clock()
    for arg in args:
        before = clock()
        await fn(arg)
        latencies.append(clock() - before)
    return Chunk(latencies, clock() - start)


def run_async(loop: asyncio.AbstractEventLoop, coro: Awaitable[T]) -> T:
    """Run ``coro`` to completion on ``loop`` (each async system keeps its own loop)."""
    return loop.run_until_complete(coro)


def percentile(values: Sequence[int | float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Timing:
    """Summary of timed operations: latency percentiles (microseconds) and throughput."""

    ops: int
    p50_us: float
    p99_us: float
    mean_us: float
    per_s: float
    per_s_rounds: tuple[float, ...]

    @classmethod
    def of(cls, chunks: Sequence[Chunk], *, units_per_op: int = 1) -> Timing:
        """Latencies pooled over ``chunks``; throughput = the median over chunks (rounds)."""
        latencies = [ns for chunk in chunks for ns in chunk.latencies_ns]
        rates = tuple(
            len(chunk.latencies_ns) * units_per_op / (chunk.wall_ns / 1e9)
            for chunk in chunks
            if chunk.wall_ns > 0 and chunk.latencies_ns
        )
        return cls(
            ops=len(latencies),
            p50_us=percentile(latencies, 50) / 1000,
            p99_us=percentile(latencies, 99) / 1000,
            mean_us=(statistics.fmean(latencies) / 1000) if latencies else float("nan"),
            per_s=statistics.median(rates) if rates else float("nan"),
            per_s_rounds=rates,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "p50_us": round(self.p50_us, 2),
            "p99_us": round(self.p99_us, 2),
            "mean_us": round(self.mean_us, 2),
            "per_s": round(self.per_s, 2),
            "per_s_rounds": [round(rate, 2) for rate in self.per_s_rounds],
        }


@dataclass(slots=True)
class Record:
    """One measured (or unavailable) system on one workload of one backend."""

    backend: str
    workload: str
    #: A sub-case: the store size for reads, "own"/"one" for concurrency, the method for bulk.
    case: str
    system: str
    surface: Literal["sync", "async"]
    status: Status
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Against the raw reference doing chatledger's work (``raw``) of the same backend,
    #: workload and case, in this run: throughput ratio for writes (higher is better), p50
    #: ratio for reads (lower is better).
    vs_raw: float | None = None
    note: str | None = None
    #: The same ratio against the bare raw operation (``raw-bare``: the physical limit).
    vs_bare: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "workload": self.workload,
            "case": self.case,
            "system": self.system,
            "surface": self.surface,
            "status": self.status,
            "reason": self.reason,
            "metrics": self.metrics,
            "vs_raw": None if self.vs_raw is None else round(self.vs_raw, 3),
            "vs_bare": None if self.vs_bare is None else round(self.vs_bare, 3),
            "note": self.note,
        }
