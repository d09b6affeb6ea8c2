"""Transactions: atomic groups, rollback, savepoints, retried transactions."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chatledger import AsyncLedger, ConflictError, Ledger, RetryPolicy, TransientError


def test_operations_in_a_transaction_commit_together(store, user):
    with store.transaction() as tx:
        chat = tx.conversations.create(user.id)
        tx.messages.append(chat.id, "user", "one")
        tx.messages.append(chat.id, "assistant", "two")
    assert store.messages.count(chat.id) == 2


def test_an_exception_rolls_back_everything(store, user, chat):
    with pytest.raises(ZeroDivisionError), store.transaction():
        store.messages.append(chat.id, "user", "lost")
        store.conversations.update(chat.id, title="lost")
        store.users.create(username="lost")
        _ = 1 / 0
    assert store.messages.count(chat.id) == 0
    assert store.conversations.get(chat.id).title == "a chat"
    assert store.users.count() == 1


def test_a_failing_operation_rolls_back_the_group(store, user, chat):
    store.users.create(email="taken@example.com")
    with pytest.raises(ConflictError), store.transaction():
        store.messages.append(chat.id, "user", "lost")
        store.users.create(email="taken@example.com")
    assert store.messages.count(chat.id) == 0


def test_nested_transactions_are_savepoints(store, chat):
    with store.transaction():
        store.messages.append(chat.id, "user", "kept")
        with pytest.raises(KeyError), store.transaction():
            store.conversations.update(chat.id, title="undone")
            raise KeyError("inner")
        store.messages.append(chat.id, "user", "kept too")
    assert [m.content for m in store.messages.last(chat.id)] == ["kept", "kept too"]
    assert store.conversations.get(chat.id).title == "a chat"


def test_run_in_transaction_returns_the_result(ledger):
    user = ledger.users.create()

    def work(tx: Ledger) -> int:
        chat = tx.conversations.create(user.id)
        tx.messages.append(chat.id, "user", "hi")
        return tx.messages.count(chat.id)

    assert ledger.run_in_transaction(work) == 1


def test_async_run_in_transaction(database_url):
    async def main() -> int:
        async with AsyncLedger(database_url) as ledger:
            user = await ledger.users.create()

            async def work(tx: AsyncLedger) -> int:
                chat = await tx.conversations.create(user.id)
                await tx.messages.append(chat.id, "user", "hi")
                return await tx.messages.count(chat.id)

            return await ledger.run_in_transaction(work)

    assert asyncio.run(main()) == 1


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_a_deadlocked_transaction_is_re_run(database_url, backend):
    """Two transactions lock two rows in opposite orders: the server kills one, and
    run_in_transaction re-runs it to completion."""
    with Ledger(database_url, retry=RetryPolicy(attempts=5, base_delay=0.01)) as ledger:
        user = ledger.users.create()
        first = ledger.conversations.create(user.id)
        second = ledger.conversations.create(user.id)
        barrier = threading.Barrier(2, timeout=20)
        attempts: dict[str, int] = {"a": 0, "b": 0}
        errors: list[BaseException] = []

        def worker(name: str, one, two) -> None:
            def work(tx: Ledger) -> None:
                attempts[name] += 1
                tx.conversations.update(one.id, title=name)
                if attempts[name] == 1:
                    barrier.wait()
                tx.conversations.update(two.id, title=name)

            try:
                ledger.run_in_transaction(work)
            except BaseException as exc:  # recorded for the assertion below
                errors.append(exc)

        threads = [
            threading.Thread(target=worker, args=("a", first, second)),
            threading.Thread(target=worker, args=("b", second, first)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert sorted(attempts.values()) == [1, 2]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_busy_sqlite_is_retried_then_succeeds(database_url, caplog):
    import dataclasses

    from chatledger import Config
    from chatledger._backends import sqlite_library

    config = dataclasses.replace(Config.load(database_url), sqlite_busy_timeout=0.02)
    holder = sqlite_library().connect(
        str(database_url.database), isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.4, holder.execute, args=("COMMIT",))
    release.start()
    retry = RetryPolicy(attempts=50, base_delay=0.05, max_delay=0.1)
    with caplog.at_level("INFO", logger="chatledger"), Ledger(config=config, retry=retry) as ledger:
        user = ledger.users.create()
    assert user.id
    assert any("transient" in record.getMessage() for record in caplog.records)
    release.join()
    holder.close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_retries_are_bounded(database_url):
    import dataclasses

    from chatledger import Config
    from chatledger._backends import sqlite_library

    config = dataclasses.replace(Config.load(database_url), sqlite_busy_timeout=0.01)
    with Ledger(config=config, retry=RetryPolicy(attempts=3, base_delay=0.001)) as ledger:
        holder = sqlite_library().connect(str(database_url.database), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(TransientError) as caught:
                ledger.users.create()
            assert caught.value.retriable
        finally:
            holder.execute("ROLLBACK")
            holder.close()


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_operations_pay_no_rollback_round_trip(database_url):
    """The pool's rollback on check-in is skipped when the server reports no open
    transaction: after a committed append, and after a read on the autocommit read pool."""
    with Ledger(database_url) as ledger:
        user = ledger.users.create()
        chat = ledger.conversations.create(user.id)
        ledger.messages.append(chat.id, "user", "warm")  # one pooled writer connection

        def rollbacks(engine) -> int:
            with engine.connect() as conn:
                return int(conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_rollback'").one()[1])

        db = ledger._core.db
        writer_before, reader_before = rollbacks(db.engine), rollbacks(db._reader)
        for i in range(5):
            ledger.messages.append(chat.id, "user", f"m{i}")
            ledger.messages.last(chat.id, 5)
        # Each probe itself ends with one rollback (it reads in a transaction on the writer
        # pool); nothing else may add any.
        assert rollbacks(db.engine) - writer_before <= 1
        assert rollbacks(db._reader) - reader_before <= 1
