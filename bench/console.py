"""The console's speed: a conversation page against the library reading its messages, and the
usage page against the aggregate queries it runs (with their plans). A measurement, not a test.

    .venv/bin/python -m bench.console                       # SQLite, 1,000 / 1,000,000 messages
    .venv/bin/python -m bench.console --usage-messages 20000 --rounds 5      # a quick look
    .venv/bin/python -m bench.console --url postgresql+psycopg://...        # an EMPTY database

The app runs in-process (FastAPI's TestClient: one thread hop per request, ~0.1 ms); times are
medians of ``--rounds`` requests after a warm-up, server-side work included, network excluded.

- conversation page: ``GET /console/conversations/{id}?limit=N`` (the active path: every
  message with its usage, ratings and citations, Markdown rendered) against
  ``messages.list(id, limit=N)`` (the same messages here: the conversation has one branch; the
  library's fastest read of them, ``trees.path`` is slower) plus the two reads of its ratings
  and citations, through the same async ledger. Target: <= 2x.
- usage page: ``GET /console/usage`` (admin, everyone, the last 30 days) against the queries it
  runs called directly (totals by day and model, overall, top users and conversations, the
  balance and ledger). Target: <= 2x. The query plans of those statements are printed.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from chatledger import AsyncLedger, Ledger
from chatledger._ops import reports
from chatledger.server import ServerSettings, create_app
from chatledger.server.bootstrap import ensure_admin_key

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b")
SENTENCE = (
    "Here is what I found about **refunds**: duplicate charges are reversed in 3-5 business "
    "days, and you can follow the status under *Billing → History*. "
)


def _median_ms(run: Callable[[], object], rounds: int) -> float:
    run()  # warm-up
    spent = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        spent.append((time.perf_counter() - start) * 1000)
    return statistics.median(spent)


def seed(url: str, messages: int, usage_messages: int) -> dict[str, Any]:
    """An admin, one conversation of ``messages`` messages (every 10th rated, every 5th with a
    citation) and ``usage_messages`` more over 365 days, 4 models and 200 conversations of 50
    users."""
    rng = random.Random(17)
    now = datetime.now(UTC)
    with Ledger(url) as ledger:
        admin = ensure_admin_key(ledger)
        assert admin is not None
        owner = ledger.users.create(external_id="reader")
        chat = ledger.conversations.create(owner.id, title="A long conversation")
        batch = [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": SENTENCE * (1 + i % 4),
                "model": None if i % 2 == 0 else MODELS[i % 4],
                "input_tokens": None if i % 2 == 0 else 400 + i,
                "output_tokens": None if i % 2 == 0 else 80 + i % 50,
                "cost": None if i % 2 == 0 else Decimal("0.000123") * (1 + i % 7),
                "latency_ms": None if i % 2 == 0 else 900 + i % 300,
                "created_at": now - timedelta(seconds=messages - i),
            }
            for i in range(messages)
        ]
        written = []
        for start in range(0, len(batch), 1000):
            written += ledger.messages.append_many(chat.id, batch[start : start + 1000])
        scope = ledger.as_user(owner.id)
        for i, message in enumerate(written):
            if message.role == "assistant" and i % 10 == 1:
                scope.feedback.rate(message.id, thumb="down" if i % 20 == 1 else "up")
            if message.role == "assistant" and i % 5 == 1:
                ledger.citations.add(message.id, url="https://example.com/a", title="Source")
        users = [ledger.users.create(external_id=f"user-{n}").id for n in range(50)]
        chats = [
            ledger.conversations.create(users[n % 50], title=f"chat {n}").id for n in range(200)
        ]
        left = usage_messages
        while left > 0:
            size = min(1000, left)
            target = chats[rng.randrange(len(chats))]
            ledger.messages.append_many(
                target,
                [
                    {
                        "role": "assistant",
                        "content": "ok",
                        "model": MODELS[rng.randrange(4)],
                        "input_tokens": rng.randrange(50, 3000),
                        "output_tokens": rng.randrange(10, 800),
                        "cost": Decimal(rng.randrange(1, 90_000)) / Decimal(10**8),
                        "created_at": now - timedelta(minutes=rng.randrange(365 * 24 * 60)),
                    }
                    for _ in range(size)
                ],
            )
            left -= size
        # Fresh statistics, as a database in service has them (autovacuum, InnoDB's own).
        engine = ledger._core.db.engine
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("ANALYZE")
            elif engine.dialect.name == "mysql":
                conn.exec_driver_sql("ANALYZE TABLE messages, conversations")
            else:
                conn.exec_driver_sql("ANALYZE")
    return {"admin": admin.secret, "conversation": chat.id}


def sign_in(client: TestClient, secret: str) -> None:
    form = client.get("/console/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    answer = client.post(
        "/console/sign-in",
        data={"csrf_token": token.group(1), "api_key": secret},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


@contextmanager
def captured() -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements every engine runs in the block, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        statements.append((statement, params))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def explain(url: str, statements: list[tuple[str, Any]]) -> None:
    """Print the plan of each captured aggregate statement."""
    with Ledger(url) as ledger:
        engine = ledger._core.db.engine
        dialect = engine.dialect.name
        prefix = {
            "sqlite": "EXPLAIN QUERY PLAN ",
            "postgresql": "EXPLAIN (ANALYZE, BUFFERS) ",
        }.get(dialect, "EXPLAIN ")
        seen = set()
        with engine.connect() as conn:
            for statement, params in statements:
                if "GROUP BY" not in statement.upper() and "sum(" not in statement.lower():
                    continue
                if statement in seen:
                    continue
                seen.add(statement)
                raw = conn.connection.dbapi_connection
                assert raw is not None
                cursor = raw.cursor()
                cursor.execute(prefix + statement, params)
                rows = cursor.fetchall()
                print("\n" + " ".join(statement.split())[:400])
                for row in rows:
                    print("   ", " | ".join(str(v) for v in row))


def main() -> None:
    """Run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an EMPTY database (default: a fresh SQLite file)")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--usage-messages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    folder = tempfile.mkdtemp(prefix="chatledger-bench-console-")
    url = args.url or f"sqlite:///{Path(folder) / 'console.db'}"
    try:
        measure(url, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(url: str, args: argparse.Namespace) -> None:
    """Seed ``url``, time both pages against their reads, print the plans."""
    started = time.perf_counter()
    seeded = seed(url, args.messages, args.usage_messages)
    print(
        f"seeded {args.messages:,} + {args.usage_messages:,} messages in "
        f"{time.perf_counter() - started:.0f} s ({url.split(':')[0]})"
    )

    ledger = AsyncLedger(url)
    app = create_app(ledger, settings=ServerSettings(purge_interval=0))
    with TestClient(app) as client:
        sign_in(client, seeded["admin"])
        chat = seeded["conversation"]
        page = f"/console/conversations/{chat}?limit={args.messages}"
        assert client.get(page).status_code == 200

        async def read() -> None:
            await ledger.messages.list(chat, limit=args.messages)
            await ledger._call(reports.conversation_notes, None, chat)

        portal = client.portal  # the app's own event loop
        assert portal is not None
        page_ms = _median_ms(lambda: client.get(page), args.rounds)
        read_ms = _median_ms(lambda: portal.call(read), args.rounds)
        print(
            f"\nconversation page, {args.messages:,} messages: {page_ms:.1f} ms; "
            f"library read: {read_ms:.1f} ms; ratio {page_ms / read_ms:.2f}x (target <= 2x)"
        )

        usage_ms = _median_ms(lambda: client.get("/console/usage"), args.rounds)
        admin_id = portal.call(_admin_id, ledger)
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
            days=29
        )

        async def queries() -> None:
            await ledger.usage.totals("day", since=since)
            await ledger.usage.totals("model", since=since)
            await ledger.usage.overall(since=since)
            await ledger._call(reports.top_usage, "user", since=since, until=None, limit=10)
            await ledger._call(reports.top_usage, "conversation", since=since, until=None, limit=10)
            await ledger.tokens.balance(admin_id)
            await ledger.tokens.history(user_id=admin_id, limit=25)

        queries_ms = _median_ms(lambda: portal.call(queries), args.rounds)
        print(
            f"usage page over {args.usage_messages + args.messages:,} messages (30 days): "
            f"{usage_ms:.1f} ms; its queries: {queries_ms:.1f} ms; ratio "
            f"{usage_ms / queries_ms:.2f}x (target <= 2x)"
        )
        with captured() as statements:
            portal.call(queries)
    explain(url, statements)


async def _admin_id(ledger: AsyncLedger) -> Any:
    keys = await ledger.api_keys.list()
    return keys[0].user_id


if __name__ == "__main__":
    main()
