"""chatledger's demo: store a short chat with its usage, then read it back.

    python examples/demo.py                              # the configured database, else the
                                                         # default SQLite file
    python examples/demo.py --url sqlite:///demo.db
    python examples/demo.py --url postgresql+psycopg://postgres@127.0.0.1:5432/chatledger

With no ``--url`` the ledger is opened with no arguments, so it uses whatever the environment
or ``$CHATLEDGER_CONFIG`` configures and, with nothing configured, an SQLite file in your user
data directory. Every run starts a new conversation of the same demo user.
"""

from __future__ import annotations

import argparse
import textwrap
import uuid
from dataclasses import dataclass
from decimal import Decimal

from chatledger import Ledger, Message

DEMO_USER = "demo|chatledger-demo"


@dataclass(frozen=True)
class Exchange:
    """A question, the model's answer, and what the answer cost."""

    question: str
    answer: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: Decimal
    latency_ms: int


EXCHANGES = [
    Exchange(
        question="What does chatledger store?",
        answer=(
            "Users, their conversations, and every message in order, with the model, the "
            "token counts, the cost and the latency of each reply."
        ),
        model="gpt-4o-mini",
        input_tokens=38,
        output_tokens=41,
        cost=Decimal("0.0000303"),
        latency_ms=612,
    ),
    Exchange(
        question="And what if my app sends the same message twice?",
        answer=(
            "Give each append an idempotency_key: a retry with the same key returns the "
            "message stored the first time and writes nothing."
        ),
        model="gpt-4o-mini",
        input_tokens=97,
        output_tokens=36,
        cost=Decimal("0.00003615"),
        latency_ms=540,
    ),
]


def usage(message: Message) -> str:
    """A one-line summary of a message's usage columns, or "" when it has none."""
    parts = []
    if message.model is not None:
        parts.append(message.model)
    if message.input_tokens is not None or message.output_tokens is not None:
        parts.append(f"{message.input_tokens or 0} in / {message.output_tokens or 0} out tokens")
    if message.cost is not None:
        parts.append(f"${message.cost:f}")
    if message.latency_ms is not None:
        parts.append(f"{message.latency_ms} ms")
    return " · ".join(parts)


def total_cost(ledger: Ledger, conversation_id: uuid.UUID) -> Decimal:
    """The summed cost of a conversation's messages, read page by page with cursors."""
    total = Decimal(0)
    cursor: str | None = None
    while True:
        page = ledger.messages.list(conversation_id, limit=100, after=cursor)
        total += sum((m.cost for m in page if m.cost is not None), Decimal(0))
        if not page.has_more:
            return total
        cursor = page.last_cursor


def main() -> None:
    parser = argparse.ArgumentParser(description="Store a short chat and print it back.")
    parser.add_argument("--url", help="database URL (default: the configured database)")
    args = parser.parse_args()

    # No argument (url=None) reads the configuration: env, $CHATLEDGER_CONFIG, the default.
    with Ledger(args.url) as ledger:
        print(f"database:     {ledger.config.redacted_url()}")
        user = ledger.users.get_or_create(DEMO_USER, display_name="Demo user")
        chat = ledger.conversations.create(user.id, title="About chatledger")
        print(f"user:         {user.id} ({user.external_id})")
        print(f"conversation: {chat.id} ({chat.title})")

        for turn, exchange in enumerate(EXCHANGES, start=1):
            ledger.messages.append(
                chat.id, "user", exchange.question, idempotency_key=f"{chat.id}-{turn}"
            )
            ledger.messages.append(
                chat.id,
                "assistant",
                exchange.answer,
                model=exchange.model,
                input_tokens=exchange.input_tokens,
                output_tokens=exchange.output_tokens,
                cost=exchange.cost,
                latency_ms=exchange.latency_ms,
                request_id=f"demo-{turn}",
            )

        print()
        for message in ledger.messages.last(chat.id, 20):
            lines = textwrap.wrap(message.content, width=72) or [""]
            print(f"#{message.seq:<3} {message.role:<10} {lines[0]}")
            for line in lines[1:]:
                print(f"{'':16}{line}")
            if summary := usage(message):
                print(f"{'':16}[{summary}]")
        print()

        chat = ledger.conversations.get(chat.id)
        print(f"messages:     {chat.message_count}")
        print(f"total cost:   ${total_cost(ledger, chat.id):f}")
        print(f"this user's conversations so far: {ledger.conversations.count(user.id)}")


if __name__ == "__main__":
    main()
