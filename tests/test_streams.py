"""Streaming replies: begin in state ``streaming`` (seq and tree place at once), chunks
flushed in batches, reads from an offset while it streams and after, several readers, the
finish (usage, holds settled), abort, the sweep of dead writers (a writer killed with
SIGKILL), parallel holds never overspending, bad input writing nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from chatledger import (
    AsyncLedger,
    ConflictError,
    InsufficientBalanceError,
    Ledger,
    NotFoundError,
    ValidationError,
)
from chatledger._ops.streams import SWEPT
from chatledger._schema import message_streams

from ._threads import run_threads


def _expire(database_url, message_id) -> None:
    """Make the stream's lease run out now (as if its writer stopped flushing long ago)."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(message_streams)
                .where(message_streams.c.message_id == uuid.UUID(str(message_id)))
                .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        engine.dispose()


def _funded(store, user, amount):
    if amount:
        store.tokens.credit(amount, user_id=user.id, reason="top-up")


def test_a_reply_takes_its_place_at_begin_and_streams_into_the_store(store, chat):
    question = store.messages.append(chat.id, "user", "Tell me a story")
    writer = store.streams.writer(chat.id, flush_chars=10, flush_interval=3600, model="m-1")
    begun = writer.message
    assert (begun.status, begun.content, begun.seq, begun.parent_seq) == (
        "streaming",
        "",
        2,
        question.seq,
    )
    assert store.messages.last(chat.id, 5)[-1].id == begun.id  # a reader sees it coming
    assert store.conversations.get(chat.id).active_leaf_seq == 2

    for delta in ["Once ", "upon ", "a ", "time, ", "there"]:
        writer.write(delta)
    # Flushed when 10 characters are buffered: "Once upon " and "a time, there".
    assert store.streams.get(begun.id).chunk_count == 2
    writer.write("!")
    assert store.streams.read(begun.id).text == "Once upon a time, there"
    writer.flush()
    flushed = store.streams.read(begun.id, 5)
    assert (flushed.start, flushed.end, flushed.text) == (5, 24, "upon a time, there!")
    assert flushed.status == "streaming"
    assert not flushed.done
    assert store.messages.get(begun.id).content == ""  # the row gets its text at the finish

    writer.write(" was a ledger.")
    done = writer.finish(
        input_tokens=12,
        output_tokens=9,
        cached_input_tokens=4,
        reasoning_tokens=2,
        cost="0.0031",
        latency_ms=850,
    )
    assert done.content == "Once upon a time, there! was a ledger."
    assert (done.status, done.status_reason, done.model) == ("completed", None, "m-1")
    assert (done.cached_input_tokens, done.reasoning_tokens) == (4, 2)
    assert store.messages.get(begun.id) == done
    stream = store.streams.get(begun.id)
    assert stream.finished_at is not None
    assert stream.lease_expires_at is None
    assert stream.char_count == len(done.content)
    tail = store.streams.read(begun.id, 24)
    assert (tail.text, tail.start, tail.end, tail.done) == (" was a ledger.", 24, 38, True)
    totals = store.usage.overall(conversation_id=chat.id)
    assert (totals.cached_input_tokens, totals.reasoning_tokens) == (4, 2)


def test_follow_resumes_from_an_offset_and_ends_with_the_final_state(store, chat):
    begun = store.streams.begin(chat.id)
    for index, text in enumerate(["abc", "def", "ghi"]):
        store.streams.delta(begun.id, index, text)
    store.streams.finish(begun.id, text="jk")
    events = list(store.streams.follow(begun.id, 4))
    assert [(e.start, e.end, e.text, e.status) for e in events] == [(4, 11, "efghijk", "completed")]
    assert list(store.streams.follow(begun.id, 11))[-1].text == ""  # nothing new, but done
    assert [e.text for e in store.streams.follow(begun.id, 99)] == [""]


def test_several_readers_follow_one_reply_while_it_is_written(database_url, surface, store, chat):
    """Three readers, from different offsets, each see exactly the text after their offset
    (the writer runs concurrently: a thread, or an asyncio task)."""
    pieces = [f"<{i:02d}>" for i in range(30)]
    whole = "".join(pieces)
    offsets = [0, 7, 40]
    if surface == "sync":
        with Ledger(database_url) as ledger:
            begun = ledger.streams.begin(chat.id)

            def work(index: int) -> str:
                if index == len(offsets):
                    for n, piece in enumerate(pieces):
                        ledger.streams.delta(begun.id, n, piece)
                    ledger.streams.finish(begun.id)
                    return ""
                follow = ledger.streams.follow(begun.id, offsets[index], poll_interval=0.01)
                return "".join(event.text for event in follow)

            seen = run_threads(len(offsets) + 1, work)[:-1]
    else:

        async def scenario() -> list[str]:
            async with AsyncLedger(database_url) as ledger:
                begun = await ledger.streams.begin(chat.id)

                async def write() -> str:
                    for n, piece in enumerate(pieces):
                        await ledger.streams.delta(begun.id, n, piece)
                        await asyncio.sleep(0)
                    await ledger.streams.finish(begun.id)
                    return ""

                async def read(after: int) -> str:
                    follow = ledger.streams.follow(begun.id, after, poll_interval=0.01)
                    return "".join([event.text async for event in follow])

                results = await asyncio.gather(*(read(o) for o in offsets), write())
                return list(results[:-1])

        seen = asyncio.run(scenario())
    assert seen == [whole[offset:] for offset in offsets]


def test_abort_keeps_what_was_written(store, chat):
    begun = store.streams.begin(chat.id)
    store.streams.delta(begun.id, 0, "partial ")
    ended = store.streams.abort(begun.id, "user pressed stop", text="answ")
    assert (ended.status, ended.status_reason, ended.content) == (
        "incomplete",
        "user pressed stop",
        "partial answ",
    )
    failed = store.streams.begin(chat.id)
    assert store.streams.abort(failed.id, "provider 500", failed=True).status == "failed"


def test_retried_writes_are_stored_once(store, chat):
    begun = store.streams.begin(chat.id)
    store.streams.delta(begun.id, 0, "one ")
    again = store.streams.delta(begun.id, 0, "one ")  # a retry of a committed flush
    assert (again.chunk_count, again.char_count) == (1, 4)
    with pytest.raises(ConflictError) as caught:
        store.streams.delta(begun.id, 0, "other")
    assert caught.value.field == "index"
    finished = store.streams.finish(begun.id, text="two")
    assert store.streams.finish(begun.id, text="two") == finished  # a retried finish
    assert finished.content == "one two"


def test_bad_writes_are_refused_naming_the_field_and_write_nothing(store, chat):
    plain = store.messages.append(chat.id, "assistant", "whole")
    with pytest.raises(ConflictError) as caught:
        store.streams.finish(plain.id)
    assert caught.value.field == "message_id"  # a finish without a begin
    with pytest.raises(ConflictError) as caught:
        store.streams.delta(plain.id, 0, "x")
    assert caught.value.field == "message_id"

    begun = store.streams.begin(chat.id)
    with pytest.raises(ValidationError) as too_large:
        store.streams.delta(begun.id, 0, "x" * (store.limits.max_delta_chars + 1))
    assert too_large.value.field == "text"
    with pytest.raises(ConflictError) as gap:
        store.streams.delta(begun.id, 1, "skips chunk 0")
    assert gap.value.field == "index"
    with pytest.raises(ValidationError) as bad_status:
        store.streams.finish(begun.id, status="streaming")
    assert bad_status.value.field == "status"
    with pytest.raises(ValidationError) as bad_offset:
        store.streams.read(begun.id, -1)
    assert bad_offset.value.field == "after"
    assert store.streams.get(begun.id).chunk_count == 0

    store.streams.finish(begun.id)
    with pytest.raises(ConflictError) as finished:
        store.streams.delta(begun.id, 0, "late")
    assert finished.value.field == "status"  # a delta to a finished reply
    with pytest.raises(ConflictError):
        store.streams.abort(begun.id, "too late")
    assert store.messages.get(begun.id).content == ""
    with pytest.raises(NotFoundError):
        store.streams.read("00000000-0000-7000-8000-000000000000")


def test_streams_are_owner_scoped(store, chat, user):
    other = store.users.create(external_id="other")
    begun = store.as_user(user.id).streams.begin(chat.id)
    intruder = store.as_user(other.id).streams
    for attempt in (
        lambda: intruder.delta(begun.id, 0, "x"),
        lambda: intruder.finish(begun.id),
        lambda: intruder.read(begun.id),
        lambda: intruder.get(begun.id),
        lambda: intruder.begin(chat.id),
    ):
        with pytest.raises(NotFoundError):
            attempt()
    assert intruder.sweep() == []
    assert store.streams.get(begun.id).finished_at is None


def test_the_sweep_closes_dead_streams_once_keeping_their_text(database_url, store, chat, user):
    _funded(store, user, 100)
    live = store.streams.begin(chat.id)
    dead = store.streams.begin(chat.id, charge=40)
    store.streams.delta(dead.id, 0, "half an ans")
    assert store.tokens.held(user.id) == 40
    _expire(database_url, dead.id)

    assert store.streams.sweep() == [dead.id]
    assert store.streams.sweep() == []  # closed once
    swept = store.messages.get(dead.id)
    assert (swept.status, swept.status_reason, swept.content) == (
        "incomplete",
        SWEPT,
        "half an ans",
    )
    assert store.tokens.held(user.id) == 0  # the hold is released, nothing charged
    assert store.tokens.balance(user.id) == 100
    assert store.tokens.verify(user.id)
    assert store.streams.get(live.id).finished_at is None


def test_sweepers_in_parallel_close_each_stream_once(database_url, store, chat):
    begun = [store.streams.begin(chat.id) for _ in range(6)]
    for message in begun:
        store.streams.delta(message.id, 0, "x")
        _expire(database_url, message.id)
    with Ledger(database_url) as ledger:
        closed = run_threads(4, lambda _: ledger.streams.sweep(limit=2))
    flat = [message_id for ids in closed for message_id in ids]
    assert len(flat) + len(store.streams.sweep()) == 6
    assert len(set(flat)) == len(flat)


def test_holds_reserve_at_begin_and_settle_at_finish(store, chat, user):
    _funded(store, user, 100)
    begun = store.streams.begin(chat.id, charge=60)
    assert (store.tokens.balance(user.id), store.tokens.held(user.id)) == (100, 60)
    with pytest.raises(InsufficientBalanceError):
        store.streams.begin(chat.id, charge=41)  # 40 are not held
    with pytest.raises(InsufficientBalanceError):
        store.tokens.debit(41, user_id=user.id, reason="other")  # holds bind debits too
    assert store.conversations.get(chat.id).message_count == 1  # the refused begin: nothing
    assert store.tokens.verify(user.id)

    done = store.streams.finish(begun.id, text="ok", charge=35)
    assert (store.tokens.balance(user.id), store.tokens.held(user.id)) == (65, 0)
    [entry] = [e for e in store.tokens.history(user_id=user.id) if e.message_id == done.id]
    assert entry.delta == -35
    assert store.tokens.verify(user.id)


def test_eight_parallel_streams_against_a_balance_covering_five(
    database_url, surface, store, chat, user
):
    """Every stream begins (holding its estimate) before any finishes: exactly five holds
    fit, those five settle their real amount, the balance never goes negative."""
    estimate, real = 10, 7
    _funded(store, user, 5 * estimate)

    def outcome(settled: list[bool]) -> None:
        assert settled.count(True) == 5
        assert store.tokens.balance(user.id) == 5 * estimate - 5 * real
        assert store.tokens.held(user.id) == 0
        assert store.tokens.verify(user.id)

    if surface == "sync":
        begun = threading.Barrier(8, timeout=60)
        with Ledger(database_url) as ledger:

            def stream(index: int) -> bool:
                try:
                    writer = ledger.streams.writer(chat.id, charge=estimate, flush_chars=1)
                except InsufficientBalanceError:
                    begun.wait()
                    return False
                begun.wait()
                writer.write(f"reply {index}")
                assert ledger.tokens.balance(user.id) >= 0
                writer.finish(charge=real)
                return True

            outcome(run_threads(8, stream))
        return

    async def scenario() -> list[bool]:
        barrier = asyncio.Barrier(8)
        async with AsyncLedger(database_url) as ledger:

            async def stream(index: int) -> bool:
                try:
                    writer = await ledger.streams.writer(chat.id, charge=estimate, flush_chars=1)
                except InsufficientBalanceError:
                    await barrier.wait()
                    return False
                await barrier.wait()
                await writer.write(f"reply {index}")
                assert await ledger.tokens.balance(user.id) >= 0
                await writer.finish(charge=real)
                return True

            return list(await asyncio.gather(*(stream(i) for i in range(8))))

    outcome(asyncio.run(scenario()))


_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from chatledger import AsyncLedger, Ledger

    url, conversation_id, surface = sys.argv[1], sys.argv[2], sys.argv[3]
    if surface == "sync":
        with Ledger(url) as ledger:
            writer = ledger.streams.writer(conversation_id, charge=30, flush_chars=4)
            for piece in ["The ", "part ", "that ", "survives"]:
                writer.write(piece)
            writer.flush()
            print(writer.message.id, flush=True)
            time.sleep(600)
    else:
        async def main():
            async with AsyncLedger(url) as ledger:
                writer = await ledger.streams.writer(conversation_id, charge=30, flush_chars=4)
                for piece in ["The ", "part ", "that ", "survives"]:
                    await writer.write(piece)
                await writer.flush()
                print(writer.message.id, flush=True)
                await asyncio.sleep(600)
        asyncio.run(main())
    """
)


def test_a_writer_killed_mid_stream_leaves_its_text_and_the_sweep_releases_its_hold(
    database_url, surface, store, chat, user, tmp_path: Path
):
    _funded(store, user, 50)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": src, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, str(script), database_url.render_as_string(False), str(chat.id), surface],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        message_id = process.stdout.readline().strip()
        assert message_id, "the writer printed no message id"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == -signal.SIGKILL

    assert store.tokens.held(user.id) == 30
    assert store.streams.read(message_id).text == "The part that survives"
    assert store.messages.get(message_id).status == "streaming"
    _expire(database_url, message_id)
    assert [str(i) for i in store.streams.sweep()] == [message_id]
    swept = store.messages.get(message_id)
    assert (swept.status, swept.content) == ("incomplete", "The part that survives")
    assert (store.tokens.held(user.id), store.tokens.balance(user.id)) == (0, 50)
    assert store.tokens.verify(user.id)


def test_begin_continues_a_branch_and_keys_make_it_idempotent(store, chat):
    first = store.messages.append(chat.id, "user", "q")
    store.messages.append(chat.id, "assistant", "a")
    branch = store.streams.begin(chat.id, parent_id=first.id, idempotency_key="turn-1")
    assert (branch.parent_seq, branch.sibling_index, branch.status) == (1, 1, "streaming")
    again = store.streams.begin(chat.id, parent_id=first.id, idempotency_key="turn-1")
    assert again.id == branch.id
    assert store.conversations.get(chat.id).message_count == 3


def test_the_writer_flushes_on_time_too(store, chat):
    writer = store.streams.writer(chat.id, flush_chars=10_000, flush_interval=0)
    writer.write("a")
    writer.write("b")
    assert store.streams.get(writer.message.id).chunk_count == 2
    assert writer.finish().content == "ab"


def test_erasing_a_user_removes_their_streams(store, chat, user):
    begun = store.streams.begin(chat.id)
    store.streams.delta(begun.id, 0, "secret")
    report = store.users.erase(user.id)
    assert report.deleted["message_streams"] == 1
    assert report.deleted["stream_chunks"] == 1


def test_threaded_readers_and_a_writer_share_a_store(database_url, chat):
    """A sync ledger used by a writer thread and a polling reader at once."""
    with Ledger(database_url) as ledger:
        begun = ledger.streams.begin(chat.id)
        got: list[str] = []
        reader = threading.Thread(
            target=lambda: got.extend(
                e.text for e in ledger.streams.follow(begun.id, poll_interval=0.005)
            )
        )
        reader.start()
        for n in range(20):
            ledger.streams.delta(begun.id, n, str(n % 10))
        ledger.streams.finish(begun.id)
        reader.join(60)
        assert "".join(got) == "".join(str(n % 10) for n in range(20))


def test_the_docs_example_runs(tmp_path):
    from .test_readme import run_docs_page

    output = run_docs_page(
        Path(__file__).resolve().parent.parent / "docs" / "streaming.md", tmp_path
    )
    assert "resumed: 'of small debts, / each line ' up to 36" in output
    assert "completed 'Columns of small debts, / each line a promise kept'" in output
    assert "balance 974 held 0" in output
    assert "swept now: []" in output


def _wake_delays(database_url, surface, chat, *, same_store: bool, poll: float) -> list[float]:
    """Seconds from each flush's return to its follower's event, the follower following
    with ``poll`` as its poll interval, the writer being the follower's store or another
    store (other connections, another wake-up hub)."""
    pieces = ["<0>", "<1>", "<2>"]

    def write(writer: Ledger, begun_id, arrived: list[float]) -> list[float]:
        time.sleep(0.3)  # the follower waits now (its first read found nothing)
        delays = []
        for n, piece in enumerate(pieces):
            writer.streams.delta(begun_id, n, piece)
            written = time.monotonic()
            deadline = written + 10
            while len(arrived) <= n and time.monotonic() < deadline:
                time.sleep(0.002)
            delays.append((arrived[n] if len(arrived) > n else deadline) - written)
        writer.streams.finish(begun_id)
        return delays

    with Ledger(database_url) as other:
        if surface == "sync":
            with Ledger(database_url) as ledger:
                begun = ledger.streams.begin(chat.id)
                arrived: list[float] = []

                def follow() -> None:
                    for _ in ledger.streams.follow(begun.id, poll_interval=poll):
                        arrived.append(time.monotonic())

                reader = threading.Thread(target=follow)
                reader.start()
                delays = write(ledger if same_store else other, begun.id, arrived)
                reader.join(30)
                return delays

        async def scenario() -> list[float]:
            async with AsyncLedger(database_url) as ledger:
                begun = await ledger.streams.begin(chat.id)
                arrived: list[float] = []

                async def follow() -> None:
                    async for _ in ledger.streams.follow(begun.id, poll_interval=poll):
                        arrived.append(time.monotonic())

                task = asyncio.create_task(follow())
                if same_store:  # the async store writes, on this loop
                    await asyncio.sleep(0.3)
                    delays = []
                    for n, piece in enumerate(pieces):
                        await ledger.streams.delta(begun.id, n, piece)
                        written = time.monotonic()
                        while len(arrived) <= n and time.monotonic() < written + 10:
                            await asyncio.sleep(0.002)
                        delays.append(arrived[n] - written if len(arrived) > n else 10.0)
                    await ledger.streams.finish(begun.id)
                else:
                    delays = await asyncio.to_thread(write, other, begun.id, arrived)
                await asyncio.wait_for(task, 30)
                return delays

        return asyncio.run(scenario())


def test_a_follower_is_woken_by_a_flush_through_its_own_store(database_url, surface, chat):
    """A poll interval of 30 s, yet each flush arrives at once: the store wakes its own
    followers (on PostgreSQL through the flush's NOTIFY)."""
    delays = _wake_delays(database_url, surface, chat, same_store=True, poll=30)
    assert max(delays) < 3, delays


def test_a_follower_is_woken_by_a_flush_on_another_connection(backend, database_url, surface, chat):
    """Another store (its own connections): on PostgreSQL its NOTIFY wakes the follower
    although the follower's poll interval is 30 s; elsewhere the follower polls (0.05 s)."""
    poll = 30 if backend == "postgresql" else 0.05
    delays = _wake_delays(database_url, surface, chat, same_store=False, poll=poll)
    assert max(delays) < 3, delays
