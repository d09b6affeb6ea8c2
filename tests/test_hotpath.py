"""The hot paths (chatledger._prepared): statements run on the driver's cursor and records built
by generated loaders must give exactly what SQLAlchemy's own execution and result processing
give, keep errors translated, and step aside when SQL is logged or listened to."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from chatledger import AsyncLedger, ChatledgerError, ConflictError, Ledger, NotFoundError
from chatledger._backends import sqlite_library
from chatledger._ops import conversations as conversation_ops
from chatledger._ops import messages as message_ops
from chatledger._ops._common import from_row
from chatledger._prepared import record_loader, record_maker
from chatledger._run.database_async import _Workers
from chatledger._schema import conversations, messages
from chatledger._types import MONEY_SCALE, bind_saver, canonical_decimal, result_loader
from chatledger.records import Conversation, Message

COSTS = [
    None,
    Decimal(0),
    Decimal("0.000000001"),
    Decimal("0.000123456"),
    Decimal("1.5"),
    Decimal(100),
    Decimal("123456789.123456789"),
]


def _reference_messages(ledger: Ledger, conversation_id: uuid.UUID) -> list[Message]:
    """The conversation's messages read through SQLAlchemy's execute and result processing."""
    columns = message_ops._COLUMNS
    query = (
        sa.select(*columns)
        .where(messages.c.conversation_id == conversation_id)
        .order_by(messages.c.seq)
    )
    with ledger._core.db.engine.connect() as conn:
        return [from_row(Message, row) for row in conn.execute(query)]


def test_last_gives_what_sqlalchemy_gives_for_every_kind_of_value(ledger):
    owner = ledger.users.create(username="u").id
    chat = ledger.conversations.create(owner)
    for index, cost in enumerate(COSTS):
        ledger.messages.append(
            chat.id,
            "assistant" if cost is not None else "user",
            f"message {index} \u00e9\u4e2d\U0001f600",
            intent="faq" if index % 2 else None,
            metadata={"n": index, "nested": {"list": [1, "two", None]}} if index % 3 else None,
            model="model" if cost is not None else None,
            input_tokens=index or None,
            output_tokens=2 * index,
            cost=cost,
            latency_ms=index * 10,
            request_id=f"r{index}",
            idempotency_key=f"k{index}" if index % 2 else None,
        )
    # A time with no microseconds, and one from before the epoch, through the import path.
    ledger.messages.append_many(
        chat.id,
        [
            {"role": "user", "content": "old", "created_at": datetime(1969, 7, 20, tzinfo=UTC)},
            {"role": "user", "content": "round", "created_at": datetime(2026, 1, 1, tzinfo=UTC)},
        ],
    )
    fast = ledger.messages.last(chat.id, 100)
    reference = _reference_messages(ledger, chat.id)
    assert fast == reference
    for mine, theirs in zip(fast, reference, strict=True):
        assert type(mine) is Message
        assert str(mine.cost) == str(theirs.cost)  # the same digits, not only equal values
        assert mine.created_at.tzinfo is UTC
        assert mine.id.version == theirs.id.version
        assert mine.id.is_safe == theirs.id.is_safe


def test_sidebar_pages_give_what_sqlalchemy_gives(store, user):
    made = [store.conversations.create(user.id, title=f"c{i}") for i in range(7)]
    store.conversations.archive(made[2].id)
    store.conversations.delete(made[3].id)
    store.messages.append(made[5].id, "user", "bump")
    seen: list[Conversation] = []
    page = store.conversations.list(user.id, limit=3)
    while True:
        seen.extend(page.items)
        if not page.has_more:
            break
        page = store.conversations.list(user.id, limit=3, after=page.last_cursor)
    assert next(c.id for c in seen) == made[5].id
    assert {c.id for c in seen} == {c.id for c in made} - {made[3].id}
    assert seen == [store.conversations.get(c.id) for c in seen]
    back = store.conversations.list(user.id, limit=2, before=page.first_cursor)
    assert back.items == seen[-len(page.items) - 2 : -len(page.items)]
    archived = store.conversations.list(user.id, status=["archived", "deleted"])
    assert [c.id for c in archived.items] == sorted(
        [made[2].id, made[3].id],
        key=lambda i: (store.conversations.get(i).last_activity_at, i),
        reverse=True,
    )


def test_listened_statements_take_sqlalchemys_path(ledger):
    owner = ledger.users.create(username="u").id
    chat = ledger.conversations.create(owner)
    sent = ledger.messages.append(chat.id, "user", "hello", cost=Decimal("0.5"))
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    for engine in ledger._core.db.engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        second = ledger.messages.append(chat.id, "assistant", "hi", cost=Decimal(2))
        assert ledger.messages.last(chat.id, 5) == [sent, second]
        assert ledger.conversations.list(owner).items == [ledger.conversations.get(chat.id)]
    finally:
        for engine in ledger._core.db.engines:
            sa.event.remove(engine, "before_cursor_execute", record)
    assert any("INSERT INTO MESSAGES" in s.upper() for s in seen)  # in a CTE on PostgreSQL
    assert sum(s.lstrip().upper().startswith("SELECT") for s in seen) >= 2


def test_driver_errors_on_the_fast_path_are_translated(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Ledger(url) as ledger:
        chat = ledger.conversations.create(ledger.users.create().id)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE messages RENAME TO gone")
        engine.dispose()
        with pytest.raises(ChatledgerError) as caught:
            ledger.messages.last(chat.id, 5)
        assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)
        with pytest.raises(ChatledgerError):
            ledger.messages.append(chat.id, "user", "x")


def test_reads_of_a_missing_conversation_say_so(store):
    with pytest.raises(NotFoundError):
        store.messages.last(uuid.uuid4(), 5)


@dataclasses.dataclass
class _Plain:
    """Not slotted: the loader falls back to the constructor."""

    id: uuid.UUID
    title: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked:
    id: uuid.UUID
    title: str | None

    def __post_init__(self) -> None:
        if self.title == "bad":
            raise ValueError("bad title")


@pytest.mark.parametrize("record", [_Plain, _Checked])
def test_records_that_cannot_be_filled_directly_are_constructed(record):
    dialect = sa.create_engine("sqlite://").dialect
    load = record_loader(record, [conversations.c.id, conversations.c.title], dialect)
    ident = uuid.uuid4()
    assert load((ident.hex, "t")) == record(ident, "t")
    if record is _Checked:
        with pytest.raises(ValueError, match="bad title"):
            load((ident.hex, "bad"))


def test_loaders_match_sqlalchemys_result_processing_on_each_dialect():
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    when = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    for dialect in (sqlite.dialect(), postgresql.psycopg.dialect(), mysql.pymysql.dialect()):
        for column in conversation_ops._COLUMNS:
            fast = result_loader(column.type, dialect)
            slow = column.type.dialect_impl(dialect).result_processor(dialect, None)
            assert (fast is None) == (slow is None) or column.type.__class__.__name__ in (
                "UTCDateTime",
                "Money",
            )
            if fast is not None:
                assert fast(None) is None
        stored = {"sqlite": "2026-03-04 05:06:07.000890"}.get(
            dialect.name, when.replace(tzinfo=None)
        )
        load = result_loader(conversations.c.created_at.type, dialect)
        assert load is not None
        assert load(stored) == when
        assert load(stored).tzinfo is UTC
    aware = result_loader(conversations.c.created_at.type, postgresql.psycopg.dialect())
    assert aware is not None
    other_zone = when.astimezone(ZoneInfo("Asia/Tokyo"))
    assert aware(other_zone) == when
    assert aware(other_zone).tzinfo is UTC
    sqlite_time = result_loader(conversations.c.created_at.type, sqlite.dialect())
    assert sqlite_time is not None
    assert sqlite_time("2026-03-04 05:06:07+02:00") == when.replace(microsecond=0) - timedelta(
        hours=2
    )


def _as_tuple_canonical(value: Decimal) -> Decimal:
    """canonical_decimal as first written (exponent read from as_tuple())."""
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normal.quantize(Decimal(1))
    return normal


@given(
    st.integers(min_value=-(10**20) + 1, max_value=10**20 - 1),
    st.sampled_from([1, 10, 1000, 10**MONEY_SCALE, 10**10]),
)
def test_money_loading_keeps_the_canonical_digits(billionths, multiplier):
    billionths = max(-(10**20) + 1, min(10**20 - 1, billionths * multiplier))
    value = Decimal(billionths).scaleb(-MONEY_SCALE)
    expected = _as_tuple_canonical(value)
    assert str(canonical_decimal(value)) == str(expected)
    from sqlalchemy.dialects import postgresql, sqlite

    on_sqlite = result_loader(messages.c.cost.type, sqlite.dialect())
    on_server = result_loader(messages.c.cost.type, postgresql.psycopg.dialect())
    assert on_sqlite is not None
    assert on_server is not None
    assert str(on_sqlite(billionths)) == str(expected)
    assert str(on_server(value)) == str(expected)


def test_worker_threads_return_results_and_raise_errors():
    workers = _Workers(3, "test")

    async def main() -> None:
        gate = threading.Barrier(3, timeout=5)

        def meet(i: int) -> int:
            gate.wait()  # three jobs at once: three threads were started
            return i * 2

        jobs = [workers.submit(functools.partial(meet, i)) for i in range(3)]
        assert await asyncio.gather(*jobs) == [0, 2, 4]

        def fail() -> None:
            raise KeyError("boom")

        with pytest.raises(KeyError, match="boom"):
            await workers.submit(fail)
        assert [await workers.submit(functools.partial(int, i)) for i in range(50)] == list(
            range(50)
        )

    try:
        asyncio.run(main())
        assert len(workers._threads) == 3
    finally:
        workers.shutdown()


def test_bulk_insert_conflicts_are_translated(ledger):
    chat = ledger.conversations.create(ledger.users.create().id)
    sent = ledger.messages.append(chat.id, "user", "first")
    again = [sent]  # the same id and seq: a unique violation (COPY on PostgreSQL)
    with pytest.raises(ConflictError):
        ledger._core.db.run(message_ops.insert_batch, again)
    assert ledger.messages.count(chat.id) == 1


def test_async_append_many_copies_and_translates_conflicts(database_url):
    async def main() -> None:
        async with AsyncLedger(database_url) as store:
            chat = await store.conversations.create((await store.users.create()).id)
            batch = [{"role": "user", "content": f"m{i}", "cost": "0.25"} for i in range(300)]
            stored = await store.messages.append_many(chat.id, batch)
            assert [m.seq for m in stored] == list(range(1, 301))
            assert await store.messages.last(chat.id, 300) == stored
            with pytest.raises(ConflictError):
                await store._core.db.run(message_ops.insert_batch, [stored[0]])
            assert await store.messages.count(chat.id) == 300

    asyncio.run(main())


def test_message_pages_walk_the_conversation_both_ways(store, chat):
    sent = [
        store.messages.append(chat.id, "user" if i % 2 else "assistant", f"m{i}", cost="0.1")
        for i in range(9)
    ]
    walked: list[Message] = []
    page = store.messages.list(chat.id, limit=4)
    while True:
        walked.extend(page.items)
        if not page.has_more:
            break
        page = store.messages.list(chat.id, limit=4, after=page.last_cursor)
    assert walked == sent
    newest = store.messages.list(chat.id, limit=3, order="desc")
    assert newest.items == sent[::-1][:3]
    before = store.messages.list(chat.id, limit=2, order="desc", before=newest.first_cursor)
    assert before.items == []
    older = store.messages.list(chat.id, limit=2, before=page.first_cursor)
    assert older.items == sent[-len(page.items) - 2 : -len(page.items)]
    users = store.messages.list(chat.id, role="user", limit=50)
    assert users.items == [m for m in sent if m.role == "user"]
    with pytest.raises(NotFoundError):
        store.messages.list(uuid.uuid4())


def test_a_value_the_bind_processing_refuses_is_a_statement_error(ledger):
    chat = ledger.conversations.create(ledger.users.create().id)
    naive = {"b_cid": chat.id, "b_now": datetime(2026, 1, 1)}  # naive: refused
    bump = message_ops._BUMP[ledger._core.db.backend.update_returning, False, "newest"]
    with ledger._core.db.engine.begin() as conn, pytest.raises(sa.exc.StatementError):
        bump.execute(conn, naive)


def test_made_records_equal_constructed_ones():
    make = record_maker(Message)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "conversation_id": uuid.uuid4(),
        "seq": 3,
        "role": "user",
        "content": "x",
        "intent": None,
        "metadata": {"a": [1]},
        "model": None,
        "input_tokens": None,
        "output_tokens": 2,
        "cost": Decimal("0.5"),
        "latency_ms": None,
        "request_id": None,
        "idempotency_key": None,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "parent_seq": 2,
        "depth": 2,
        "sibling_index": 0,
        "on_active_path": True,
        "status": "incomplete",
        "status_reason": "stopped",
        "cached_input_tokens": 1,
        "reasoning_tokens": None,
        "hidden_at": datetime(2026, 1, 2, tzinfo=UTC),
        "hidden_by": uuid.uuid4(),
        "erased_at": None,
    }
    made = make(**values)
    assert type(made) is Message
    assert made == Message(**values)
    assert hash(made.id) == hash(values["id"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.seq = 4  # type: ignore[misc]
    assert record_maker(_Checked) is _Checked


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(_JSON)
def test_json_loading_matches_sqlalchemys_on_each_dialect(document):
    """The 'null' shortcuts (a metadata of None is stored as JSON null) change no value."""
    from sqlalchemy.dialects import mysql, sqlite

    column = messages.c.metadata
    for dialect in (sqlite.dialect(), mysql.pymysql.dialect()):
        fast = result_loader(column.type, dialect)
        slow = column.type.dialect_impl(dialect).result_processor(dialect, None)
        dump = column.type.dialect_impl(dialect).bind_processor(dialect)
        assert dump is not None
        stored = dump(document)
        save = bind_saver(column.type, dialect)
        assert save is not None
        assert save(document) == stored
        assert fast is not None
        assert slow is not None
        assert fast(stored) == slow(stored) == document
        assert fast(None) is None


def _autocommit(dbapi_connection: Any) -> bool:
    """Whether a driver connection is in autocommit mode (no transaction around a write)."""
    if isinstance(dbapi_connection, sqlite_library().Connection):  # chatledger begins itself
        return not dbapi_connection.in_transaction
    if hasattr(dbapi_connection, "get_autocommit"):  # PyMySQL
        return bool(dbapi_connection.get_autocommit())
    return bool(dbapi_connection.autocommit)  # psycopg


def test_appends_without_key_or_charge_are_one_autocommit_statement_on_postgresql(ledger):
    """Without an idempotency key or a charge, a PostgreSQL append is one statement (a
    writable CTE) in autocommit mode: one round trip, not BEGIN, the statement and COMMIT.
    Keyed and charged appends keep their transaction there, and every write of the other
    backends is in a transaction (MariaDB: one insert that numbers itself; SQLite: the
    conversation's update, then the insert)."""
    on_postgresql = ledger.config.backend == "postgresql"
    owner = ledger.users.create(username="u").id
    chat = ledger.conversations.create(owner)
    ledger.tokens.credit(100, user_id=owner, reason="grant")
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split()[0].upper()
        if verb in ("WITH", "UPDATE", "INSERT"):
            seen.append((verb, _autocommit(conn.connection.dbapi_connection)))

    for engine in ledger._core.db.engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        plain = ledger.messages.append(chat.id, "user", "one statement")
        plain_seen, seen[:] = list(seen), []
        keyed = ledger.messages.append(chat.id, "user", "keyed", idempotency_key="k")
        charged = ledger.messages.append(chat.id, "assistant", "charged", charge=3)
        again = ledger.messages.append(chat.id, "user", "keyed", idempotency_key="k")
    finally:
        for engine in ledger._core.db.engines:
            sa.event.remove(engine, "before_cursor_execute", record)
    if on_postgresql:
        assert plain_seen == [("WITH", True)]
    elif ledger.config.backend == "mariadb":
        # The insert bumps the conversation itself (trigger trg_messages_append).
        assert plain_seen == [("INSERT", False)]
    else:
        assert [verb for verb, _ in plain_seen] == ["UPDATE", "INSERT"]
        assert not any(autocommit for _, autocommit in plain_seen)
    assert seen
    assert not any(autocommit for _, autocommit in seen)
    assert again == keyed
    assert [m.seq for m in ledger.messages.last(chat.id, 5)] == [1, 2, 3]
    assert [plain.seq, keyed.seq, charged.seq] == [1, 2, 3]
    assert ledger.tokens.balance(owner) == 97


def test_new_ids_are_standard_time_ordered_uuid7s():
    from chatledger._ids import new_id

    made = [new_id() for _ in range(1_000)]
    assert all(type(u) is uuid.UUID for u in made)
    assert {u.version for u in made} == {7}
    assert {u.variant for u in made} == {uuid.RFC_4122}
    assert made == sorted(made)  # monotonic, within a millisecond too
    assert len(set(made)) == len(made)
    assert all(uuid.UUID(str(u)) == u and hash(uuid.UUID(u.hex)) == hash(u) for u in made)
    assert {u.is_safe for u in made} == {uuid.SafeUUID.unknown}
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert abs((made[-1].int >> 80) - now_ms) < 60_000
