"""copy_database over a source that keeps changing: interrupted copies and reruns on every
pair of backends (source x target) leave a target whose invariants hold after every
interruption (message_count == rows, seq gap-free, balance == sum of the ledger, the audit
chain's head on its last event), and the last rerun makes it an exact, verified copy."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import ConflictError, Ledger, transfer
from chatledger._ops import sync

from ._transfer_data import populate

BACKENDS = ("sqlite", "postgresql", "mariadb")
PAIRS = [(source, target) for source in BACKENDS for target in BACKENDS]


class _Interrupt(Exception):
    pass


def _url(backend: str, label: str, make_database: Callable[[str, str], URL], tmp: Path) -> URL:
    if backend == "sqlite":
        return sa.make_url(f"sqlite:///{tmp / f'{label}.db'}")
    return make_database(backend, label)


@pytest.fixture(params=PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def pair(
    request: pytest.FixtureRequest, make_database: Callable[[str, str], URL], tmp_path: Path
) -> tuple[URL, URL]:
    source, target = request.param
    return (
        _url(source, "sync_source", make_database, tmp_path),
        _url(target, "sync_target", make_database, tmp_path),
    )


def _violations(url: URL) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return sync.invariant_violations(conn)
    finally:
        engine.dispose()


def _interrupted_copy(source: URL, target: URL, stop_at: int) -> bool:
    """Copy, raising out of the ``stop_at``-th progress call; whether it was interrupted."""
    calls = 0

    def stop(task: str, done: int, total: int | None) -> None:
        nonlocal calls
        calls += 1
        if calls == stop_at:
            raise _Interrupt

    try:
        transfer.copy_database(source, target, batch_size=2, backup=False, progress=stop)
    except _Interrupt:
        return True
    return False


def _change(ledger: Ledger, ids: dict[str, Any], rnd: random.Random, round_: int) -> None:
    """One round of what an app does meanwhile: appends (with charges), new conversations,
    credits and debits, edits, revocations, deletions."""
    chat = ids["chats"][rnd.randrange(len(ids["chats"]))]
    for index in range(rnd.randint(1, 4)):
        ledger.messages.append(chat, "user", f"round {round_} message {index}")
    fresh = ledger.conversations.create(ids["ada"], title=f"round {round_}")
    ids["chats"].append(fresh.id)
    ledger.messages.append(fresh.id, "user", "first")
    ledger.tokens.credit(rnd.randint(5, 50), user_id=ids["ada"], reason=f"top-up {round_}")
    ledger.messages.append(fresh.id, "assistant", "charged", charge=1)
    ledger.tokens.debit(1, user_id=ids["ada"], reason=f"use {round_}")
    ledger.conversations.update(ids["chat"], title=f"renamed in round {round_}")
    ledger.users.update(ids["bob"], metadata={"round": round_})
    ledger.audit.record("round.done", metadata={"round": round_})
    newcomer = ledger.users.create(external_id=f"newcomer-{round_}")
    ledger.tokens.credit(7, user_id=newcomer.id, reason="welcome")
    if round_ == 1:
        ledger.api_keys.revoke(ids["key_id"])
        ledger.conversations.delete(ids["other"], hard=True)
        ids["chats"].remove(ids["other"])
    if round_ == 2:
        ledger.users.erase(ids["bob"])


def test_copies_of_a_changing_source_keep_the_target_consistent(pair: tuple[URL, URL]) -> None:
    source, target = pair
    rnd = random.Random(f"{source.drivername}->{target.drivername}")
    with Ledger(source) as app:
        ids = populate(app)
        ids["chats"] = [ids["chat"], ids["other"]]
        ids["key_id"] = app.api_keys.verify(ids["secret"]).id
        for round_ in range(3):
            # Interrupted somewhere inside the copy (a progress call comes after each batch).
            assert _interrupted_copy(source, target, stop_at=rnd.randint(2, 40))
            assert _violations(target) == [], f"round {round_}: broken after an interruption"
            _change(app, ids, rnd, round_)
        report = transfer.copy_database(source, target, batch_size=2, backup=False)
        assert report.ok, [check for check in report.tables if not check.ok]
        assert report.deleted["conversations"] + report.deleted["users"] >= 1
        assert _violations(target) == []
        # A rerun over a finished copy writes nothing.
        again = transfer.copy_database(source, target, batch_size=50, backup=False)
        assert again.ok
        assert again.rows_copied == sum(again.updated.values()) == sum(again.deleted.values()) == 0
        with Ledger(target) as copy:
            chat = copy.conversations.get(ids["chat"])
            assert chat.message_count == app.conversations.get(ids["chat"]).message_count
            assert copy.messages.append(ids["chat"], "user", "on the copy").seq == (
                chat.message_count + 1
            )
            assert copy.tokens.balance(ids["ada"]) == app.tokens.balance(ids["ada"])
            assert copy.tokens.verify(ids["ada"])
            assert copy.audit.verify().ok


def test_a_target_written_since_the_copy_is_refused_before_any_write(
    database_url: URL, tmp_path: Path
) -> None:
    source = sa.make_url(f"sqlite:///{tmp_path / 'source.db'}")
    with Ledger(source) as app:
        ids = populate(app)
    assert transfer.copy_database(source, database_url, backup=False).ok
    with Ledger(database_url) as copy:
        copy.messages.append(ids["chat"], "user", "written on the target")
    with Ledger(source) as app:
        app.messages.append(ids["chat"], "user", "written on the source")
        app.users.update(ids["bob"], metadata={"changed": True})
    before = transfer.compare_databases(source, database_url)
    with pytest.raises(ConflictError, match="both databases were written to"):
        transfer.copy_database(source, database_url, backup=False)
    assert transfer.compare_databases(source, database_url) == before
    assert _violations(database_url) == []
