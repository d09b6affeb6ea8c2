"""Exactly-once writes under faults whose outcome is unknown (issue 12, section 1).

Every write operation the retry loop can re-run is called through a fault layer
(tests/_faults.py): on PostgreSQL and MariaDB a loopback TCP proxy that cuts the connection
(a) before a message reaches the server, (b) after it reached the server but before the reply
reaches chatledger (for COMMIT: committed, and nobody told), (c) in the middle of a reply; on
SQLite a connection class that raises SQLite's own I/O error at the same three points. Each
deterministic case asserts the cut fired, the call was acknowledged, it wrote exactly once, and
the ledger's invariants hold. The randomized run adds server-side session kills.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

import chatledger
from chatledger import (
    AsyncLedger,
    ChatledgerError,
    Ledger,
    OutcomeUnknownError,
    RetryPolicy,
    TransientError,
    migrate,
)
from chatledger._ids import Draws, Replaying, new_id
from chatledger._ops import users as _users
from chatledger._sync._idempotency import IdempotentRequests

from ._faults import POINTS, Point, Proxy, SQLiteFaults, faulty_sqlite, kill_sessions
from .conftest import Blocking, Portal

#: Enough attempts to outlast one cut and a settle read, quick enough for CI.
RETRY = RetryPolicy(attempts=8, base_delay=0.005, max_delay=0.05)


class Faulty:
    """A ledger on one database through a fault layer, and a direct one to check it."""

    def __init__(self, backend: str, url: URL, surface: str) -> None:
        self.backend = backend
        self.url = url
        self.proxy: Proxy | None = None
        self.sqlite: SQLiteFaults | None = None
        self.portal: Portal | None = None
        target: Any
        if backend == "sqlite":
            self.sqlite = SQLiteFaults()
            target = sa.create_engine(
                url,
                connect_args={"factory": faulty_sqlite(self.sqlite), "check_same_thread": False},
            )
        else:
            self.proxy = Proxy(url.host or "127.0.0.1", url.port or 0)
            target = self.proxy.url(url)
        if surface == "sync":
            self.store: Any = Ledger(target, retry=RETRY)
        else:
            self.portal = Portal()
            self.store = Blocking(AsyncLedger(target, retry=RETRY), self.portal)
        self.store.__enter__()
        self.direct = Ledger(url)
        self.direct.__enter__()
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def arm(self, point: Point, pattern: bytes) -> Any:
        layer: Any = self.sqlite if self.sqlite is not None else self.proxy
        return layer.arm(point, pattern)

    @property
    def cuts(self) -> int:
        layer: Any = self.sqlite if self.sqlite is not None else self.proxy
        return int(layer.cut_count)

    def rows(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())

    def ids(self, table: str) -> list[uuid.UUID]:
        with self.engine.connect() as conn:
            column = sa.table(table, sa.column("id", sa.Uuid()))
            return list(conn.execute(sa.select(column.c.id)).scalars())

    def check_invariants(self) -> None:
        """message_count == rows and seq gap-free per conversation; balance == Σ ledger per
        user; the audit chain verifies."""
        with self.engine.connect() as conn:
            counts = conn.execute(
                sa.text(
                    "SELECT c.id, c.message_count, COUNT(m.id), COALESCE(MAX(m.seq), 0), "
                    "COUNT(DISTINCT m.seq) FROM conversations c "
                    "LEFT JOIN messages m ON m.conversation_id = c.id "
                    "GROUP BY c.id, c.message_count"
                )
            ).all()
            for cid, count, rows, top, distinct in counts:
                assert count == rows == top == distinct, f"conversation {cid}: {count}/{rows}"
            balances = conn.execute(
                sa.text(
                    "SELECT b.user_id, b.balance, COALESCE(SUM(l.delta), 0) "
                    "FROM token_balances b LEFT JOIN token_ledger l ON l.user_id = b.user_id "
                    "GROUP BY b.user_id, b.balance"
                )
            ).all()
            for user_id, balance, total in balances:
                assert int(balance) == int(total), f"user {user_id}: {balance} != {total}"
        verification = self.direct.audit.verify()
        assert verification.ok, verification

    def close(self) -> None:
        self.store.__exit__(None, None, None)
        if self.portal is not None:
            self.portal.close()
        self.direct.__exit__(None, None, None)
        self.engine.dispose()
        if self.proxy is not None:
            self.proxy.close()


@pytest.fixture(scope="module")
def fault_layers(make_database: Callable[[str, str], URL]) -> Iterator[Callable[..., Faulty]]:
    """``layer(backend, surface)``: one faulty ledger per backend and surface for the module,
    on a database of its own (cases measure what they add, so they share it)."""
    opened: dict[tuple[str, str], Faulty] = {}

    def layer(backend: str, surface: str) -> Faulty:
        if (backend, surface) not in opened:
            url = make_database(backend, f"faults_{surface}")
            migrate.upgrade(url)
            opened[backend, surface] = Faulty(backend, url, surface)
        return opened[backend, surface]

    yield layer
    for faulty in opened.values():
        faulty.close()


@pytest.fixture
def faulty(backend: str, surface: str, fault_layers: Callable[..., Faulty]) -> Faulty:
    layer = fault_layers(backend, surface)
    if layer.proxy is not None:
        layer.proxy.reset()  # the layer is the module's: no fault of an earlier test is left
    return layer


@dataclass
class Case:
    """One write operation: ``call(store, ctx, i)`` makes its ``i``-th call; ``tables`` says how
    many rows one acknowledged call adds; ``check(faulty, ctx, results)`` checks the rest."""

    name: str
    call: Callable[[Any, dict[str, Any], int], Any]
    tables: dict[str, int]
    check: Callable[[Faulty, dict[str, Any], list[Any]], None] | None = None
    #: PostgreSQL runs it as one autocommit statement: no COMMIT to cut, the statement is it.
    autocommit: bool = False
    prepare: Callable[[Ledger, dict[str, Any], int], None] | None = None
    #: The cut points it is checked at (the later operations: the lost COMMIT reply only,
    #: the one point where a write commits unacknowledged, to keep the suite's time).
    points: tuple[Point, ...] = POINTS


def _created(ensured: Any) -> Any:
    user, created = ensured
    assert created, "the call that inserted the user must report created=True"
    return user


def _ids_exist(table: str) -> Callable[[Faulty, dict[str, Any], list[Any]], None]:
    def check(faulty: Faulty, ctx: dict[str, Any], results: list[Any]) -> None:
        stored = faulty.ids(table)
        for result in results:
            for item in result if isinstance(result, list) else [result]:
                assert stored.count(item.id) == 1, (
                    f"{table} {item.id} stored {stored.count(item.id)}x"
                )

    return check


def _secrets_verify(faulty: Faulty, ctx: dict[str, Any], results: list[Any]) -> None:
    for created in results:
        assert faulty.direct.api_keys.verify(created.secret).id == created.key.id


def _visits_counted(faulty: Faulty, ctx: dict[str, Any], results: list[Any]) -> None:
    (visitor,) = [v for v in faulty.direct.visitors.list(limit=100) if v.name == ctx["tag"]]
    assert visitor.visit_count == len(results) + ctx.get("visits", 0)


def _deleted(faulty: Faulty, ctx: dict[str, Any], results: list[Any]) -> None:
    for doomed in ctx["doomed"]:
        with pytest.raises(ChatledgerError):
            faulty.direct.conversations.get(doomed)


def _doom(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    ctx.setdefault("doomed", []).append(direct.conversations.create(ctx["user"]).id)


def _first_visit(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    if "visits" not in ctx:
        direct.visitors.record_visit(ctx["tag"], agent_type="bot")
        ctx["visits"] = 1


def _fresh_message(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    ctx["rated"] = direct.messages.append(ctx["chat"], "assistant", f"rate me {i}").id


def _ask_tool(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    call = f"call-{ctx['tag']}-{i}"
    direct.messages.append(ctx["chat"], "assistant", "", tool_calls=[{"id": call, "name": "t"}])
    ctx.setdefault("calls", []).append(call)


def _answered_once(faulty: Faulty, ctx: dict[str, Any], results: list[Any]) -> None:
    _ids_exist("messages")(faulty, ctx, results)
    for call, result in zip(ctx["calls"], results, strict=True):
        assert faulty.direct.tools.get(ctx["chat"], call).result_message_id == result.id


CASES = [
    Case(
        "messages.append(tool_call_id)",
        lambda s, c, i: s.messages.append(c["chat"], "tool", "ok", tool_call_id=c["calls"][-1]),
        {"messages": 1},
        _answered_once,
        prepare=_ask_tool,
    ),
    Case(
        "messages.append",
        lambda s, c, i: s.messages.append(c["chat"], "user", f"hello {i}"),
        {"messages": 1},
        _ids_exist("messages"),
        autocommit=True,
    ),
    Case(
        "messages.append(idempotency_key)",
        lambda s, c, i: s.messages.append(c["chat"], "user", "keyed", idempotency_key=f"k-{i}"),
        {"messages": 1},
        _ids_exist("messages"),
    ),
    Case(
        "messages.append(charge)",
        lambda s, c, i: s.messages.append(c["chat"], "assistant", "paid", charge=3),
        {"messages": 1, "token_ledger": 1},
        _ids_exist("messages"),
    ),
    Case(
        "messages.append_many",
        lambda s, c, i: s.messages.append_many(
            c["chat"],
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b", "idempotency_key": f"m-{i}"},
                {"role": "user", "content": "c"},
            ],
        ),
        {"messages": 3},
        _ids_exist("messages"),
    ),
    Case(
        "tokens.debit",
        lambda s, c, i: s.tokens.debit(2, user_id=c["user"], reason="use"),
        {"token_ledger": 1},
        _ids_exist("token_ledger"),
    ),
    Case(
        "tokens.credit",
        lambda s, c, i: s.tokens.credit(5, user_id=c["user"], reason="top-up"),
        {"token_ledger": 1},
        _ids_exist("token_ledger"),
    ),
    Case(
        "surveys.submit(grant)",
        lambda s, c, i: s.surveys.submit(f"survey-{i}", {"q": i}, user_id=c["user"], grant=4),
        {"survey_responses": 1, "token_ledger": 1},
        _ids_exist("survey_responses"),
    ),
    Case(
        "feedback.rate",
        lambda s, c, i: s.feedback.rate(c["rated"], rater_id=c["user"], thumb="up"),
        {"message_feedback": 1},
        _ids_exist("message_feedback"),
        prepare=_fresh_message,
    ),
    Case(
        "product_feedback.submit",
        lambda s, c, i: s.product_feedback.submit(f"agent {i}", usability_rating=7),
        {"product_feedback": 1},
        _ids_exist("product_feedback"),
    ),
    Case(
        "citations.add",
        lambda s, c, i: s.citations.add(c["answer"], url=f"https://example.com/{i}"),
        {"citations": 1},
        _ids_exist("citations"),
    ),
    Case(
        "knowledge.upsert",
        lambda s, c, i: s.knowledge.upsert("docs", f"{c['tag']}-{i}", f"text {i}"),
        {"knowledge_chunks": 1},
        _ids_exist("knowledge_chunks"),
    ),
    Case(
        "audit.record",
        lambda s, c, i: s.audit.record("login", user_id=c["user"]),
        {"audit_events": 1},
        _ids_exist("audit_events"),
    ),
    Case(
        "visitors.record_visit",
        lambda s, c, i: s.visitors.record_visit(c["tag"], agent_type="bot"),
        {"visitors": 0},
        _visits_counted,
        prepare=_first_visit,
    ),
    Case(
        "users.create",
        lambda s, c, i: s.users.create(email=f"{c['tag']}-{i}@example.com"),
        {"users": 1},
        _ids_exist("users"),
    ),
    Case(
        "users.get_or_create",
        # ensure(): the call that wrote the user says so, even when its commit went unanswered.
        lambda s, c, i: _created(
            s.users.ensure(f"x{c['tag']}-{i}", email=f"x{c['tag']}-{i}@example.com")
        ),
        {"users": 1},
        _ids_exist("users"),
    ),
    Case(
        "api_keys.create",
        lambda s, c, i: s.api_keys.create(c["user"], name=f"key {i}"),
        {"api_keys": 1},
        _secrets_verify,
    ),
    Case(
        "conversations.create",
        lambda s, c, i: s.conversations.create(c["user"], title=f"chat {i}"),
        {"conversations": 1},
        _ids_exist("conversations"),
    ),
    Case(
        "conversations.delete(hard)",
        lambda s, c, i: s.conversations.delete(c["doomed"][-1], hard=True),
        {"conversations": -1},
        _deleted,
        prepare=_doom,
    ),
]


def _user_message(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    ctx["edited"] = direct.messages.append(ctx["chat"], "user", f"question {i}").id


def _stream(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    ctx["stream"] = direct.streams.begin(ctx["chat"]).id


def _flushed_stream(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    _stream(direct, ctx, i)
    direct.streams.delta(ctx["stream"], 0, "streamed ")


def _doomed_source(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    ctx["source"] = f"doomed-{ctx['tag']}-{i}"
    chunks = [{"source": ctx["source"], "external_id": str(n), "content": "x"} for n in range(3)]
    direct.knowledge.bulk_upsert(chunks)


def _claims(store: Any) -> Any:
    return IdempotentRequests(store)


def _claimed(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    ctx.setdefault("api_key", direct.api_keys.create(ctx["user"]).key.id)
    ctx["claim"] = f"claim-{i}"
    assert _claims(direct).claim(ctx["api_key"], ctx["claim"], HASH).outcome == "claimed"


def _api_key(direct: Ledger, ctx: dict[str, Any], i: int) -> None:
    ctx.setdefault("api_key", direct.api_keys.create(ctx["user"]).key.id)


def _all(expected: Any) -> Callable[[Faulty, dict[str, Any], list[Any]], None]:
    def check(faulty: Faulty, ctx: dict[str, Any], results: list[Any]) -> None:
        assert [expected(result) for result in results] == [True] * len(results), results

    return check


def _finished(faulty: Faulty, ctx: dict[str, Any], results: list[Any]) -> None:
    _ids_exist("messages")(faulty, ctx, results)
    for message in results:
        assert (message.status, message.content) == ("completed", "streamed the end")


HASH = "a" * 64
REPLY: tuple[Point, ...] = ("reply",)
CASES += [
    Case(
        "messages.append(parent_id)",
        lambda s, c, i: s.messages.append(c["chat"], "user", "branch", parent_id=c["answer"]),
        {"messages": 1},
        _ids_exist("messages"),
        points=REPLY,
    ),
    Case(
        "trees.edit",
        lambda s, c, i: s.trees.edit(c["edited"], f"edited {i}", cached_input_tokens=1),
        {"messages": 1},
        _ids_exist("messages"),
        prepare=_user_message,
        points=REPLY,
    ),
    Case(
        "trees.regenerate(charge)",
        lambda s, c, i: s.trees.regenerate(c["answer"], f"again {i}", charge=2),
        {"messages": 1, "token_ledger": 1},
        _ids_exist("messages"),
        points=REPLY,
    ),
    Case(
        "trees.fork",
        lambda s, c, i: s.trees.fork(c["chat"], c["answer"]),
        {"conversations": 1, "messages": 1},
        _ids_exist("conversations"),
        points=REPLY,
    ),
    Case(
        "streams.begin",
        lambda s, c, i: s.streams.begin(c["chat"], charge=3),
        {"messages": 1, "message_streams": 1},
        _ids_exist("messages"),
        points=REPLY,
    ),
    Case(
        "streams.delta",
        lambda s, c, i: s.streams.delta(c["stream"], 0, f"chunk {i}"),
        {"stream_chunks": 1},
        _all(lambda stream: stream.chunk_count == 1),
        prepare=_stream,
        points=REPLY,
    ),
    Case(
        "streams.finish",
        lambda s, c, i: s.streams.finish(c["stream"], text="the end", output_tokens=4, charge=1),
        {"stream_chunks": -1, "token_ledger": 1},
        _finished,
        prepare=_flushed_stream,
        points=REPLY,
    ),
    Case(
        "knowledge.bulk_upsert",
        lambda s, c, i: s.knowledge.bulk_upsert(
            [
                {"source": f"bulk-{c['tag']}", "external_id": f"{i}-{n}", "content": "y"}
                for n in (1, 2)
            ]
        ),
        {"knowledge_chunks": 2},
        _all(lambda report: (report.inserted, report.updated, report.unchanged) == (2, 0, 0)),
        points=REPLY,
    ),
    Case(
        "knowledge.delete_source",
        lambda s, c, i: s.knowledge.delete_source(c["source"]),
        {"knowledge_chunks": -3},
        _all(lambda count: count == 3),
        prepare=_doomed_source,
        points=REPLY,
    ),
    Case(
        "idempotency.claim",
        lambda s, c, i: _claims(s).claim(c["api_key"], f"fresh-{i}", HASH),
        {"idempotent_requests": 1},
        _all(lambda claim: claim.outcome == "claimed"),
        prepare=_api_key,
        points=REPLY,
    ),
    Case(
        "idempotency.complete",
        lambda s, c, i: _claims(s).complete(c["api_key"], c["claim"], HASH, 201, "{}"),
        {"idempotent_requests": 0},
        _all(lambda done: done is True),
        prepare=_claimed,
        points=REPLY,
    ),
    Case(
        "idempotency.release",
        lambda s, c, i: _claims(s).release(c["api_key"], c["claim"], HASH),
        {"idempotent_requests": -1},
        _all(lambda released: released is True),
        prepare=_claimed,
        points=REPLY,
    ),
]
CASE_IDS = [case.name for case in CASES]
#: The operations also run on the async surface (its drivers report lost connections
#: differently: psycopg's async connection, aiomysql, SQLite on worker threads).
ASYNC_CASES = frozenset(
    {"messages.append", "messages.append(charge)", "messages.append_many", "tokens.debit"}
)


def _context(faulty: Faulty) -> dict[str, Any]:
    direct = faulty.direct
    tag = uuid.uuid4().hex[:12]
    user = direct.users.create(email=f"owner-{tag}@example.com").id
    chat = direct.conversations.create(user).id
    direct.tokens.credit(1_000_000, user_id=user, reason="start")
    answer = direct.messages.append(chat, "assistant", "an answer").id
    return {"user": user, "chat": chat, "answer": answer, "tag": tag}


#: The COMMIT statement, not ``SET AUTOCOMMIT = 0`` (PyMySQL sends that on every new
#: connection: a cut there fails the connect, before the operation ran).
_COMMIT: Final = rb"(?<![A-Za-z_])COMMIT\b"


def _pattern(case: Case, backend: str, point: Point) -> bytes:
    """What to cut at: the COMMIT (the statement itself for PostgreSQL's autocommit appends);
    for a cut in the middle of a result, the first statement that returns rows."""
    if case.autocommit and backend == "postgresql":
        return rb"INSERT INTO messages"
    if point == "result":
        return rb"SELECT|RETURNING|INSERT|DELETE"
    return _COMMIT


def _counts(faulty: Faulty, case: Case) -> dict[str, int]:
    return {table: faulty.rows(table) for table in case.tables}


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_one_cut_writes_exactly_once(
    backend: str, surface: str, case: Case, point: Point, fault_layers: Callable[..., Faulty]
) -> None:
    if surface == "async" and case.name not in ASYNC_CASES:
        pytest.skip("the async surface runs the same retry loop: checked on a few operations")
    if point not in case.points:
        pytest.skip("checked at the lost COMMIT reply only")
    faulty = fault_layers(backend, surface)
    if faulty.proxy is not None:
        faulty.proxy.reset()
    ctx = _context(faulty)
    results = []
    for i in range(2):  # one clean call, then one cut
        if case.prepare is not None:
            case.prepare(faulty.direct, ctx, i)
        before = _counts(faulty, case)
        cut = faulty.arm(point, _pattern(case, faulty.backend, point)) if i == 1 else None
        results.append(case.call(faulty.store, ctx, i))
        if cut is not None:
            assert cut.fired == 1, "the fault was never injected"
        after = _counts(faulty, case)
        for table, added in case.tables.items():
            assert after[table] - before[table] == added, f"{table}: {before} -> {after}"
    if case.check is not None:
        case.check(faulty, ctx, results)
    faulty.check_invariants()


@pytest.mark.parametrize("surface", ["sync"])
def test_unreachable_after_a_lost_commit_is_outcome_unknown(
    backend: str, surface: str, fault_layers: Callable[..., Faulty]
) -> None:
    """The COMMIT reached the server, the reply was lost, and the server stays unreachable for
    every retry: OutcomeUnknownError names the message, which is there once the server is back."""
    shared = fault_layers(backend, surface)
    if shared.proxy is None:
        pytest.skip("SQLite has no server to lose")
    # A proxy and a pool of its own: no connection of an earlier test can meet the cut.
    faulty = Faulty(backend, shared.url, surface)
    try:
        assert faulty.proxy is not None
        ctx = _context(faulty)
        cut = faulty.proxy.arm("reply", _COMMIT, then_down=True)  # and the server seems gone
        try:
            with pytest.raises(OutcomeUnknownError) as caught:
                faulty.store.messages.append(ctx["chat"], "user", "lost?", idempotency_key="x")
        finally:
            faulty.proxy.refusing = False
        assert cut.fired == 1
        error = caught.value
        assert error.kind == "message"
        assert isinstance(error.key, uuid.UUID)
        assert not error.retriable
        assert not isinstance(error, TransientError)
        found = faulty.store.messages.get(error.key)  # how to find out, the server back
        assert found.content == "lost?"
        again = faulty.store.messages.append(ctx["chat"], "user", "lost?", idempotency_key="x")
        assert again.id == error.key
        faulty.check_invariants()
    finally:
        faulty.close()


@pytest.mark.parametrize("surface", ["sync"])
def test_deadlock_like_failures_are_not_outcome_unknown(faulty: Faulty) -> None:
    """A cut before the operation's statements reach the server is known not to have
    committed: with retries exhausted the caller gets a TransientError, not
    OutcomeUnknownError, and nothing was written."""
    if faulty.proxy is None:
        pytest.skip("covered by the proxy backends")
    ctx = _context(faulty)
    before = faulty.rows("token_ledger")
    faulty.proxy.down()
    try:
        with pytest.raises(TransientError) as caught:
            faulty.store.tokens.debit(1, user_id=ctx["user"], reason="never")
    finally:
        faulty.proxy.refusing = False
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert faulty.rows("token_ledger") == before


# -- the randomized run ----------------------------------------------------------------------

#: Operations of the randomized run (a subset that keeps every table's count predictable).
RANDOM_CASES = [
    case
    for case in CASES
    if case.prepare is None
    and case.points == POINTS  # the later cases' keys are per call index, not per thread
    and case.name not in ("users.get_or_create", "users.create")
]


@dataclass
class Tally:
    calls: int = 0
    acknowledged: dict[str, list[Any]] = field(default_factory=dict)
    unknown: dict[str, list[OutcomeUnknownError]] = field(default_factory=dict)
    failed: int = 0
    #: Anything else a call raised (a case's own check failing): the run reports it.
    crashed: list[tuple[str, BaseException]] = field(default_factory=list)


@pytest.mark.parametrize("surface", ["sync"])
def test_randomized_faults_write_exactly_once(
    faulty: Faulty, backend: str, request: pytest.FixtureRequest
) -> None:
    """Four writer threads, a seeded mix of every write, while the fault layer cuts random
    connections at random points (and, on the servers, sessions are killed): every
    acknowledged write is stored once, nothing unacknowledged is stored twice, and the
    invariants hold."""
    seed = 12
    ctx = _context(faulty)
    start = {name: faulty.rows(name) for case in RANDOM_CASES for name in case.tables}
    tally = Tally()
    lock = threading.Lock()
    stop = threading.Event()
    admin = None
    if faulty.proxy is None:
        assert faulty.sqlite is not None
        faulty.sqlite.random = (random.Random(seed + 1), 0.05)
    else:
        admin = sa.create_engine(
            faulty.url.set(database="postgres" if backend == "postgresql" else "mysql"),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
        )

    def chaos() -> None:
        chaos_rng = random.Random(seed + 2)
        while not stop.wait(chaos_rng.uniform(0.005, 0.03)):
            assert faulty.proxy is not None
            assert admin is not None
            if chaos_rng.random() < 0.3:
                kill_sessions(admin, str(faulty.url.database), chaos_rng)
            else:
                faulty.proxy.cut_any(chaos_rng)

    def writer(index: int, calls: int) -> None:
        mine = random.Random(seed * 100 + index)
        for i in range(calls):
            case = mine.choice(RANDOM_CASES)
            try:
                result = case.call(faulty.store, ctx, index * 10_000 + i)
            except OutcomeUnknownError as exc:
                with lock:
                    tally.unknown.setdefault(case.name, []).append(exc)
            except (TransientError, ChatledgerError):
                with lock:
                    tally.failed += 1
            except Exception as exc:  # reported below, with the case's name
                with lock:
                    tally.crashed.append((case.name, exc))
            else:
                with lock:
                    tally.acknowledged.setdefault(case.name, []).append(result)
            finally:
                with lock:
                    tally.calls += 1

    threads = [threading.Thread(target=writer, args=(n, 60)) for n in range(4)]
    chaotic = threading.Thread(target=chaos) if faulty.proxy is not None else None
    for thread in threads:
        thread.start()
    if chaotic is not None:
        chaotic.start()
    for thread in threads:
        thread.join()
    stop.set()
    if chaotic is not None:
        chaotic.join()
    if faulty.sqlite is not None:
        faulty.sqlite.random = None
    if admin is not None:
        admin.dispose()

    duplicates = lost = 0
    counted: dict[str, tuple[int, int, int]] = {}
    for table in sorted({name for case in RANDOM_CASES for name in case.tables}):
        low = sum(
            len(tally.acknowledged.get(case.name, [])) * case.tables.get(table, 0)
            for case in RANDOM_CASES
        )
        high = low + sum(
            len(tally.unknown.get(case.name, [])) * case.tables.get(table, 0)
            for case in RANDOM_CASES
        )
        grew = faulty.rows(table) - start[table]
        counted[table] = (low, grew, high)
        duplicates += max(0, grew - high)
        lost += max(0, low - grew)
    for case in RANDOM_CASES:
        results = tally.acknowledged.get(case.name, [])
        if case.check is not None and results:
            case.check(faulty, ctx, results)  # each acknowledged id stored exactly once
    faulty.check_invariants()
    request.node.user_properties.append(
        (
            "exactly_once",
            {
                "backend": backend,
                "calls": tally.calls,
                "acknowledged": sum(map(len, tally.acknowledged.values())),
                "outcome_unknown": sum(map(len, tally.unknown.values())),
                "failed": tally.failed,
                "cuts": faulty.cuts,
                "duplicates": duplicates,
                "lost": lost,
            },
        )
    )
    assert faulty.cuts > 0
    assert not tally.crashed, tally.crashed
    uneven = {table: span for table, span in counted.items() if not span[0] <= span[1] <= span[2]}
    assert duplicates == 0, f"rows (acknowledged, stored, with unknown outcomes): {uneven}"
    assert lost == 0, f"rows (acknowledged, stored, with unknown outcomes): {uneven}"


def test_reliability_doc_example_runs(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "docs" / "reliability.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert blocks
    # The package under test, also when PYTHONPATH names it relative to the checkout.
    source = str(Path(chatledger.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    warnings = ["-W", "ignore::chatledger.SQLiteWALResetBugWarning"]
    for block in blocks:
        result = subprocess.run(
            [sys.executable, *warnings, "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1"


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_ensure_still_reports_created_when_its_own_late_commit_wins(
    backend: str, database_url: URL
) -> None:
    """An ensure() attempt whose COMMIT went unanswered can land after the re-run looked the
    user up and before it inserts: the re-run then loses the insert to its own earlier
    attempt, and must still answer ``created`` (the row carries the id this call drew)."""
    candidate = new_id()
    outcome: dict[str, Any] = {}
    with Ledger(database_url) as first, Ledger(database_url) as again:
        waits = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
        with first._core.db.transaction() as late:  # the earlier attempt, not yet committed
            late.call(_users.create, {"external_id": "late"}, candidate)
            draws = Draws()
            draws.values.append(candidate)  # the re-run replays the id its call drew

            def rerun() -> None:
                op = Replaying(_users.get_or_create, draws)
                outcome["ensured"] = again._core.db.run(op, "late", {})

            thread = threading.Thread(target=rerun)
            thread.start()
            # Commit the earlier attempt only once the re-run waits on the unique key.
            deadline = time.monotonic() + 30
            while _lock_waits(waits) == 0:
                assert time.monotonic() < deadline, "the re-run never waited on the insert"
                time.sleep(0.01)
        thread.join(30)
        waits.dispose()
    user, created = outcome["ensured"]
    assert (user.id, created) == (candidate, True)


def _lock_waits(engine: sa.Engine) -> int:
    """Sessions of this database waiting for a lock (other tests share the server)."""
    query = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
        if engine.dialect.name == "postgresql"
        else "SELECT COUNT(*) FROM information_schema.INNODB_TRX t "
        "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
        "WHERE t.trx_state = 'LOCK WAIT' AND p.DB = DATABASE()"
    )
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(query).scalar_one())


def test_a_bulk_upsert_rerun_counts_what_its_own_late_commit_wrote(database_url: URL) -> None:
    """A ``knowledge.bulk_upsert`` attempt whose COMMIT went unanswered can land after the
    settle check looked and before the re-run reads the stored hashes: the re-run then finds
    its own rows. Written at the call's clock, they count as the attempt counted them
    (inserted, updated), not as unchanged; rows another call wrote earlier stay unchanged."""
    from chatledger._ops import knowledge as _knowledge
    from chatledger._ops._common import utcnow

    def chunk(external_id: str, content: str) -> Any:
        given = [{"source": "docs", "external_id": external_id, "content": content}]
        return _knowledge.prepare_many(chatledger.Limits(), given)[0]

    with Ledger(database_url) as ledger:
        ledger.knowledge.bulk_upsert(
            [
                {"source": "docs", "external_id": "kept", "content": "old"},
                {"source": "docs", "external_id": "changed", "content": "old"},
            ]
        )
        batch = [chunk("kept", "old"), chunk("changed", "new"), chunk("added", "new")]
        now = utcnow()
        first = ledger._core.db.run(_knowledge.bulk_upsert, batch, 10, now)  # committed
        again = ledger._core.db.run(_knowledge.bulk_upsert, batch, 10, now)  # its re-run
        later = ledger._core.db.run(_knowledge.bulk_upsert, batch, 10, utcnow())
    counts = [(r.inserted, r.updated, r.unchanged) for r in (first, again, later)]
    assert counts == [(1, 1, 1), (1, 1, 1), (0, 0, 3)]
