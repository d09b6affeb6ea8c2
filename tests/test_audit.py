"""The audit log: appends, the hash chain and its verification, queries, redaction, and the
audit logger (database and JSON-lines file, and what it does while the database is down)."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import queue
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import (
    AsyncAuditLogger,
    AsyncLedger,
    AuditLogger,
    ChatledgerError,
    ChatledgerWarning,
    ConflictError,
    ConversationMemory,
    Ledger,
    NotFoundError,
    RetryPolicy,
    SQLiteWALResetBugWarning,
    TransientError,
    ValidationError,
)
from chatledger._async._audit import category_of
from chatledger._ops.audit import chain_hash, content_digest, redact_user
from chatledger._schema import audit_chain, audit_events

from ._faults import Proxy
from ._threads import run_threads
from .conftest import Blocking

THREADS = 8
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/chatledger"


def logger_of(store: Any, path: Path, **options: Any) -> Any:
    """An audit logger on ``store``, of its surface, with the sync surface's shape."""
    if isinstance(store, Blocking):
        return Blocking(AsyncAuditLogger(store._target, path, **options), store._portal)
    return AuditLogger(store, path, **options)


@pytest.fixture
def raw(database_url: URL) -> Iterator[sa.Engine]:
    """A plain engine on the test database, for tampering by hand."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def _chain(store: Any, n: int) -> list[Any]:
    log = store.audit
    return [
        log.record(
            f"event.{i}",
            description=f"event number {i}",
            metadata={"i": i, "tags": ["a", "b"]},
            severity="info",
        )
        for i in range(1, n + 1)
    ]


# -- appends and reads ----------------------------------------------------------------------


def test_record_numbers_events_from_one_and_chains_them(store, user):
    log = store.audit
    first = log.record("user.login", user_id=user.id, category="access")
    second = log.record(
        "file.export",
        user_id=str(user.id),
        category="compliance",
        severity="warning",
        description="exported 3 files",
        metadata={"files": ["a", "b", "c"], "nested": {"n": 1}},
    )

    assert (first.seq, second.seq) == (1, 2)
    assert first.user_id == second.user_id == user.id
    assert (second.category, second.severity) == ("compliance", "warning")
    assert second.metadata == {"files": ["a", "b", "c"], "nested": {"n": 1}}
    assert not first.redacted
    digest = content_digest(
        id=second.id,
        user_id=user.id,
        event_type="file.export",
        category="compliance",
        severity="warning",
        description="exported 3 files",
        metadata=second.metadata,
        created_at=second.created_at,
    )
    assert second.hash == chain_hash(first.hash, 2, digest)
    assert log.get(1) == first
    assert log.get(second.id) == second
    assert log.get(str(second.id)) == second


def test_defaults_and_an_event_of_no_user(store):
    event = store.audit.record("system.startup")
    assert (event.category, event.severity) == ("general", "info")
    assert event.user_id is None
    assert event.description is None
    assert event.metadata is None
    assert store.audit.get(event.seq) == event


def test_events_outlive_users_no_foreign_key(store):
    ghost = uuid.uuid4()
    event = store.audit.record("user.deleted", user_id=ghost)
    assert store.audit.get(event.id).user_id == ghost


def test_get_missing_is_not_found(store):
    log = store.audit
    with pytest.raises(NotFoundError):
        log.get(1)
    with pytest.raises(NotFoundError):
        log.get(uuid.uuid4())
    with pytest.raises(ValidationError) as caught:
        log.get(0)
    assert caught.value.field == "seq_or_id"
    with pytest.raises(ValidationError):
        log.get("not-an-id")


@pytest.mark.parametrize(
    ("field", "call", "limit"),
    [
        ("event_type", lambda log: log.record("t" * 101), 100),
        ("event_type", lambda log: log.record("   "), None),
        ("event_type", lambda log: log.record(7), None),
        ("description", lambda log: log.record("t", description="d" * 10_001), 10_000),
        ("description", lambda log: log.record("t", description="nul\x00"), None),
        ("category", lambda log: log.record("t", category="misc"), None),
        ("severity", lambda log: log.record("t", severity="fatal"), None),
        ("metadata", lambda log: log.record("t", metadata={"x": float("nan")}), None),
        ("metadata", lambda log: log.record("t", metadata=["not", "a", "mapping"]), None),
        ("user_id", lambda log: log.record("t", user_id="nobody"), None),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(store, field, call, limit):
    log = store.audit
    with pytest.raises(ValidationError) as caught:
        call(log)
    assert caught.value.field == field
    if limit is not None:
        assert caught.value.limit == limit
    assert log.list().items == []
    assert log.verify().checked == 0


def test_sizes_at_the_limit_are_accepted(store):
    event = store.audit.record("t" * 100, description="d" * 10_000)
    assert store.audit.get(event.seq).description == "d" * 10_000
    assert store.audit.get(event.seq).event_type == "t" * 100


def test_list_filters_by_user_type_category_severity(store):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    log = store.audit
    log.record("login", user_id=alice, category="access")
    log.record("login", user_id=bob, category="access")
    log.record("export", user_id=alice, category="compliance", severity="warning")
    log.record("startup", category="system", severity="debug")

    assert [e.seq for e in log.list(user_id=alice)] == [3, 1]
    assert [e.seq for e in log.list(user_id=str(bob))] == [2]
    assert [e.seq for e in log.list(event_type="login", order="asc")] == [1, 2]
    assert [e.seq for e in log.list(category="compliance")] == [3]
    assert [e.seq for e in log.list(severity="debug")] == [4]
    assert [e.seq for e in log.list(user_id=alice, event_type="login")] == [1]
    assert log.list(event_type="nothing").items == []
    with pytest.raises(ValidationError) as caught:
        log.list(category="misc")
    assert caught.value.field == "category"
    with pytest.raises(ValidationError) as caught:
        log.list(severity="loud")
    assert caught.value.field == "severity"


def test_list_by_time_range_since_inclusive_until_exclusive(store):
    log = store.audit
    events = [log.record(f"e{i}") for i in range(3)]
    middle = events[1].created_at

    assert [e.seq for e in log.list(since=middle, order="asc")] == [2, 3]
    assert [e.seq for e in log.list(until=middle, order="asc")] == [1]
    assert [e.seq for e in log.list(since=middle, until=middle)] == []
    later = middle + timedelta(hours=1)
    assert log.list(since=later).items == []
    as_paris = middle.astimezone(datetime.now().astimezone().tzinfo)
    assert [e.seq for e in log.list(since=as_paris, order="asc")] == [2, 3]
    with pytest.raises(ValidationError) as caught:
        log.list(since=middle.replace(tzinfo=None))
    assert caught.value.field == "since"
    with pytest.raises(ValidationError) as caught:
        log.list(since=middle, until=middle - timedelta(seconds=1))
    assert caught.value.field == "until"


def test_pages_forward_and_backward_visit_every_event_once(store):
    log = store.audit
    for i in range(23):
        log.record(f"e{i}")

    seen, after = [], None
    while True:
        page = log.list(limit=5, after=after)
        seen += [e.seq for e in page]
        if not page.has_more:
            break
        after = page.last_cursor
    assert seen == list(range(23, 0, -1))

    oldest = log.list(limit=5, order="asc")
    assert [e.seq for e in oldest] == [1, 2, 3, 4, 5]
    following = log.list(limit=5, order="asc", after=oldest.last_cursor)
    assert [e.seq for e in following] == [6, 7, 8, 9, 10]
    back = log.list(limit=5, order="asc", before=following.first_cursor)
    assert [e.seq for e in back] == [1, 2, 3, 4, 5]
    assert back.has_more is False


def test_page_limits_and_cursors_are_checked(store):
    log = store.audit
    log.record("e")
    assert len(log.list(limit=1000)) == 1
    for bad in (0, 1001):
        with pytest.raises(ValidationError) as caught:
            log.list(limit=bad)
        assert caught.value.field == "limit"
    assert caught.value.limit == 1000
    with pytest.raises(ValidationError) as caught:
        log.list(after="garbage!")
    assert caught.value.field == "after"
    with pytest.raises(ValidationError) as caught:
        log.list(after=log.list().last_cursor, before=log.list().first_cursor)
    assert caught.value.field == "before"
    user = store.users.create(username="cursor-kind")
    store.conversations.create(user.id)
    foreign = store.conversations.list(user.id).last_cursor
    with pytest.raises(ValidationError):
        log.list(after=foreign)


def test_audit_is_ledger_only(store, user):
    scope = store.as_user(user.id)
    assert not hasattr(scope, "audit")


# -- verify ---------------------------------------------------------------------------------


def test_an_empty_log_verifies(store):
    result = store.audit.verify()
    assert (result.ok, result.checked, result.first_broken_seq, result.problem) == (
        True,
        0,
        None,
        None,
    )


@pytest.mark.parametrize("batch_size", [1, 4, 7, 1000])
def test_an_untouched_chain_verifies_in_any_batch_size(store, batch_size):
    _chain(store, 21)
    result = store.audit.verify(batch_size=batch_size)
    assert result.ok
    assert result.checked == 21
    assert result.first_broken_seq is None
    assert result.problem is None


def test_verify_batch_size_range(store):
    log = store.audit
    log.record("e")
    assert log.verify(batch_size=100_000).ok
    for bad in (0, 100_001):
        with pytest.raises(ValidationError) as caught:
            log.verify(batch_size=bad)
        assert caught.value.field == "batch_size"
    assert caught.value.limit == 100_000
    with pytest.raises(ValidationError):
        log.verify(batch_size=True)


def test_awkward_metadata_and_text_survive_the_round_trip_on_every_backend(store):
    """The digest of what was written equals the digest recomputed from what is read back:
    PostgreSQL's JSONB turns 1e16 into an integer and -0.0 into 0.0."""
    log = store.audit
    log.record(
        "awkward",
        description="Ünïcødé 🙂 with trailing space ",
        metadata={
            "big": 1e16,
            "huge": 1.5e300,
            "neg_zero": -0.0,
            "small": 1e-7,
            "float": 0.1,
            "whole": 3.0,
            "int": 2**70,
            "nested": {"z": [1, {"y": None}], "a": True},
            "ключ": "значение",
        },
    )
    log.record("plain")
    assert log.verify(batch_size=1).ok


def _update(raw: sa.Engine, seq: int, **values: Any) -> None:
    with raw.begin() as conn:
        conn.execute(audit_events.update().where(audit_events.c.seq == seq).values(**values))


def _rows(raw: sa.Engine) -> list[Any]:
    with raw.connect() as conn:
        return list(conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)))


def _renumber(raw: sa.Engine, from_seq: int, delta: int) -> None:
    """Move the events from ``from_seq`` on by ``delta`` places, one by one (no transient
    duplicate keys)."""
    seqs = [row.seq for row in _rows(raw) if row.seq >= from_seq]
    with raw.begin() as conn:
        for seq in sorted(seqs, reverse=delta > 0):
            conn.execute(
                audit_events.update()
                .where(audit_events.c.seq == seq)
                .values(seq=audit_events.c.seq + delta)
            )


def _forge(raw: sa.Engine, seq: int, prev_hash: str, *, consistent: bool) -> None:
    """Insert a forged event at ``seq``: sealed correctly for its place, or with junk hashes."""
    event_id = uuid.uuid4()
    now = datetime.now(UTC)
    digest = content_digest(
        id=event_id,
        user_id=None,
        event_type="forged",
        category="general",
        severity="info",
        description="I was never appended",
        metadata=None,
        created_at=now,
    )
    with raw.begin() as conn:
        conn.execute(
            audit_events.insert(),
            {
                "seq": seq,
                "id": event_id,
                "user_id": None,
                "event_type": "forged",
                "category": "general",
                "severity": "info",
                "description": "I was never appended",
                "metadata": None,
                "created_at": now,
                "content_digest": digest if consistent else "d" * 64,
                "prev_hash": prev_hash if consistent else "e" * 64,
                "hash": chain_hash(prev_hash, seq, digest) if consistent else "f" * 64,
                "redacted_at": None,
            },
        )


def _set_head(raw: sa.Engine, seq: int, hash_: str) -> None:
    with raw.begin() as conn:
        conn.execute(audit_chain.update().values(last_seq=seq, last_hash=hash_))


def _tamper_edit_description(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _update(raw, 4, description="nothing to see here")
    return 4, "edited"


def _tamper_edit_metadata(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _update(raw, 6, metadata={"i": 600, "tags": ["a", "b"]})
    return 6, "edited"


def _tamper_edit_severity(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _update(raw, 1, severity="debug")
    return 1, "edited"


def _tamper_edit_user(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _update(raw, 9, user_id=uuid.uuid4())
    return 9, "edited"


def _tamper_edit_and_reseal(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    """Rewrite the content and recompute the event's own digest and hash: the next event no
    longer chains to it."""
    row = next(r for r in _rows(raw) if r.seq == 5)
    digest = content_digest(
        id=row.id,
        user_id=row.user_id,
        event_type=row.event_type,
        category=row.category,
        severity="critical",
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
    )
    _update(
        raw,
        5,
        severity="critical",
        content_digest=digest,
        hash=chain_hash(row.prev_hash, 5, digest),
    )
    return 5, "edited"


def _tamper_fake_redaction(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    """Marking an event redacted does not exempt rewritten content."""
    _update(raw, 3, redacted_at=datetime.now(UTC), description="rewritten")
    return 3, "edited"


def _tamper_delete_middle(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    with raw.begin() as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq == 5))
    return 5, "deleted"


def _tamper_delete_and_renumber(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    with raw.begin() as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq == 5))
    _renumber(raw, 6, -1)
    _set_head(raw, 9, events[-1].hash)
    return 5, "deleted"


def _tamper_delete_first(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    with raw.begin() as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq == 1))
    return 1, "deleted"


def _tamper_delete_tail(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    with raw.begin() as conn:
        conn.execute(audit_events.delete().where(audit_events.c.seq >= 9))
    return 9, "deleted"


def _tamper_append_after_head(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _forge(raw, 11, events[-1].hash, consistent=True)
    return 11, "inserted"


def _tamper_append_junk_after_head(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _forge(raw, 11, events[-1].hash, consistent=False)
    return 11, "inserted"


def _tamper_insert_sealed_and_renumber(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _renumber(raw, 4, +1)
    _forge(raw, 4, events[2].hash, consistent=True)
    _set_head(raw, 11, events[-1].hash)
    return 4, "inserted"


def _tamper_insert_junk_and_renumber(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _renumber(raw, 7, +1)
    _forge(raw, 7, events[5].hash, consistent=False)
    _set_head(raw, 11, events[-1].hash)
    return 7, "inserted"


def _tamper_head(raw: sa.Engine, events: list[Any]) -> tuple[int, str]:
    _set_head(raw, 10, "a" * 64)
    return 10, "chain head mismatch"


TAMPERING: dict[str, Callable[[sa.Engine, list[Any]], tuple[int, str]]] = {
    "edit description": _tamper_edit_description,
    "edit metadata": _tamper_edit_metadata,
    "edit severity": _tamper_edit_severity,
    "edit user": _tamper_edit_user,
    "edit and reseal": _tamper_edit_and_reseal,
    "fake redaction": _tamper_fake_redaction,
    "delete middle": _tamper_delete_middle,
    "delete and renumber": _tamper_delete_and_renumber,
    "delete first": _tamper_delete_first,
    "delete tail": _tamper_delete_tail,
    "append after head": _tamper_append_after_head,
    "append junk after head": _tamper_append_junk_after_head,
    "insert sealed and renumber": _tamper_insert_sealed_and_renumber,
    "insert junk and renumber": _tamper_insert_junk_and_renumber,
    "head": _tamper_head,
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_tampering_is_detected_and_located(ledger, raw, tampering):
    """Each kind of tampering by hand is found at the right event, whatever the batch size
    (verify is one operation: the sync surface alone stands for both here)."""
    events = _chain(ledger, 10)
    assert ledger.audit.verify().ok

    seq, problem = TAMPERING[tampering](raw, events)

    for batch_size in (1000, 3, 1):
        result = ledger.audit.verify(batch_size=batch_size)
        assert not result.ok
        assert (result.first_broken_seq, result.problem) == (seq, problem), batch_size
        assert 0 <= result.checked <= 11


# -- redaction ------------------------------------------------------------------------------


def _strings(row: Any) -> list[str]:
    return [str(value).lower() for value in row]


def test_redact_user_removes_every_trace_and_keeps_the_chain_valid(store, raw):
    log = store.audit
    alice, bob = uuid.uuid4(), uuid.uuid4()
    log.record("login", user_id=alice, description="alice signed in", metadata={"ip": "10.0.0.1"})
    log.record("login", user_id=bob, description="bob signed in")
    log.record("share", user_id=bob, description=f"bob shared a file with {alice}")
    log.record("share", user_id=bob, metadata={"with": [str(alice).upper()], "n": 1})
    log.record("admin", metadata={alice.hex: "key is the user"})
    log.record(f"user:{alice}:deleted", category="compliance")
    log.record("startup", category="system")

    redacted = store._call(redact_user, alice, write=True)

    assert redacted == 5
    assert log.verify(batch_size=2).ok
    for row in _rows(raw):
        for value in _strings(row):
            assert str(alice) not in value
            assert alice.hex not in value
    events = log.list(order="asc").items
    assert [e.redacted for e in events] == [True, False, True, True, True, True, False]
    first = events[0]
    assert (first.user_id, first.description, first.metadata) == (None, "[redacted]", None)
    assert first.event_type == "login"  # kept: it does not name the user
    assert events[5].event_type == "[redacted]"
    assert events[1].user_id == bob
    assert events[1].description == "bob signed in"
    assert log.list(user_id=alice).items == []
    assert store._call(redact_user, alice, write=True) == 0
    assert store._call(redact_user, uuid.uuid4(), write=True) == 0
    assert log.verify().ok


# -- concurrency ----------------------------------------------------------------------------


def _assert_gap_free(log: Any, returned: list[Any]) -> None:
    n = len(returned)
    stored = []
    after = None
    while True:
        page = log.list(order="asc", limit=1000, after=after)
        stored += page.items
        if not page.has_more:
            break
        after = page.last_cursor
    assert [e.seq for e in stored] == list(range(1, n + 1))
    assert {e.id: e.seq for e in stored} == {e.id: e.seq for e in returned}
    result = log.verify(batch_size=64)
    assert (result.ok, result.checked) == (True, n)


@pytest.mark.slow
def test_threads_appending_keep_a_gap_free_chain(ledger):
    per_thread = 50

    def work(index: int) -> list[Any]:
        return [ledger.audit.record(f"t{index}", metadata={"i": i}) for i in range(per_thread)]

    results = run_threads(THREADS, work)

    returned = [event for batch in results for event in batch]
    _assert_gap_free(ledger.audit, returned)
    for batch in results:
        seqs = [event.seq for event in batch]
        assert seqs == sorted(seqs)


@pytest.mark.slow
def test_async_tasks_appending_keep_a_gap_free_chain(database_url):
    async def main() -> list[Any]:
        async with AsyncLedger(database_url) as store:

            async def work(index: int) -> list[Any]:
                return [await store.audit.record(f"task{index}") for _ in range(25)]

            batches = await asyncio.gather(*(work(i) for i in range(THREADS)))
            return [event for batch in batches for event in batch]

    returned = asyncio.run(main())
    with Ledger(database_url) as ledger:
        _assert_gap_free(ledger.audit, returned)


def _record_in_process(url: str, index: int, count: int, barrier: Any, results: Any) -> None:
    warnings.simplefilter("ignore", SQLiteWALResetBugWarning)
    try:
        with Ledger(url) as store:
            barrier.wait()
            sent = [store.audit.record(f"p{index}", metadata={"i": i}) for i in range(count)]
        results.put((index, [(e.id.hex, e.seq) for e in sent], None))
    except BaseException:
        results.put((index, None, traceback.format_exc()))


@pytest.mark.slow
def test_processes_appending_keep_a_gap_free_chain(database_url):
    processes, per_process = 3, 50
    url = database_url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes, timeout=60)
    results = context.Queue()
    workers = [
        context.Process(target=_record_in_process, args=(url, i, per_process, barrier, results))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes: dict[int, Any] = {}
    try:
        for _ in range(processes):
            index, sent, error = results.get(timeout=120)
            outcomes[index] = (sent, error)
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {processes} worker processes reported")
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
                worker.join()
        results.close()
        results.join_thread()
    assert [error for _, error in outcomes.values() if error is not None] == []

    with Ledger(url) as ledger:
        result = ledger.audit.verify(batch_size=50)
        assert (result.ok, result.checked) == (True, processes * per_process)
        stored = {e.id.hex: e.seq for e in ledger.audit.list(limit=1000)}
    assert sorted(stored.values()) == list(range(1, processes * per_process + 1))
    for sent, _ in outcomes.values():
        assert all(stored[ident] == seq for ident, seq in sent)


def test_verify_while_appending_is_not_fooled(ledger):
    """Events committed while verify streams the chain are neither "inserted" nor a
    "deleted" tail."""
    ledger.audit.record("seed")
    stop = threading.Event()
    failures: list[str] = []

    def append() -> None:
        try:
            while not stop.is_set():
                ledger.audit.record("busy")
        except BaseException:
            failures.append(traceback.format_exc())

    writer = threading.Thread(target=append)
    writer.start()
    try:
        for _ in range(15):
            result = ledger.audit.verify(batch_size=5)
            assert result.ok, result
    finally:
        stop.set()
        writer.join(60)
    assert failures == []
    assert ledger.audit.verify().ok


# -- the audit logger -----------------------------------------------------------------------


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("event_type", "category"),
    [
        ("auth_failed", "security"),
        ("request_blocked", "security"),
        ("access_denied", "security"),
        ("prompt_injection_detected", "security"),
        ("PII_detected", "security"),
        ("user_login", "access"),
        ("user_logout", "access"),
        ("data_access", "access"),
        ("gdpr_request", "compliance"),
        ("erase_user", "compliance"),
        ("data_export", "compliance"),
        ("retention_run", "compliance"),
        ("startup", "system"),
        ("shutdown", "system"),
        ("db_error", "system"),
        ("message_sent", "general"),
    ],
)
def test_category_is_derived_from_the_event_type(event_type, category):
    assert category_of(event_type) == category


def test_logger_writes_the_database_and_the_file(store, user, tmp_path):
    path = tmp_path / "audit.jsonl"
    logger = logger_of(store, path, fsync=True)

    event = logger.log("user_login", user_id=user.id, metadata={"ip": "10.0.0.1"})
    other = logger.log("note", category="general", severity="warning", description="Ünï 🙂")

    assert event is not None
    assert other is not None
    assert event.category == "access"
    assert store.audit.get(event.seq) == event
    first, second = _lines(path)
    assert first == {
        "id": str(event.id),
        "seq": event.seq,
        "hash": event.hash,
        "stored": True,
        "created_at": event.created_at.isoformat(timespec="microseconds"),
        "user_id": str(user.id),
        "event_type": "user_login",
        "category": "access",
        "severity": "info",
        "description": None,
        "metadata": {"ip": "10.0.0.1"},
    }
    assert second["description"] == "Ünï 🙂"
    assert second["seq"] == other.seq
    assert logger.path == str(path)
    assert store.audit.verify().ok


def test_log_event_is_the_drop_in_of_the_framework(store, tmp_path):
    path = tmp_path / "audit.jsonl"
    logger = logger_of(store, path)
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    event = logger.log_event("pii_detected", {"field": "email", "at": when}, severity="warning")

    assert event is not None
    assert (event.category, event.severity) == ("security", "warning")
    assert event.metadata == {"field": "email", "at": str(when)}
    assert _lines(path)[0]["metadata"] == {"field": "email", "at": str(when)}
    assert logger.log_event("startup").category == "system"


def test_logger_in_a_user_scope_defaults_to_its_user(store, user, tmp_path):
    scope = store.as_user(user.id)
    logger = logger_of(scope, tmp_path / "audit.jsonl")
    event = logger.log("viewed_settings")
    assert event is not None
    assert event.user_id == user.id


def test_logger_rejects_bad_input_and_writes_nothing(store, tmp_path):
    path = tmp_path / "audit.jsonl"
    logger = logger_of(store, path)
    with pytest.raises(ValidationError) as caught:
        logger.log("x" * 101)
    assert caught.value.field == "event_type"
    with pytest.raises(ValidationError) as caught:
        logger.log("x", severity="loud")
    assert caught.value.field == "severity"
    assert not path.exists()
    assert store.audit.list().items == []


def _unreachable_logger(surface: str, path: Path) -> tuple[Any, Callable[[], None]]:
    policy = RetryPolicy(attempts=1)
    if surface == "sync":
        ledger = Ledger(UNREACHABLE, retry=policy)
        return AuditLogger(ledger, path), ledger.close
    from .conftest import Portal

    portal = Portal()
    store = AsyncLedger(UNREACHABLE, retry=policy)
    logger = Blocking(AsyncAuditLogger(store, path), portal)

    def close() -> None:
        portal.call(store.close())
        portal.close()

    return logger, close


@pytest.mark.parametrize("surface", ["sync", "async"])
def test_logger_keeps_writing_the_file_while_the_database_is_unreachable(surface, tmp_path, caplog):
    path = tmp_path / "audit.jsonl"
    logger, close = _unreachable_logger(surface, path)
    try:
        with caplog.at_level(logging.WARNING, logger="chatledger"):
            with pytest.warns(ChatledgerWarning, match="unreachable"):
                assert logger.log("auth_failed", description="bad password") is None
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a second warning in one outage would raise
                assert logger.log_event("user_logout", {"n": 2}) is None
    finally:
        close()

    first, second = _lines(path)
    assert first["stored"] is False
    assert first["seq"] is None
    assert first["hash"] is None
    assert (first["event_type"], first["category"]) == ("auth_failed", "security")
    assert first["description"] == "bad password"
    assert "TransientError" in first["error"]
    uuid.UUID(first["id"])
    datetime.fromisoformat(first["created_at"])
    assert (second["event_type"], second["metadata"], second["stored"]) == (
        "user_logout",
        {"n": 2},
        False,
    )
    outage_logs = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage_logs) == 1
    assert outage_logs[0].levelno == logging.WARNING


def test_logger_reports_the_database_back_after_an_outage(servers, tmp_path, caplog):
    """A real outage and recovery: the server is unreachable (a loopback proxy in front of it
    refuses connections), then reachable again."""
    server = servers["postgresql"]
    server.require()
    name = f"chatledger_outage_{uuid.uuid4().hex[:12]}"
    server.create(name)
    url = server.admin_url.set(database=name)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.down()
    path = tmp_path / "audit.jsonl"
    ledger = Ledger(proxy.url(url), retry=RetryPolicy(attempts=1))
    try:
        logger = AuditLogger(ledger, path)
        with caplog.at_level(logging.WARNING, logger="chatledger"):
            with pytest.warns(ChatledgerWarning):
                assert logger.log("startup") is None
            assert logger.log("still_down") is None
            proxy.refusing = False
            event = logger.log("recovered")
            again = logger.log("steady")
    finally:
        ledger.close()
        proxy.close()

    assert event is not None
    assert again is not None
    assert (event.seq, again.seq) == (1, 2)
    assert [line["stored"] for line in _lines(path)] == [False, False, True, True]
    assert "TransientError" in _lines(path)[0]["error"]
    back = [r.getMessage() for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(back) == 1
    assert "2 events" in back[0]


_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_events BEFORE INSERT ON audit_events "
        "WHEN NEW.event_type = 'forbidden' BEGIN SELECT RAISE(ABORT, 'refused by policy'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.event_type = 'forbidden' THEN RAISE EXCEPTION 'refused by policy'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_events BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION refuse_events()",
    ],
    "mariadb": [
        "CREATE TRIGGER refuse_events BEFORE INSERT ON audit_events FOR EACH ROW "
        "IF NEW.event_type = 'forbidden' THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by policy'; END IF"
    ],
}
_UNREFUSE = {
    "sqlite": ["DROP TRIGGER refuse_events"],
    "postgresql": ["DROP TRIGGER refuse_events ON audit_events", "DROP FUNCTION refuse_events()"],
    "mariadb": ["DROP TRIGGER refuse_events"],
}


def test_logger_reports_a_rejected_event_as_an_error_not_an_outage(
    store, backend, raw, tmp_path, caplog
):
    """The database answers and refuses one event (here a trigger of the DBA's): the caller
    gets the error, the file keeps the event marked rejected, an error is logged, and no
    outage is reported (no "unreachable", no "reachable again")."""
    path = tmp_path / "audit.jsonl"
    logger = logger_of(store, path)
    with raw.begin() as conn:
        for statement in _REFUSE[backend]:
            conn.execute(sa.text(statement))
    try:
        with caplog.at_level(logging.WARNING, logger="chatledger"):
            assert logger.log("before") is not None
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no outage warning
                with pytest.raises(ChatledgerError) as caught:
                    logger.log("forbidden", description="kept anyway")
            assert "refused by policy" in str(caught.value)
            assert not isinstance(caught.value, TransientError)
            assert logger.log("after") is not None
    finally:
        with raw.begin() as conn:
            for statement in _UNREFUSE[backend]:
                conn.execute(sa.text(statement))
    lines = _lines(path)
    assert [(line["event_type"], line["stored"]) for line in lines] == [
        ("before", True),
        ("forbidden", False),
        ("after", True),
    ]
    assert lines[1]["rejected"] is True
    assert lines[1]["description"] == "kept anyway"
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "unreachable" in m or "reachable again" in m]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "rejected" in errors[0].getMessage()
    assert [e.event_type for e in store.audit.list(order="asc").items] == ["before", "after"]


@pytest.mark.parametrize("surface", ["sync", "async"])
def test_logger_falls_back_to_the_file_when_the_ledger_cannot_be_built(surface, tmp_path, caplog):
    """``connect``: a SQLite directory that cannot be created is a ConfigurationError from the
    ledger's constructor; the logger writes its file only and says why once."""
    path = tmp_path / "audit.jsonl"
    url = "sqlite:////proc/chatledger-no-such-dir/app.db"
    connect = AuditLogger.connect if surface == "sync" else _connect_async
    with (
        caplog.at_level(logging.ERROR, logger="chatledger"),
        pytest.warns(ChatledgerWarning, match="cannot be opened"),
    ):
        logger: Any = connect(path, url)
    assert not logger.stores
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, at connect
        if surface == "sync":
            with logger:
                assert logger.log("startup") is None
                assert logger.log_event("login", {"n": 1}, user_id=None) is None
        else:
            asyncio.run(_log_async(logger))
    assert [(line["event_type"], line["stored"]) for line in _lines(path)] == [
        ("startup", False),
        ("login", False),
    ]
    assert len([r for r in caplog.records if "cannot be opened" in r.getMessage()]) == 1


def _connect_async(path: Path, url: str) -> Any:
    return asyncio.run(_connect(path, url))


async def _connect(path: Path, url: str) -> Any:
    return AsyncAuditLogger.connect(path, url)


async def _log_async(logger: Any) -> None:
    async with logger:
        assert await logger.log("startup") is None
        assert await logger.log_event("login", {"n": 1}) is None


def test_logger_connect_owns_its_ledger(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLogger.connect(path, f"sqlite:///{tmp_path / 'app.db'}") as logger:
        assert logger.stores
        event = logger.log("startup")
        assert event is not None
        assert event.seq == 1
    assert _lines(path)[0]["stored"] is True


def test_without_a_database_the_app_code_stays_the_same(tmp_path, monkeypatch):
    """``USE_DATABASE=false``: ``Ledger()`` opens no server and no file (its store lives in
    memory), ``ConversationMemory`` works, and the ``AuditLogger`` writes its file only."""
    monkeypatch.setenv("USE_DATABASE", "false")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/never")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "audit.jsonl"
    with Ledger() as ledger:
        assert ledger.config.use_database is False
        assert ledger.config.sources["use_database"] == "env USE_DATABASE"
        assert ledger.config.url.database == ":memory:"
        memory = ConversationMemory(ledger)
        user = ledger.users.create(username="ada")
        memory.add_message("conv_1", "user", "Hello", user_id=user.id)
        assert [m.content for m in memory.last("conv_1", 5, user_id=user.id)] == ["Hello"]
        logger = AuditLogger(ledger, path)
        assert not logger.stores
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert (
                logger.log_event("blocked_content", {"reason": "PII"}, severity="warning") is None
            )
        assert ledger.audit.list().items == []
    assert list(tmp_path.iterdir()) == [path]  # no database file
    (line,) = _lines(path)
    assert (line["event_type"], line["stored"], line["error"]) == ("blocked_content", False, None)
    assert line["category"] == "security"


def test_logger_lines_from_many_threads_stay_whole(ledger, tmp_path):
    path = tmp_path / "audit.jsonl"
    logger = AuditLogger(ledger, path)
    per_thread = 20

    def work(index: int) -> list[Any]:
        return [
            logger.log("bulk", description=f"{index}-{i} " + "x" * 5000) for i in range(per_thread)
        ]

    returned = [event for batch in run_threads(THREADS, work) for event in batch]

    lines = _lines(path)
    assert len(lines) == THREADS * per_thread
    assert sorted(line["seq"] for line in lines) == list(range(1, THREADS * per_thread + 1))
    assert {line["id"] for line in lines} == {str(event.id) for event in returned}
    assert ledger.audit.verify().ok


def test_a_missing_chain_head_is_recreated_only_for_an_empty_log(store, raw):
    with raw.begin() as conn:
        conn.execute(audit_chain.delete())
    log = store.audit
    assert log.verify().ok
    first = log.record("first")
    assert first.seq == 1
    assert log.verify().ok

    with raw.begin() as conn:
        conn.execute(audit_chain.delete())
    with pytest.raises(ConflictError):
        log.record("second")
    result = log.verify()
    assert (result.ok, result.first_broken_seq, result.problem) == (
        False,
        1,
        "chain head mismatch",
    )


def test_the_memory_and_audit_docs_examples_run(tmp_path):
    from .test_readme import run_docs_page

    page = Path(__file__).resolve().parent.parent / "docs" / "memory-and-audit.md"
    output = run_docs_page(page, tmp_path)
    assert "2 True" in output
    assert "['Hello', 'Hi!']" in output
    assert output.count("False None") == 2
