"""Token balances and the token ledger: credits, debits, grants, history, scoping, and the
invariants under concurrency (never negative, no lost debit, balance == sum of the ledger)."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

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
from chatledger._ops.tokens import AMOUNT_MAX, BALANCE_MAX
from chatledger._schema import token_balances, token_ledger

from ._threads import run_threads

THREADS = 8
#: First credits can deadlock on MariaDB and be retried: more time than the default.
JOIN_TIMEOUT = 240.0


def all_entries(tokens: Any, user_id: Any, order: str = "asc") -> list[Any]:
    entries: list[Any] = []
    after = None
    while True:
        page = tokens.history(user_id=user_id, limit=1000, after=after, order=order)
        entries += page.items
        if not page.has_more:
            return entries
        after = page.last_cursor


def assert_chained(entries: list[Any]) -> None:
    """Entries oldest first: each balance_after is the one before plus its delta."""
    running = 0
    for entry in entries:
        running += entry.delta
        assert entry.balance_after == running >= 0


def test_a_new_user_has_a_zero_balance_and_no_history(store, user):
    tokens = store.tokens
    assert tokens.balance(user.id) == 0
    assert tokens.verify(user.id)
    page = tokens.history(user_id=user.id)
    assert (page.items, page.has_more, page.first_cursor) == ([], False, None)


def test_credit_and_debit_move_the_balance_and_write_entries(store, user):
    tokens = store.tokens
    credited = tokens.credit(100, user_id=user.id, reason="  purchase  ")
    debited = tokens.debit(30, user_id=user.id, reason="chat")

    assert (credited.delta, credited.balance_after, credited.reason) == (100, 100, "purchase")
    assert (debited.delta, debited.balance_after, debited.reason) == (-30, 70, "chat")
    assert credited.user_id == debited.user_id == user.id
    assert tokens.balance(user.id) == 70
    assert tokens.verify(user.id)
    assert tokens.history(user_id=user.id, order="asc").items == [credited, debited]


def test_a_debit_of_the_whole_balance_leaves_zero(store, user):
    tokens = store.tokens
    tokens.credit(7, user_id=user.id, reason="r")
    assert tokens.debit(7, user_id=user.id, reason="all").balance_after == 0
    assert tokens.balance(user.id) == 0
    with pytest.raises(InsufficientBalanceError):
        tokens.debit(1, user_id=user.id, reason="more")


def test_an_insufficient_debit_raises_and_writes_nothing(store, user):
    tokens = store.tokens
    tokens.credit(10, user_id=user.id, reason="r")

    with pytest.raises(InsufficientBalanceError) as caught:
        tokens.debit(11, user_id=user.id, reason="too much")

    assert (caught.value.balance, caught.value.requested) == (10, 11)
    assert isinstance(caught.value, ConflictError)
    assert caught.value.field == "amount"
    assert tokens.balance(user.id) == 10
    assert len(tokens.history(user_id=user.id).items) == 1


def test_a_debit_before_any_credit_reports_a_zero_balance(store, user):
    tokens = store.tokens
    with pytest.raises(InsufficientBalanceError) as caught:
        tokens.debit(1, user_id=user.id, reason="r")
    assert (caught.value.balance, caught.value.requested) == (0, 1)
    assert tokens.history(user_id=user.id).items == []


@pytest.mark.parametrize("operation", ["credit", "debit"])
def test_amount_limits(store, user, operation):
    tokens = store.tokens
    tokens.credit(AMOUNT_MAX, user_id=user.id, reason="at the limit")
    if operation == "debit":
        assert tokens.debit(AMOUNT_MAX, user_id=user.id, reason="at the limit").delta == -AMOUNT_MAX
    call = getattr(tokens, operation)
    with pytest.raises(ValidationError) as over:
        call(AMOUNT_MAX + 1, user_id=user.id, reason="one over")
    assert (over.value.field, over.value.limit) == ("amount", AMOUNT_MAX)
    with pytest.raises(ValidationError) as zero:
        call(0, user_id=user.id, reason="zero")
    assert (zero.value.field, zero.value.limit) == ("amount", 1)
    for bad in (-5, True, 1.0, "3", None):
        with pytest.raises(ValidationError) as caught:
            call(bad, user_id=user.id, reason="bad")
        assert caught.value.field == "amount"
    expected = 1 if operation == "credit" else 2
    assert len(tokens.history(user_id=user.id).items) == expected


def test_reason_limits(store, user):
    tokens = store.tokens
    assert tokens.credit(1, user_id=user.id, reason="r" * 200).reason == "r" * 200
    for bad, limit in (("r" * 201, 200), ("   ", None), ("a\x00b", None)):
        with pytest.raises(ValidationError) as caught:
            tokens.credit(1, user_id=user.id, reason=bad)
        assert (caught.value.field, caught.value.limit) == ("reason", limit)
        with pytest.raises(ValidationError):
            tokens.debit(1, user_id=user.id, reason=bad)
    assert tokens.balance(user.id) == 1


def test_a_grant_happens_once_per_user_and_key(store, user):
    tokens = store.tokens
    other = store.users.create(username="other")
    first = tokens.credit(50, user_id=user.id, reason="welcome", grant_key="welcome")
    again = tokens.credit(80, user_id=user.id, reason="welcome again", grant_key="welcome")
    theirs = tokens.credit(50, user_id=other.id, reason="welcome", grant_key="welcome")

    assert again == first
    assert first.grant_key == "welcome"
    assert tokens.balance(user.id) == 50
    assert tokens.balance(other.id) == 50
    assert theirs.id != first.id
    assert len(tokens.history(user_id=user.id).items) == 1
    # Grant keys are compared exactly.
    tokens.credit(5, user_id=user.id, reason="r", grant_key="Welcome")
    assert tokens.balance(user.id) == 55


def test_grant_key_limits(store, user):
    tokens = store.tokens
    assert tokens.credit(1, user_id=user.id, reason="r", grant_key="k" * 200).grant_key
    for bad, limit in (("k" * 201, 200), ("  ", None), ("", None)):
        with pytest.raises(ValidationError) as caught:
            tokens.credit(1, user_id=user.id, reason="r", grant_key=bad)
        assert (caught.value.field, caught.value.limit) == ("grant_key", limit)
    assert tokens.balance(user.id) == 1


def test_the_balance_cannot_exceed_the_column(store, user, database_url):
    tokens = store.tokens
    tokens.credit(1, user_id=user.id, reason="make the row")
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # arrange a huge balance (and a matching ledger)
        conn.execute(sa.update(token_balances).values(balance=BALANCE_MAX - 5))
        conn.execute(sa.update(token_ledger).values(delta=BALANCE_MAX - 5))
    engine.dispose()

    assert tokens.credit(5, user_id=user.id, reason="to the top").balance_after == BALANCE_MAX
    with pytest.raises(ConflictError) as caught:
        tokens.credit(1, user_id=user.id, reason="over the top")
    assert caught.value.field == "amount"
    with pytest.raises(ConflictError):
        tokens.credit(1, user_id=user.id, reason="over the top", grant_key="g")
    assert tokens.balance(user.id) == BALANCE_MAX
    assert tokens.verify(user.id)


def test_entries_link_the_users_own_message(store, user, chat):
    tokens = store.tokens
    message = store.messages.append(chat.id, "assistant", "answer")
    tokens.credit(10, user_id=user.id, reason="r", message_id=message.id)
    entry = tokens.debit(4, user_id=user.id, reason="usage", message_id=str(message.id))
    assert entry.message_id == message.id

    other = store.users.create(username="other")
    tokens.credit(10, user_id=other.id, reason="r")
    with pytest.raises(NotFoundError) as caught:
        tokens.debit(1, user_id=other.id, reason="usage", message_id=message.id)
    assert caught.value.kind == "message"
    with pytest.raises(NotFoundError):
        tokens.credit(1, user_id=user.id, reason="r", message_id=uuid.uuid4())
    with pytest.raises(NotFoundError) as missing:
        tokens.credit(1, user_id=user.id, reason="r", survey_response_id=uuid.uuid4())
    assert missing.value.kind == "survey_response"
    assert tokens.balance(other.id) == 10
    assert tokens.balance(user.id) == 6

    # Deleting the message keeps the entry (unlinked), and the ledger still adds up.
    store.conversations.delete(chat.id, hard=True)
    linked = [e.message_id for e in tokens.history(user_id=user.id, order="asc").items]
    assert linked == [None, None]
    assert tokens.verify(user.id)


def test_a_debit_commits_with_the_message_it_pays_for(store, user, chat):
    store.tokens.credit(10, user_id=user.id, reason="r")
    with store.transaction() as tx:
        message = tx.messages.append(chat.id, "assistant", "paid answer")
        tx.tokens.debit(3, user_id=user.id, reason="usage", message_id=message.id)

    tokens = store.tokens
    assert tokens.balance(user.id) == 7
    assert tokens.history(user_id=user.id).items[0].message_id == message.id

    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.messages.append(chat.id, "assistant", "rolled back")
        tx.tokens.debit(3, user_id=user.id, reason="usage")
        raise RuntimeError("model call failed")
    assert tokens.balance(user.id) == 7
    assert store.messages.count(chat.id) == 1
    assert tokens.verify(user.id)


def test_an_insufficient_debit_leaves_the_callers_transaction_usable(store, user, chat):
    store.tokens.credit(2, user_id=user.id, reason="r")
    with store.transaction() as tx:
        tx.messages.append(chat.id, "assistant", "answer")
        with pytest.raises(InsufficientBalanceError):
            tx.tokens.debit(5, user_id=user.id, reason="usage")
        tx.tokens.debit(2, user_id=user.id, reason="what is left")

    assert store.messages.count(chat.id) == 1
    assert store.tokens.balance(user.id) == 0
    assert store.tokens.verify(user.id)


def test_history_pages_follow_cursors_both_ways(store, user):
    tokens = store.tokens
    made = [tokens.credit(i + 1, user_id=user.id, reason=f"c{i}") for i in range(7)]

    first = tokens.history(user_id=user.id, limit=3)
    assert first.items == made[::-1][:3]
    assert first.has_more
    second = tokens.history(user_id=user.id, limit=3, after=first.last_cursor)
    third = tokens.history(user_id=user.id, limit=3, after=second.last_cursor)
    assert second.items == made[::-1][3:6]
    assert third.items == made[:1]
    assert not third.has_more
    back = tokens.history(user_id=user.id, limit=3, before=third.first_cursor)
    assert back.items == second.items
    assert tokens.history(user_id=user.id, order="asc", limit=4).items == made[:4]
    assert_chained(all_entries(tokens, user.id))

    with pytest.raises(ValidationError) as both:
        tokens.history(user_id=user.id, after=first.last_cursor, before=first.first_cursor)
    assert both.value.field == "before"
    with pytest.raises(ValidationError) as mangled:
        tokens.history(user_id=user.id, after="not-a-cursor")
    assert mangled.value.field == "after"
    for bad_limit, limit in ((0, 1000), (1001, 1000)):
        with pytest.raises(ValidationError) as caught:
            tokens.history(user_id=user.id, limit=bad_limit)
        assert (caught.value.field, caught.value.limit) == ("limit", limit)
    assert len(tokens.history(user_id=user.id, limit=1000).items) == 7


def test_a_cursor_of_another_listing_is_rejected(store, user, chat):
    store.messages.append(chat.id, "user", "hi")
    cursor = store.conversations.list(user.id).last_cursor
    with pytest.raises(ValidationError) as caught:
        store.tokens.history(user_id=user.id, after=cursor)
    assert caught.value.field == "after"


def test_unknown_users_are_not_found_and_get_nothing_written(store):
    tokens = store.tokens
    ghost = uuid.uuid4()
    calls = {
        "balance": lambda: tokens.balance(ghost),
        "credit": lambda: tokens.credit(1, user_id=ghost, reason="r"),
        "grant": lambda: tokens.credit(1, user_id=ghost, reason="r", grant_key="g"),
        "debit": lambda: tokens.debit(1, user_id=ghost, reason="r"),
        "history": lambda: tokens.history(user_id=ghost),
        "verify": lambda: tokens.verify(ghost),
    }
    for name, call in calls.items():
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.kind == "user", name


def test_a_ledger_needs_a_user_id(store):
    tokens = store.tokens
    with pytest.raises(ValidationError) as caught:
        tokens.balance()
    assert caught.value.field == "user_id"
    with pytest.raises(ValidationError):
        tokens.credit(1, reason="r")
    with pytest.raises(ValidationError) as bad:
        tokens.balance("not-a-uuid")
    assert bad.value.field == "user_id"


def test_a_user_scope_sees_only_its_own_balance(store):
    alice = store.users.create(username="alice")
    bob = store.users.create(username="bob")
    store.tokens.credit(40, user_id=bob.id, reason="bob's")
    mine = store.as_user(alice.id).tokens

    assert mine.credit(10, reason="mine").user_id == alice.id
    assert mine.debit(3, reason="mine").balance_after == 7
    assert mine.balance() == 7
    assert mine.balance(alice.id) == 7
    assert mine.verify()
    assert [e.delta for e in mine.history(order="asc")] == [10, -3]

    calls = {
        "balance": lambda: mine.balance(bob.id),
        "credit": lambda: mine.credit(1, user_id=bob.id, reason="r"),
        "debit": lambda: mine.debit(1, user_id=bob.id, reason="r"),
        "history": lambda: mine.history(user_id=bob.id),
        "verify": lambda: mine.verify(bob.id),
    }
    for name, call in calls.items():
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.kind == "user", name
    assert store.tokens.balance(bob.id) == 40


def test_a_scope_cannot_link_another_users_message(store):
    alice = store.users.create(username="alice")
    bob = store.users.create(username="bob")
    bobs_chat = store.conversations.create(bob.id)
    bobs_message = store.messages.append(bobs_chat.id, "assistant", "x")
    mine = store.as_user(alice.id).tokens
    mine.credit(5, reason="r")
    with pytest.raises(NotFoundError) as caught:
        mine.debit(1, reason="r", message_id=bobs_message.id)
    assert caught.value.kind == "message"
    assert mine.balance() == 5


def test_deleting_a_user_deletes_the_balance_and_ledger(store, user, database_url):
    tokens = store.tokens
    tokens.credit(9, user_id=user.id, reason="r")
    tokens.debit(2, user_id=user.id, reason="r")
    store.users.delete(user.id)

    with pytest.raises(NotFoundError):
        tokens.balance(user.id)
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        for table in (token_balances, token_ledger):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    engine.dispose()


# Concurrency: real threads on every backend.


def test_debit_storm_never_overdraws_and_loses_nothing(ledger):
    user = ledger.users.create(username="stormy")
    initial = 1500  # covers about a third of the attempts
    ledger.tokens.credit(initial, user_id=user.id, reason="initial")
    per_thread = 200

    def work(index: int) -> tuple[list[int], list[tuple[int, int, int]]]:
        rng = random.Random(index)
        succeeded: list[int] = []
        refusals: list[tuple[int, int, int]] = []  # (amount, requested, balance reported)
        for _ in range(per_thread):
            amount = rng.randint(1, 5)
            try:
                entry = ledger.tokens.debit(amount, user_id=user.id, reason="storm")
            except InsufficientBalanceError as exc:
                refusals.append((amount, exc.requested, exc.balance))
            else:
                assert entry.delta == -amount
                assert entry.balance_after >= 0
                succeeded.append(amount)
        return succeeded, refusals

    results = run_threads(THREADS, work, timeout=JOIN_TIMEOUT)
    debited = [amount for succeeded, _ in results for amount in succeeded]
    refusals = [refusal for _, refused in results for refusal in refused]

    assert len(debited) + len(refusals) == THREADS * per_thread
    assert refusals
    assert debited
    for amount, requested, reported in refusals:
        assert requested == amount
        assert 0 <= reported < amount
    final = ledger.tokens.balance(user.id)
    assert final == initial - sum(debited)
    assert 0 <= final < 5
    entries = all_entries(ledger.tokens, user.id)
    assert len(entries) == 1 + len(debited)
    assert sorted(-e.delta for e in entries[1:]) == sorted(debited)
    assert_chained(entries)
    assert ledger.tokens.verify(user.id)


def test_concurrent_credits_and_debits_add_up(ledger):
    user = ledger.users.create(username="busy")  # no balance row yet: credits race to make it
    rounds = 60

    def work(index: int) -> int:
        rng = random.Random(1000 + index)
        moved = 0
        for _ in range(rounds):
            amount = rng.randint(1, 9)
            if index % 2 == 0:
                ledger.tokens.credit(amount, user_id=user.id, reason="top up")
                moved += amount
            else:
                try:
                    ledger.tokens.debit(amount, user_id=user.id, reason="spend")
                except InsufficientBalanceError:
                    continue
                moved -= amount
        return moved

    net = sum(run_threads(THREADS, work, timeout=JOIN_TIMEOUT))
    assert ledger.tokens.balance(user.id) == net >= 0
    assert ledger.tokens.verify(user.id)
    assert_chained(all_entries(ledger.tokens, user.id))


def test_racing_first_credits_create_one_balance(ledger):
    user = ledger.users.create(username="fresh")
    entries = run_threads(
        THREADS,
        lambda i: ledger.tokens.credit(i + 1, user_id=user.id, reason="first"),
        timeout=JOIN_TIMEOUT,
    )
    assert ledger.tokens.balance(user.id) == sum(range(1, THREADS + 1))
    assert sorted(e.balance_after for e in entries)[-1] == sum(range(1, THREADS + 1))
    assert ledger.tokens.verify(user.id)


def test_racing_grants_with_one_key_grant_once(ledger):
    user = ledger.users.create(username="lucky")
    entries = run_threads(
        THREADS,
        lambda i: ledger.tokens.credit(25, user_id=user.id, reason="promo", grant_key="promo"),
        timeout=JOIN_TIMEOUT,
    )
    assert len({e.id for e in entries}) == 1
    assert ledger.tokens.balance(user.id) == 25
    assert len(all_entries(ledger.tokens, user.id)) == 1


def test_async_tasks_debiting_at_once_never_overdraw(database_url):
    tasks, per_task, initial = 8, 30, 200

    async def scenario() -> None:
        async with AsyncLedger(database_url) as store:
            user = await store.users.create(username="async")
            await store.tokens.credit(initial, user_id=user.id, reason="initial")

            async def spend(index: int) -> int:
                rng = random.Random(index)
                spent = 0
                for _ in range(per_task):
                    amount = rng.randint(1, 3)
                    try:
                        await store.tokens.debit(amount, user_id=user.id, reason="async")
                    except InsufficientBalanceError:
                        continue
                    spent += amount
                return spent

            spent = sum(await asyncio.gather(*(spend(i) for i in range(tasks))))
            assert await store.tokens.balance(user.id) == initial - spent
            assert await store.tokens.verify(user.id)

    asyncio.run(scenario())


def test_sync_ledger_exposes_tokens_on_scopes(ledger):
    user = ledger.users.create(username="scoped")
    assert isinstance(ledger, Ledger)
    assert ledger.as_user(user.id).tokens.balance() == 0
