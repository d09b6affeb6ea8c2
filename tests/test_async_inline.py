"""The async surface on SQLite runs short operations on the event loop thread
(``_async/_inline.py``): what moves them to a worker thread, and that moving loses nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from chatledger import AsyncLedger, Config, Ledger
from chatledger._backends import sqlite_library
from chatledger._run.database_async import ThreadedDatabase
from chatledger._run.inline import COOLDOWN, Inline, _key

pytestmark = pytest.mark.filterwarnings("ignore::chatledger.SQLiteWALResetBugWarning")


def threaded(ledger: AsyncLedger) -> ThreadedDatabase:
    db = ledger._core.db
    assert isinstance(db, ThreadedDatabase)
    return db


def inline_of(ledger: AsyncLedger) -> Inline:
    inline = threaded(ledger)._inline
    assert inline is not None
    return inline


class Threads:
    """The threads that ran each statement on a ledger's engines."""

    def __init__(self, ledger: AsyncLedger) -> None:
        db = threaded(ledger)
        self.engines = [db.db.engine] + ([db._inline.db.engine] if db._inline else [])
        self.seen: list[tuple[int, str]] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append((threading.get_ident(), statement))

    def __enter__(self) -> Threads:
        for engine in self.engines:
            sa.event.listen(engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for engine in self.engines:
            sa.event.remove(engine, "before_cursor_execute", self)

    def idents(self) -> set[int]:
        return {ident for ident, _ in self.seen}


class Stalls:
    """The longest the event loop went without running a 10 ms ticker."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> Stalls:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0.03)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inline.db'}"


@pytest.fixture
def chat(url: str) -> Iterator[Any]:
    with Ledger(url) as ledger:
        owner = ledger.users.create(username="owner").id
        yield ledger.conversations.create(owner)


def test_short_operations_run_on_the_event_loop_thread(url: str, chat: Any) -> None:
    async def main() -> set[int]:
        async with AsyncLedger(url) as ledger:
            with Threads(ledger) as threads:
                sent = await ledger.messages.append(chat.id, "user", "hello")
                assert await ledger.messages.last(chat.id, 5) == [sent]
                assert (await ledger.conversations.get(chat.id)).message_count == 1
        assert any(s.startswith("INSERT") for _, s in threads.seen)
        return threads.idents()

    loop_thread: list[int] = []

    async def run() -> set[int]:
        loop_thread.append(threading.get_ident())
        return await main()

    assert asyncio.run(run()) == set(loop_thread)


def test_budget_zero_runs_every_operation_on_workers(url: str, chat: Any) -> None:
    async def main() -> None:
        config = Config.load(url, sqlite_inline_budget=0)
        async with AsyncLedger(config=config) as ledger:
            assert threaded(ledger)._inline is None
            with Threads(ledger) as threads:
                await ledger.messages.append(chat.id, "user", "hello")
                await ledger.messages.last(chat.id, 5)
            assert threading.get_ident() not in threads.idents()

    asyncio.run(main())


def test_synchronous_full_reads_inline_and_writes_on_workers(url: str, chat: Any) -> None:
    async def main() -> None:
        config = Config.load(url, sqlite_synchronous="FULL")
        async with AsyncLedger(config=config) as ledger:
            with Threads(ledger) as threads:
                await ledger.messages.append(chat.id, "user", "hello")
            assert threading.get_ident() not in threads.idents()  # a commit would fsync
            with Threads(ledger) as threads:
                await ledger.messages.last(chat.id, 5)
            assert threads.idents() == {threading.get_ident()}

    asyncio.run(main())


def test_a_write_locked_by_another_connection_waits_on_a_worker(url: str, chat: Any) -> None:
    """Another process's lock (here a bare sqlite3 connection): the inline BEGIN IMMEDIATE
    fails at once, and the append waits on a worker while the loop keeps running."""
    path = sa.make_url(url).database
    assert path is not None
    # The library chatledger uses: two copies of SQLite in one process do not see each
    # other's locks.
    other = sqlite_library().connect(path, isolation_level=None, check_same_thread=False)
    releaser = threading.Timer(1.0, other.execute, ("COMMIT",))

    async def main() -> None:
        async with AsyncLedger(url) as ledger:  # opening takes the write lock: open first
            other.execute("BEGIN IMMEDIATE")
            async with Stalls() as stalls:
                started = time.monotonic()
                releaser.start()
                sent = await ledger.messages.append(chat.id, "user", "after the lock")
                waited = time.monotonic() - started
            assert sent.seq == 1
            assert waited >= 0.9
            assert stalls.longest < 0.5  # the loop ran on while the append waited 1 s
            assert [m.content for m in await ledger.messages.last(chat.id, 5)] == [sent.content]

    try:
        asyncio.run(main())
    finally:
        if releaser.is_alive():
            releaser.join()
        other.close()


def test_a_write_queued_behind_an_in_process_transaction_waits_on_a_worker(
    url: str, chat: Any
) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with Ledger(url) as ledger, ledger.transaction() as tx:
            tx.messages.append(chat.id, "user", "first")
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)

    async def main() -> None:
        async with AsyncLedger(url) as ledger:  # opening takes the write lock: open first
            holder.start()
            assert holding.wait(5)
            async with Stalls() as stalls:
                threading.Timer(1.0, release.set).start()
                sent = await ledger.messages.append(chat.id, "user", "second")
            assert sent.seq == 2
            assert stalls.longest < 0.5  # the loop ran on while the append waited 1 s

    try:
        asyncio.run(main())
    finally:
        release.set()
        if holder.is_alive():
            holder.join()


def test_operations_past_the_budget_are_rolled_back_and_rerun_on_a_worker(
    url: str, chat: Any
) -> None:
    """A budget no statement can meet: a batch is interrupted inline, rolled back, run again
    on a worker, and written exactly once; the operation then skips the loop for a while."""
    batch = [{"role": "user", "content": f"m{i}"} for i in range(300)]

    async def main() -> None:
        config = Config.load(url, sqlite_inline_budget=1e-9)
        async with AsyncLedger(config=config) as ledger:
            inline = inline_of(ledger)
            with Threads(ledger) as threads:
                written = await ledger.messages.append_many(chat.id, batch)
            assert [m.seq for m in written] == list(range(1, 301))
            assert len(threads.idents()) == 2  # begun on the loop, rerun on a worker
            assert COOLDOWN in inline._cooling.values()
            stored = await ledger.messages.last(chat.id, 300)
            assert stored == written
            assert (await ledger.conversations.get(chat.id)).message_count == 300

    asyncio.run(main())
    with Ledger(url) as ledger:
        assert [m.content for m in ledger.messages.last(chat.id, 300)] == [
            item["content"] for item in batch
        ]


def test_a_moved_operation_comes_back_to_the_loop_after_its_cooldown(url: str, chat: Any) -> None:
    async def main() -> None:
        async with AsyncLedger(url) as ledger:
            inline = inline_of(ledger)
            await ledger.messages.append(chat.id, "user", "hello")
            from chatledger._ops import messages as ops

            key = _key(ops.append)
            inline._cooling[key] = 2
            with Threads(ledger) as threads:
                await ledger.messages.append(chat.id, "user", "a")
                await ledger.messages.append(chat.id, "user", "b")
            assert threading.get_ident() not in threads.idents()
            assert key not in inline._cooling
            with Threads(ledger) as threads:
                await ledger.messages.append(chat.id, "user", "c")
            assert threads.idents() == {threading.get_ident()}

    asyncio.run(main())


def test_inline_writes_keep_the_wal_checkpointed(url: str, chat: Any) -> None:
    """The inline connection does not checkpoint; passive checkpoints on a worker keep the
    WAL near SQLite's 1,000-page threshold (2,000 appends write ~10,000 frames)."""
    path = Path(sa.make_url(url).database or "")

    async def main() -> None:
        async with AsyncLedger(url) as ledger:
            for i in range(2_000):
                await ledger.messages.append(chat.id, "user", f"message {i}")
                if i % 100 == 0:
                    await asyncio.sleep(0.001)  # let a finished checkpoint report back
            wal = path.with_name(path.name + "-wal").stat().st_size
            assert wal < 3 * 1_000 * (4_096 + 24)
            assert (await ledger.conversations.get(chat.id)).message_count == 2_000

    asyncio.run(main())


def test_loops_in_several_threads_share_one_ledger(url: str, chat: Any) -> None:
    """Each thread's loop runs inline while it holds the inline connection, and moves its
    operation to a worker while another loop holds it."""
    ledger = AsyncLedger(url)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def writer(n: int) -> None:
        async def main() -> None:
            for i in range(50):
                await ledger.messages.append(chat.id, "user", f"{n}-{i}")

        barrier.wait()
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    asyncio.run(ledger.open())
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    async def check() -> None:
        stored = await ledger.messages.last(chat.id, 200)
        assert [m.seq for m in stored] == list(range(1, 201))
        assert len({m.content for m in stored}) == 200
        await ledger.close()

    asyncio.run(check())
