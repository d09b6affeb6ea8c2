"""The workloads, run for every system of one backend in the same process and run.

Systems: ``raw-bare`` (the bare operation: the physical limit), ``raw`` (raw SQL doing
chatledger's work), ``chatledger`` (sync and async surfaces) and the peers. Each system gets a
fresh database of its own per workload, the read and sidebar stores included: every core
system reads its own copy of the same data (same conversation ids, same message rows), loaded
the same way, so no system reads pages another one warmed; the peers get their own copy of the
same logical data. Every workload runs in rounds; each round runs every system, taking turns
in small blocks in a rotated order, so drift of the noisy machine hits all of them.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from uuid_utils.compat import uuid7

from .chatledger_runs import ChatledgerAsync, ChatledgerSync
from .data import Msg, message, messages
from .databases import Scratch, Scratches
from .harness import Chunk, NotAvailable, Record, Settings, Timing, time_async, time_sync
from .peers import PEERS, Peer
from .raw import Raw, bare_for, raw_for

__all__ = ["CORE", "WORKLOADS", "Runner"]

T = TypeVar("T")

WORKLOADS: Final = ("append", "read", "sidebar", "concurrency", "bulk")
#: The core systems, (system, surface): the two raw references and chatledger's two surfaces.
Surface = Literal["sync", "async"]
CORE: Final[tuple[tuple[str, Surface], ...]] = (
    ("raw-bare", "sync"),
    ("raw", "sync"),
    ("chatledger", "sync"),
    ("chatledger", "async"),
)


@dataclass(eq=False)
class Subject:
    """One system under measurement, on its database."""

    system: str
    surface: Literal["sync", "async"]
    impl: Any
    #: The owner and conversations it works on.
    owner: uuid.UUID | None = None
    conversations: list[uuid.UUID] = field(default_factory=list)
    #: Setup/verification on chatledger's schema (the raw driver), when there is one.
    helper: Raw | None = None
    scratch: Scratch | None = None
    units_per_op: int = 1
    note: str | None = None
    error: str | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        loop = getattr(self.impl, "loop", None)
        return loop if isinstance(loop, asyncio.AbstractEventLoop) else None

    @property
    def is_peer(self) -> bool:
        return isinstance(self.impl, Peer)

    def timed(self, fn: Callable[[T], Any], args: Sequence[T]) -> Chunk:
        """Time ``fn`` over ``args`` (awaited on the subject's loop when it is async)."""
        loop = self.loop
        if loop is not None:
            return loop.run_until_complete(time_async(fn, args))
        return time_sync(fn, args)

    def close(self) -> None:
        for thing in (self.impl, self.helper):
            if thing is None or (thing is self.helper and thing is self.impl):
                continue
            try:
                thing.close()
            except Exception as exc:  # keep closing the others
                print(f"  warning: closing {self.system}: {exc}")


#: Read picks are drawn from [0, _PICKS) and taken modulo a store's conversation count.
_PICKS: Final = 1 << 30


@dataclass
class _Store:
    """One read store: its case, size and the subjects reading it."""

    case: str
    label: str
    size: int
    subjects: list[Subject]


def _settle() -> None:
    """Write the loads' dirty pages back now, not while the reads are timed (the first
    reads after a load met the kernel's writeback and ran up to 2x slower, raw included)."""
    os.sync()
    time.sleep(0.5)


def _rotated(items: Sequence[T], shift: int) -> list[T]:
    if not items:
        return []
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


class _RawCopy:
    """The raw reference's bulk path through ``COPY`` (PostgreSQL)."""

    def __init__(self, raw: Raw) -> None:
        self.raw = raw

    def bulk(self, conversation_id: uuid.UUID, batch: Sequence[Msg]) -> None:
        self.raw.bulk_copy(conversation_id, batch)

    def close(self) -> None:
        """Nothing: the raw reference is the subject's helper, closed with it."""


class Runner:
    """Runs the selected workloads on one backend at a time and collects records."""

    def __init__(
        self,
        settings: Settings,
        scratches: Scratches,
        peers: Sequence[type[Peer]],
        *,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.scratches = scratches
        self.peers = list(peers)
        self.log = log
        self.records: list[Record] = []
        self.notes: list[str] = []
        self._started = time.monotonic()

    # -- helpers -----------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.log(f"[{time.monotonic() - self._started:7.1f}s] {text}")

    def _record(self, backend: str, workload: str, case: str, subject: Subject, **kw: Any) -> None:
        self.records.append(
            Record(
                backend,
                workload,
                case,
                subject.system,
                subject.surface,
                kw.pop("status", "ok"),
                note=subject.note,
                **kw,
            )
        )

    def _na(
        self,
        backend: str,
        workload: str,
        case: str,
        system: str,
        reason: str,
        surface: Literal["sync", "async"] = "sync",
        status: Literal["n/a", "error"] = "n/a",
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self.records.append(
            Record(backend, workload, case, system, surface, status, reason, dict(metrics or {}))
        )

    def _prepared(self, backend: str, label: str) -> tuple[Scratch, uuid.UUID]:
        """A fresh database with chatledger's schema (created by opening a Ledger) and a user."""
        scratch = self.scratches.create(backend, label)
        setup = ChatledgerSync(scratch)
        try:
            owner = setup.user("bench-user")
        finally:
            setup.close()
        return scratch, owner

    def _core(self, backend: str, system: str, surface: Surface, label: str) -> Subject:
        """A core subject on a fresh database of its own: the bare tables for ``raw-bare``,
        chatledger's schema (made by opening a Ledger) and a user for the others. Its helper
        (the raw reference on the same database) makes and checks its data."""
        scratch: Scratch
        if system == "raw-bare":
            scratch = self.scratches.create(backend, label)
            bare = bare_for(scratch)
            return Subject(system, surface, bare, owner=uuid7(), helper=bare, scratch=scratch)
        scratch, owner = self._prepared(backend, label)
        helper = raw_for(scratch)
        impl: Any
        if system == "raw":
            impl = helper
        elif system == "raw-copy":
            impl = _RawCopy(helper)
        elif surface == "sync":
            impl = ChatledgerSync(scratch)
        else:
            impl = ChatledgerAsync(scratch)
        return Subject(system, surface, impl, owner=owner, helper=helper, scratch=scratch)

    def _users(self, subject: Subject, count: int) -> list[uuid.UUID]:
        """``count`` more owners on a subject's database (users, on chatledger's schema)."""
        if subject.system == "raw-bare" or subject.scratch is None:
            return [uuid7() for _ in range(count)]
        setup = ChatledgerSync(subject.scratch)
        try:
            return [setup.user(f"other-{i}") for i in range(count)]
        finally:
            setup.close()

    def _peer_subjects(
        self, backend: str, workload: str, case: str = "", metrics: dict[str, Any] | None = None
    ) -> list[type[Peer]]:
        """The peers that can run on ``backend``; the others get an n/a record."""
        usable = []
        for peer in self.peers:
            reason = peer.unavailable(backend, workload)
            if reason is None:
                usable.append(peer)
            else:
                self._na(backend, workload, case, peer.system, reason, metrics=metrics)
        return usable

    @contextmanager
    def _guard(
        self, backend: str, workload: str, case: str, system: str, surface: str
    ) -> Iterator[None]:
        try:
            yield
        except NotAvailable as exc:
            self._na(backend, workload, case, system, str(exc), surface)  # type: ignore[arg-type]
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            self._say(f"  ERROR {system}/{surface}: {detail}")
            traceback.print_exc()
            self._na(backend, workload, case, system, detail, surface, "error")  # type: ignore[arg-type]

    def _close(self, subjects: Sequence[Subject], *, drop: bool = True) -> None:
        seen: set[str] = set()
        for subject in subjects:
            subject.close()
        if not drop:
            return
        for subject in subjects:
            scratch = subject.scratch
            if scratch is not None and scratch.name not in seen:
                seen.add(scratch.name)
                try:
                    self.scratches.drop(scratch)
                except Exception as exc:
                    self._say(f"  warning: could not drop {scratch.name}: {exc}")

    def run(self, backend: str, workloads: Sequence[str]) -> None:
        for workload in WORKLOADS:
            if workload in workloads:
                self._say(f"{backend}: {workload}")
                getattr(self, f"_{workload}")(backend)

    # -- per-turn append ---------------------------------------------------------------------

    def _append(self, backend: str) -> None:
        s = self.settings
        subjects: list[Subject] = []
        for system, surface in CORE:
            with self._guard(backend, "append", "", system, surface):
                subject = self._core(backend, system, surface, f"append_{system}_{surface}")
                subject.conversations = _helper(subject).create_conversations(
                    _owner(subject), s.append_conversations
                )
                subjects.append(subject)
        for peer in self._peer_subjects(backend, "append"):
            with self._guard(backend, "append", "", peer.system, "sync"):
                scratch = self.scratches.create(backend, f"append_{peer.system}")
                subject = Subject(peer.system, "sync", peer(scratch), scratch=scratch)
                subject.units_per_op = peer.units_per_append
                subject.note = peer.note
                subject.conversations = [uuid7() for _ in range(s.append_conversations)]
                subjects.append(subject)
        rng = random.Random(4)
        index = 0

        def ops(count: int) -> list[tuple[int, int]]:
            nonlocal index
            made = []
            for _ in range(count):
                made.append((rng.randrange(s.append_conversations), index))
                index += 1
            return made

        chunks: dict[Subject, list[Chunk]] = {subject: [] for subject in subjects}
        warm = ops(s.append_warmup)
        for subject in subjects:
            self._step(subject, subject.timed, _appender(subject), warm)
        for round_ in range(s.append_rounds):
            self._interleaved(subjects, ops(s.append_ops), _appender, chunks, round_)
        for subject in subjects:
            self._finish(backend, "append", "", subject, chunks[subject])
        self._close(subjects)

    def _interleaved(
        self,
        subjects: Sequence[Subject],
        args: Sequence[Any],
        action: Callable[[Subject], Callable[[Any], Any]],
        chunks: dict[Subject, list[Chunk]],
        shift: int,
        *,
        groups: Sequence[Sequence[Subject]] = (),
    ) -> None:
        """Every subject runs ``action(subject)`` over ``args``, taking turns in blocks of
        ``settings.block`` operations (the order rotates from block to block); one chunk per
        block, so throughput ratios can be taken between neighbours in time.

        ``groups`` (instead of ``subjects``): the subjects of one read store (each reading its
        own copy of it), rotated within their group, the groups taking turns too, so each
        comes first equally often."""
        block = max(1, self.settings.block)
        ordered = list(groups) if groups else [subjects]
        for number, start in enumerate(range(0, len(args), block)):
            part = args[start : start + block]
            for group in _rotated(ordered, number):
                for subject in _rotated(group, shift + number):
                    chunk = self._step(subject, subject.timed, action(subject), part)
                    if chunk is not None:
                        chunks[subject].append(chunk)

    def _step(self, subject: Subject, action: Callable[..., T], *args: Any) -> T | None:
        """Run ``action(*args)`` for a subject; a failure marks the subject failed and skips
        its later steps."""
        if subject.error is not None:
            return None
        try:
            return action(*args)
        except NotAvailable as exc:
            subject.error = f"n/a: {exc}"
        except Exception as exc:
            subject.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            self._say(f"  ERROR {subject.system}/{subject.surface}: {subject.error}")
            traceback.print_exc()
        return None

    def _finish(
        self,
        backend: str,
        workload: str,
        case: str,
        subject: Subject,
        chunks: list[Chunk],
        **metrics: Any,
    ) -> None:
        if subject.error is not None:
            status: Literal["n/a", "error"] = "n/a" if subject.error.startswith("n/a") else "error"
            reason = subject.error.removeprefix("n/a: ")
            self._record(backend, workload, case, subject, status=status, reason=reason)
            return
        timing = Timing.of(chunks, units_per_op=subject.units_per_op)
        self._record(backend, workload, case, subject, metrics={**timing.as_dict(), **metrics})

    # -- history read --------------------------------------------------------------------------

    def _read(self, backend: str) -> None:
        s = self.settings
        per = s.messages_per_conversation
        stores: list[_Store] = []
        for case, size in (("small", s.store_small), ("big", s.store_big)):
            count = max(1, size // per)
            label = f"{size // 1000}k" if size < 1_000_000 else f"{size / 1e6:g}M"
            subjects: list[Subject] = []
            conversations: list[uuid.UUID] = []
            for system, surface in CORE:
                with self._guard(backend, "read", case, system, surface):
                    started = time.monotonic()
                    subject = self._core(
                        backend, system, surface, f"read_{case}_{system}_{surface}"
                    )
                    helper = _helper(subject)
                    conversations = helper.create_conversations(
                        _owner(subject), count, messages_each=per, ids=conversations or None
                    )
                    helper.load_messages(conversations, per)
                    subject.conversations = conversations
                    subjects.append(subject)
                    self._say(
                        f"  loaded {system} ({surface})'s {label} store ({count:,} "
                        f"conversations x {per}) in {time.monotonic() - started:.1f}s"
                    )
            if not subjects:
                continue
            labels = {"store": size, "store_label": label}
            for peer in self._peer_subjects(backend, "read", case, labels):
                with self._guard(backend, "read", case, peer.system, "sync"):
                    started = time.monotonic()
                    peer_scratch = self.scratches.create(backend, f"read_{case}_{peer.system}")
                    subject = Subject(peer.system, "sync", peer(peer_scratch), scratch=peer_scratch)
                    subject.note = peer.note
                    subject.conversations = conversations
                    subjects.append(subject)
                    subject.impl.load(conversations, per)
                    self._say(
                        f"  loaded {peer.system}'s {label} store in "
                        f"{time.monotonic() - started:.1f}s"
                    )
            stores.append(_Store(case, label, size, subjects))
        if not stores:
            return
        _settle()
        try:
            self._read_rounds(backend, stores)
        finally:
            for store in stores:
                self._close(store.subjects)

    def _read_rounds(self, backend: str, stores: list[_Store]) -> None:
        """Both stores are read in the same rounds, their raw and chatledger subjects taking
        turns in the same blocks: the big store / small store ratio is then measured in one
        stretch of time, like every other ratio (sequential runs drifted by up to 1.3x)."""
        s = self.settings
        rng = random.Random(20)
        warm = [rng.randrange(_PICKS) for _ in range(s.read_warmup)]
        quota: dict[Subject, int] = {}
        every = [subject for store in stores for subject in store.subjects]
        for subject in every:
            # Peers read whole sessions (seconds on big stores): a short warm-up is enough.
            mine = warm[:10] if subject.is_peer else warm
            chunk = self._step(subject, subject.timed, _reader(subject), mine)
            quota[subject] = s.read_ops
            if chunk is not None and subject.is_peer and chunk.latencies_ns:
                # Peers read whole sessions: cap their reads by the wall-clock budget.
                per_read = statistics.median(chunk.latencies_ns) / 1e9
                budget = s.peer_read_budget / s.rounds
                quota[subject] = max(3, min(s.read_ops, int(budget / max(per_read, 1e-9))))
        chunks: dict[Subject, list[Chunk]] = {subject: [] for subject in every}
        core = [subject for subject in every if not subject.is_peer]
        peers = [subject for subject in every if subject.is_peer]
        for round_ in range(s.rounds):
            # An index per read, taken modulo each store's conversation count.
            picks = [rng.randrange(_PICKS) for _ in range(s.read_ops)]
            # raw and chatledger take turns in small blocks; the peers' whole-session reads
            # (seconds of I/O on big stores) run after them, so they do not disturb the core
            # comparison.
            groups = [[sub for sub in store.subjects if not sub.is_peer] for store in stores]
            self._interleaved(core, picks, _reader, chunks, round_, groups=groups)
            for subject in _rotated(peers, round_):
                mine = picks[: quota[subject]]
                chunk = self._step(subject, subject.timed, _reader(subject), mine)
                if chunk is not None:
                    chunks[subject].append(chunk)
        for store in stores:
            for subject in store.subjects:
                self._finish(
                    backend,
                    "read",
                    store.case,
                    subject,
                    chunks[subject],
                    store=store.size,
                    store_label=store.label,
                )

    # -- sidebar -------------------------------------------------------------------------------

    def _sidebar(self, backend: str) -> None:
        s = self.settings
        subjects: list[Subject] = []
        # The conversations of the first store: every other store gets a copy (same ids).
        made: list[list[uuid.UUID]] = []
        for system, surface in CORE:
            with self._guard(backend, "sidebar", "", system, surface):
                subject = self._core(backend, system, surface, f"sidebar_{system}_{surface}")
                helper = _helper(subject)
                others = self._users(subject, max(1, s.sidebar_noise // 1000))
                owners = [_owner(subject), *others]
                counts = [s.sidebar_conversations] + [s.sidebar_noise // len(others)] * len(others)
                for number, (owner, count) in enumerate(zip(owners, counts, strict=True)):
                    ids = made[number] if len(made) > number else None
                    ids = helper.create_conversations(owner, count, spread=True, ids=ids)
                    if len(made) <= number:
                        made.append(ids)
                helper.analyze()
                subjects.append(subject)
        for peer in self._peer_subjects(backend, "sidebar"):
            self._na(backend, "sidebar", "", peer.system, peer.sidebar_reason)
        if not subjects:
            return
        chunks: dict[Subject, list[Chunk]] = {subject: [] for subject in subjects}
        warm = list(range(s.read_warmup))
        _settle()
        for subject in subjects:
            self._step(subject, subject.timed, _sidebar(subject), warm)
        for round_ in range(s.rounds):
            self._interleaved(subjects, list(range(s.sidebar_ops)), _sidebar, chunks, round_)
        for subject in subjects:
            self._finish(
                backend,
                "sidebar",
                "",
                subject,
                chunks[subject],
                conversations=s.sidebar_conversations,
                other_conversations=s.sidebar_noise,
            )
        self._close(subjects)

    # -- concurrency ---------------------------------------------------------------------------

    def _concurrency(self, backend: str) -> None:
        s = self.settings
        subjects: list[Subject] = []
        for system, surface in CORE:
            with self._guard(backend, "concurrency", "one", system, surface):
                subjects.append(self._core(backend, system, surface, f"conc_{system}_{surface}"))
        for peer in self._peer_subjects(backend, "concurrency", "one"):
            with self._guard(backend, "concurrency", "one", peer.system, "sync"):
                scratch = self.scratches.create(backend, f"conc_{peer.system}")
                subject = Subject(peer.system, "sync", peer(scratch), scratch=scratch)
                subject.units_per_op = peer.units_per_append
                subject.note = peer.note
                subjects.append(subject)
        results: dict[tuple[Subject, str], list[_Outcome]] = {}
        for rep in range(s.concurrency_reps):
            for subject in _rotated(subjects, rep):
                for case in ("own", "one"):
                    outcome = self._step(subject, self._contend, subject, case)
                    if outcome is not None:
                        results.setdefault((subject, case), []).append(outcome)
        for subject in subjects:
            for case in ("own", "one"):
                outcomes = results.get((subject, case), [])
                if subject.error is not None or not outcomes:
                    subject.error = subject.error or "no outcome"
                    self._finish(backend, "concurrency", case, subject, [])
                    continue
                self._record(
                    backend,
                    "concurrency",
                    case,
                    subject,
                    metrics=_merge(outcomes, subject.units_per_op, s.threads),
                )
        self._close(subjects)

    def _contend(self, subject: Subject, case: str) -> _Outcome:
        """``threads`` workers (threads; tasks on the async surface) each appending
        ``thread_appends`` messages, to their own conversations or all to one."""
        s = self.settings
        threads = s.threads
        if subject.helper is not None and subject.owner is not None:
            conversations = subject.helper.create_conversations(
                subject.owner, threads if case == "own" else 1
            )
        else:
            conversations = [uuid7() for _ in range(threads if case == "own" else 1)]
        targets = [conversations[i % len(conversations)] for i in range(threads)]
        outcome = _Outcome(case)
        loop = subject.loop
        if loop is not None:
            outcome = loop.run_until_complete(
                _contend_async(subject, targets, s.thread_appends, outcome)
            )
        else:
            _contend_threads(subject, targets, s.thread_appends, outcome)
        # The checks: every success stored exactly once, seq gap-free, counters exact.
        for conversation in conversations:
            successes = outcome.successes_by_conversation.get(conversation, 0)
            if subject.helper is not None:
                seqs, counter = subject.helper.verify(conversation)
                stored = len(seqs)
                unique = len(set(seqs))
                outcome.duplicates += stored - unique
                outcome.gaps += (max(seqs) - unique) if seqs else 0
                outcome.counter_mismatches += int(counter is not None and counter != stored)
                outcome.order_checked = True
                outcome.lost += max(0, successes - stored)
                outcome.phantoms += max(0, stored - successes)
            else:
                stored = subject.impl.count(conversation)
                expected = successes * subject.units_per_op
                outcome.lost += max(0, expected - stored)
                outcome.phantoms += max(0, stored - expected)
        return outcome

    # -- bulk import ---------------------------------------------------------------------------

    def _bulk(self, backend: str) -> None:
        s = self.settings
        subjects: list[Subject] = []
        systems = list(CORE)
        if backend == "postgresql":
            systems.insert(2, ("raw-copy", "sync"))
        for system, surface in systems:
            with self._guard(backend, "bulk", "", system, surface):
                subject = self._core(backend, system, surface, f"bulk_{system}_{surface}")
                subject.conversations = _helper(subject).create_conversations(
                    _owner(subject), s.bulk_reps + 1
                )
                subjects.append(subject)
        for peer in self._peer_subjects(backend, "bulk"):
            with self._guard(backend, "bulk", "", peer.system, "sync"):
                scratch = self.scratches.create(backend, f"bulk_{peer.system}")
                subject = Subject(peer.system, "sync", peer(scratch), scratch=scratch)
                subject.note = peer.note
                subject.conversations = [uuid7() for _ in range(s.bulk_reps + 1)]
                subjects.append(subject)
        batch = messages(s.bulk_size)
        items = [msg.as_batch_item() for msg in batch]

        def payload(subject: Subject, size: int) -> Sequence[Any]:
            return items[:size] if subject.system == "chatledger" else batch[:size]

        def bulk_once(subject: Subject, conversation: uuid.UUID, size: int) -> Chunk:
            data = payload(subject, size)
            return subject.timed(lambda c: subject.impl.bulk(c, data), [conversation])

        for subject in subjects:
            subject.units_per_op = s.bulk_size
            self._step(subject, bulk_once, subject, subject.conversations[-1], 200)
        chunks: dict[Subject, list[Chunk]] = {subject: [] for subject in subjects}
        for rep in range(s.bulk_reps):
            for subject in _rotated(subjects, rep):
                chunk = self._step(
                    subject, bulk_once, subject, subject.conversations[rep], s.bulk_size
                )
                if chunk is not None:
                    chunks[subject].append(chunk)
        for subject in subjects:
            self._finish(backend, "bulk", "", subject, chunks[subject], batch=s.bulk_size)
        self._close(subjects)


def _helper(subject: Subject) -> Raw:
    """The raw reference on a core subject's database (every core subject has one)."""
    if subject.helper is None:
        raise RuntimeError(f"{subject.system} has no raw helper")
    return subject.helper


def _owner(subject: Subject) -> uuid.UUID:
    if subject.owner is None:
        raise RuntimeError(f"{subject.system} has no owner")
    return subject.owner


def _appender(subject: Subject) -> Callable[[tuple[int, int]], Any]:
    impl, conversations = subject.impl, subject.conversations
    return lambda op: impl.append(conversations[op[0]], message(op[1]))


def _reader(subject: Subject) -> Callable[[int], Any]:
    impl, conversations = subject.impl, subject.conversations
    count = len(conversations)
    return lambda i: impl.last(conversations[i % count])


def _sidebar(subject: Subject) -> Callable[[int], Any]:
    impl, owner = subject.impl, subject.owner
    return lambda _i: impl.sidebar(owner)


@dataclass
class _Outcome:
    case: str
    successes: int = 0
    errors: int = 0
    first_error: str | None = None
    wall_ns: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    successes_by_conversation: dict[uuid.UUID, int] = field(default_factory=dict)
    lost: int = 0
    phantoms: int = 0
    gaps: int = 0
    duplicates: int = 0
    counter_mismatches: int = 0
    order_checked: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def success(self, conversation: uuid.UUID, latency_ns: int) -> None:
        with self.lock:
            self.successes += 1
            self.latencies_ns.append(latency_ns)
            self.successes_by_conversation[conversation] = (
                self.successes_by_conversation.get(conversation, 0) + 1
            )

    def failure(self, exc: BaseException) -> None:
        with self.lock:
            self.errors += 1
            if self.first_error is None:
                self.first_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def _contend_threads(
    subject: Subject, targets: list[uuid.UUID], appends: int, outcome: _Outcome
) -> None:
    clients = [
        subject.impl.clone() if hasattr(subject.impl, "clone") else subject.impl for _ in targets
    ]
    barrier = threading.Barrier(len(targets) + 1)
    clock = time.perf_counter_ns

    def work(client: Any, conversation: uuid.UUID, offset: int) -> None:
        barrier.wait()
        for k in range(appends):
            before = clock()
            try:
                client.append(conversation, message(offset + k))
            except Exception as exc:
                outcome.failure(exc)
            else:
                outcome.success(conversation, clock() - before)

    threads = [
        threading.Thread(target=work, args=(client, target, i * appends))
        for i, (client, target) in enumerate(zip(clients, targets, strict=True))
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = clock()
    for thread in threads:
        thread.join()
    outcome.wall_ns = clock() - start
    for client in clients:
        if client is not subject.impl:
            client.close()


async def _contend_async(
    subject: Subject, targets: list[uuid.UUID], appends: int, outcome: _Outcome
) -> _Outcome:
    clock = time.perf_counter_ns

    async def work(conversation: uuid.UUID, offset: int) -> None:
        for k in range(appends):
            before = clock()
            try:
                await subject.impl.append(conversation, message(offset + k))
            except Exception as exc:
                outcome.failure(exc)
            else:
                outcome.success(conversation, clock() - before)

    start = clock()
    await asyncio.gather(*(work(target, i * appends) for i, target in enumerate(targets)))
    outcome.wall_ns = clock() - start
    return outcome


def _merge(outcomes: list[_Outcome], units: int, threads: int) -> dict[str, Any]:
    """One record's metrics from the repetitions of a concurrency case."""
    rates = [o.successes * units / (o.wall_ns / 1e9) for o in outcomes if o.wall_ns]
    latencies = [ns for o in outcomes for ns in o.latencies_ns]
    timing = Timing.of([Chunk(latencies, 0)])
    checked = all(o.order_checked for o in outcomes)
    errors = [o.first_error for o in outcomes if o.first_error]
    return {
        "threads": threads,
        "per_s": round(statistics.median(rates), 2) if rates else float("nan"),
        "per_s_rounds": [round(rate, 2) for rate in rates],
        "p50_us": round(timing.p50_us, 2),
        "p99_us": round(timing.p99_us, 2),
        "attempts": sum(o.successes + o.errors for o in outcomes),
        "successes": sum(o.successes for o in outcomes),
        "errors": sum(o.errors for o in outcomes),
        "first_error": errors[0] if errors else None,
        "lost": sum(o.lost for o in outcomes),
        "phantoms": sum(o.phantoms for o in outcomes),
        "gaps": sum(o.gaps for o in outcomes) if checked else None,
        "duplicates": sum(o.duplicates for o in outcomes) if checked else None,
        "counter_mismatches": sum(o.counter_mismatches for o in outcomes) if checked else None,
        "order_violations": (
            sum(o.gaps + o.duplicates + o.counter_mismatches for o in outcomes) if checked else None
        ),
    }


__all__ += ["PEERS"]
