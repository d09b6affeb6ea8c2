"""Concurrency: real threads, processes and asyncio tasks against real databases.

Appends to one conversation serialise on its row lock and take the new ``message_count`` as
their ``seq``, so under any concurrency no message is lost or duplicated, ``seq`` runs 1..n
without gaps and ``message_count`` equals the number of messages. Idempotent appends and
``get_or_create`` must stay single-winner when raced.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import traceback
import uuid
import warnings
from typing import Any

import pytest

from chatledger import AsyncLedger, Ledger, SQLiteWALResetBugWarning

from ._threads import JOIN_TIMEOUT
from ._threads import run_threads as _run_threads

THREADS = 8


def _read_all(store: Any, conversation_id: uuid.UUID, page_size: int = 1000) -> list[Any]:
    """Every message of the conversation, oldest first, read by following page cursors."""
    seen: list[Any] = []
    after = None
    while True:
        page = store.messages.list(conversation_id, limit=page_size, after=after)
        seen += page.items
        if not page.has_more:
            return seen
        after = page.last_cursor


def _assert_gap_free(store: Any, conversation_id: uuid.UUID, returned: list[Any]) -> list[Any]:
    """What was appended is exactly what is stored: the same ids, no duplicates, seq 1..n,
    and the conversation's counters agree."""
    stored = _read_all(store, conversation_id)
    n = len(returned)
    assert len(stored) == n
    assert [m.seq for m in stored] == list(range(1, n + 1))
    assert len({m.id for m in stored}) == n, "duplicate message ids"
    assert len({m.id for m in returned}) == n, "an append returned another append's message"
    assert {m.id: m.seq for m in stored} == {m.id: m.seq for m in returned}
    conversation = store.conversations.get(conversation_id)
    assert conversation.message_count == n
    assert store.messages.count(conversation_id) == n
    if n:
        newest = max(m.created_at for m in stored)
        assert conversation.last_message_at == newest
        assert conversation.last_activity_at == newest
    return stored


@pytest.mark.slow
def test_threads_appending_to_one_conversation_lose_nothing(ledger):
    per_thread = 500
    user = ledger.users.create(external_id=f"u-{uuid.uuid4().hex}")
    chat = ledger.conversations.create(user.id)

    def append_many(index: int) -> list[Any]:
        return [ledger.messages.append(chat.id, "user", f"t{index}-{i}") for i in range(per_thread)]

    results = _run_threads(THREADS, append_many)

    returned = [m for batch in results for m in batch]
    stored = _assert_gap_free(ledger, chat.id, returned)
    assert len(stored) == THREADS * per_thread
    for index, batch in enumerate(results):
        # One thread's appends are sequential: their seqs increase, and each is stored as sent.
        seqs = [m.seq for m in batch]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == per_thread
        assert [stored[s - 1].content for s in seqs] == [f"t{index}-{i}" for i in range(per_thread)]


def _append_in_process(
    url: str, conversation_id: str, index: int, count: int, barrier: Any, results: Any
) -> None:
    """Worker process: its own Ledger on the shared SQLite file, ``count`` appends."""
    warnings.simplefilter("ignore", SQLiteWALResetBugWarning)
    try:
        with Ledger(url) as store:
            barrier.wait()
            sent = [
                store.messages.append(conversation_id, "assistant", f"p{index}-{i}")
                for i in range(count)
            ]
        results.put((index, [(m.id.hex, m.seq) for m in sent], None))
    except BaseException:
        results.put((index, None, traceback.format_exc()))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_processes_appending_to_one_sqlite_file_lose_nothing(backend, database_url):
    processes, per_process = 4, 500
    url = database_url.render_as_string(hide_password=False)
    with Ledger(url) as store:
        user = store.users.create(external_id=f"u-{uuid.uuid4().hex}")
        chat = store.conversations.create(user.id)

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes, timeout=60)
    results = context.Queue()
    workers = [
        context.Process(
            target=_append_in_process,
            args=(url, str(chat.id), i, per_process, barrier, results),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = {}
    try:
        for _ in range(processes):
            index, sent, error = results.get(timeout=JOIN_TIMEOUT)
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
    errors = [error for _, error in outcomes.values() if error is not None]
    assert errors == [], "\n".join(errors)
    assert [w.exitcode for w in workers] == [0] * processes

    with Ledger(url) as store:
        stored = _read_all(store, chat.id)
        assert [m.seq for m in stored] == list(range(1, processes * per_process + 1))
        assert len({m.id for m in stored}) == processes * per_process
        assert store.conversations.get(chat.id).message_count == processes * per_process
        by_id = {m.id.hex: m for m in stored}
        for index, (sent, _) in outcomes.items():
            assert len(sent) == per_process
            for i, (ident, seq) in enumerate(sent):
                assert by_id[ident].seq == seq
                assert by_id[ident].content == f"p{index}-{i}"


@pytest.mark.slow
def test_racing_appends_with_one_idempotency_key_store_one_message(ledger):
    user = ledger.users.create(external_id=f"u-{uuid.uuid4().hex}")
    for round_ in range(20):
        chat = ledger.conversations.create(user.id)
        key = f"req-{round_}-{uuid.uuid4().hex}"

        def append(index: int, chat_id: uuid.UUID = chat.id, key: str = key) -> Any:
            return ledger.messages.append(chat_id, "user", f"try {index}", idempotency_key=key)

        results = _run_threads(THREADS, append)

        assert len({m.id for m in results}) == 1, f"round {round_}: several messages returned"
        winner = results[0]
        assert all(m == winner for m in results), f"round {round_}: differing copies"
        assert winner.seq == 1
        assert winner.idempotency_key == key
        stored = _read_all(ledger, chat.id)
        assert stored == [winner], f"round {round_}"
        conversation = ledger.conversations.get(chat.id)
        assert conversation.message_count == 1, f"round {round_}"
        # The losers' undone bumps leave the activity times at the winner's message.
        assert conversation.last_message_at == winner.created_at
        assert conversation.last_activity_at == winner.created_at
        # And the next append continues the sequence without a gap.
        assert ledger.messages.append(chat.id, "assistant", "reply").seq == 2


@pytest.mark.slow
def test_threads_appending_to_their_own_conversations_keep_each_in_order(ledger):
    per_thread = 200
    user = ledger.users.create(external_id=f"u-{uuid.uuid4().hex}")
    chats = [ledger.conversations.create(user.id) for _ in range(THREADS)]

    def append_many(index: int) -> list[Any]:
        chat_id = chats[index].id
        role = ("user", "assistant")
        return [
            ledger.messages.append(chat_id, role[i % 2], f"c{index}-{i}") for i in range(per_thread)
        ]

    results = _run_threads(THREADS, append_many)

    for index, chat in enumerate(chats):
        stored = _assert_gap_free(ledger, chat.id, results[index])
        assert [m.content for m in stored] == [f"c{index}-{i}" for i in range(per_thread)]
        assert {m.conversation_id for m in stored} == {chat.id}
        assert stored == results[index]
        assert ledger.messages.count(chat.id, role="assistant") == per_thread // 2


@pytest.mark.slow
def test_async_tasks_appending_to_one_conversation_lose_nothing(database_url):
    tasks, per_task = 8, 100

    async def scenario() -> None:
        async with AsyncLedger(database_url) as store:
            user = await store.users.create(external_id=f"u-{uuid.uuid4().hex}")
            chat = await store.conversations.create(user.id)
            start = asyncio.Event()

            async def append_many(index: int) -> list[Any]:
                await start.wait()
                return [
                    await store.messages.append(chat.id, "user", f"a{index}-{i}")
                    for i in range(per_task)
                ]

            running = [asyncio.ensure_future(append_many(i)) for i in range(tasks)]
            await asyncio.sleep(0)
            start.set()
            outcomes = await asyncio.gather(*running, return_exceptions=True)
            errors = [r for r in outcomes if isinstance(r, BaseException)]
            assert errors == [], "".join(
                "".join(traceback.format_exception(error)) for error in errors
            )
            results = [r for r in outcomes if not isinstance(r, BaseException)]

            stored: list[Any] = []
            after = None
            while True:
                page = await store.messages.list(chat.id, limit=300, after=after)
                stored += page.items
                if not page.has_more:
                    break
                after = page.last_cursor
            total = tasks * per_task
            assert [m.seq for m in stored] == list(range(1, total + 1))
            assert len({m.id for m in stored}) == total
            returned = {m.id: m.seq for batch in results for m in batch}
            assert returned == {m.id: m.seq for m in stored}
            assert (await store.conversations.get(chat.id)).message_count == total
            assert await store.messages.count(chat.id) == total
            by_seq = {m.seq: m.content for m in stored}
            for index, batch in enumerate(results):
                assert [by_seq[m.seq] for m in batch] == [f"a{index}-{i}" for i in range(per_task)]

    asyncio.run(scenario())


@pytest.mark.slow
def test_racing_get_or_create_makes_one_user(ledger):
    for round_ in range(20):
        external_id = f"auth0|{round_}-{uuid.uuid4().hex}"
        before = ledger.users.count()

        def get_or_create(index: int, external_id: str = external_id) -> Any:
            return ledger.users.ensure(external_id, display_name=f"thread {index}")

        ensured = _run_threads(THREADS, get_or_create)
        assert sum(e.created for e in ensured) == 1, f"round {round_}: not one creator"
        results = [e.user for e in ensured]

        assert len({u.id for u in results}) == 1, f"round {round_}: several users returned"
        stored = ledger.users.get_by_external_id(external_id)
        assert {u.id for u in results} == {stored.id}
        assert all(u == stored for u in results), f"round {round_}: differing copies"
        assert ledger.users.count() == before + 1, f"round {round_}"
