"""Databases with something in every area, for the transfer and CLI tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from chatledger import Ledger, migrate
from chatledger._bulk import bulk_insert
from chatledger._schema import conversations, users
from chatledger._schema import messages as messages_table

#: Tables the populated database has rows in (every table of the schema the data areas use).
POPULATED = (
    "users",
    "conversations",
    "messages",
    "message_feedback",
    "citations",
    "knowledge_chunks",
    "product_feedback",
    "visitors",
    "visitor_answers",
    "survey_responses",
    "token_balances",
    "token_ledger",
    "audit_events",
    "api_keys",
)


def populate(ledger: Ledger, *, tag: str = "a") -> dict[str, Any]:
    """Write a little of everything; return the ids the tests look for."""
    ada = ledger.users.create(
        external_id=f"ada-{tag}", email=f"ada-{tag}@example.com", display_name="Ada Lovelace"
    )
    bob = ledger.users.create(external_id=f"bob-{tag}", metadata={"plan": "pro", "seats": 3})
    ledger.users.set_password(ada.id, "correct horse battery staple")
    chat = ledger.conversations.create(ada.id, title="Trip to Lisbon", metadata={"k": [1, 2.5]})
    question = ledger.messages.append(chat.id, "user", "Plan three days in Lisbon. ✈️")
    answer = ledger.messages.append(
        chat.id,
        "assistant",
        "Day 1: Alfama.\nDay 2: Belém.\n",
        model="gpt-4o-mini",
        input_tokens=412,
        output_tokens=230,
        cost=Decimal("0.000199"),
        latency_ms=1840,
        request_id="req-1",
        idempotency_key="req-1",
        metadata={"temperature": 0.2, "tools": ["search"], "nested": {"a": None}},
    )
    other = ledger.conversations.create(bob.id, title=None)
    ledger.messages.append(other.id, "user", "hello", cost="1.5")
    ledger.conversations.archive(other.id)
    chunk = ledger.knowledge.upsert("docs", "lisbon#1", "Lisbon has seven hills.", title="Hills")
    ledger.citations.add(answer.id, chunk_id=chunk.id, rank=0, score=0.92)
    ledger.citations.add(answer.id, url="https://example.com/belem", title="Belém", rank=1)
    ledger.feedback.rate(answer.id, rater_id=ada.id, thumb="up", score=4, scale=(1, 5))
    ledger.feedback.rate(answer.id, rater_id=bob.id, thumb="down", comment="too short")
    ledger.product_feedback.submit("Claude", agent_type="assistant", usability_rating=9)
    ledger.visitors.record_visit("Claude", agent_type="assistant", answers={"q": "a"})
    ledger.surveys.submit("beta", {"role": "engineer"}, user_id=ada.id, grant=100)
    ledger.messages.append(chat.id, "assistant", "Day 3: Sintra.", charge=10)
    ledger.audit.record("user.signed_in", user_id=ada.id, metadata={"ip": "10.0.0.1"})
    ledger.audit.record("system.started", category="system")
    key = ledger.api_keys.create(
        ada.id, name="ci", expires_at=datetime.now(UTC) + timedelta(days=30)
    )
    return {
        "ada": ada.id,
        "bob": bob.id,
        "chat": chat.id,
        "other": other.id,
        "question": question.id,
        "answer": answer.id,
        "secret": key.secret,
    }


def without_time(document: str) -> dict[str, Any]:
    """A JSON export without its ``exported_at`` (the one member two exports may differ in)."""
    parsed: dict[str, Any] = json.loads(document)
    parsed.pop("exported_at")
    return parsed


def jsonl_without_time(document: str) -> list[Any]:
    """A JSON-lines export, parsed, without the header's ``exported_at``."""
    lines = [json.loads(line) for line in document.splitlines() if line.strip()]
    lines[0].pop("exported_at")
    return lines


def new_id() -> uuid.UUID:
    """A random id (for ids that must not exist)."""
    return uuid.uuid4()


def generate_database(url: str, *, messages: int = 100_000, per_conversation: int = 50) -> None:
    """Fill a new database at ``url`` with ``messages`` messages (``per_conversation`` each, in
    conversations of 100 users) through the bulk path: seconds for 100,000 on SQLite."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    migrate.upgrade(url)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    chats = max(1, messages // per_conversation)
    people = [
        {
            "id": uuid.UUID(int=i + 1),
            "external_id": f"user-{i}",
            "email": None,
            "username": None,
            "display_name": f"User {i}",
            "role": "user",
            "password_hash": None,
            "metadata": {"i": i},
            "created_at": start,
            "updated_at": start,
        }
        for i in range(100)
    ]
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "a",
        "lazy",
        "dog",
        "while",
        "Lisbon",
        "trams",
        "climb",
        "seven",
        "hills",
    ]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        bulk_insert(conn, users, people)
        rows: list[dict[str, Any]] = []
        threads: list[dict[str, Any]] = []
        written = 0
        for c in range(chats):
            chat_id = uuid.uuid5(uuid.NAMESPACE_OID, f"chat-{c}")
            count = min(per_conversation, messages - written)
            if count <= 0:
                break
            base = start + timedelta(minutes=c)
            for seq in range(1, count + 1):
                assistant = seq % 2 == 0
                rows.append(
                    {
                        "conversation_id": chat_id,
                        "seq": seq,
                        "id": uuid.uuid5(chat_id, str(seq)),
                        "role": "assistant" if assistant else "user",
                        "content": " ".join(words[(seq + c + k) % len(words)] for k in range(40)),
                        "intent": None,
                        "metadata": {"turn": seq, "tags": ["a", "b"]} if seq % 10 == 0 else None,
                        "model": "gpt-4o-mini" if assistant else None,
                        "input_tokens": 100 + seq if assistant else None,
                        "output_tokens": 50 + c % 300 if assistant else None,
                        "cost": Decimal(seq * 7 + c) / Decimal(10**7) if assistant else None,
                        "latency_ms": 900 + seq if assistant else None,
                        "request_id": f"req-{c}-{seq}" if assistant else None,
                        "idempotency_key": None,
                        "created_at": base + timedelta(microseconds=seq * 1001),
                        "parent_seq": seq - 1 if seq > 1 else None,
                        "depth": seq - 1,
                        "sibling_index": 0,
                        "on_active_path": True,
                        "status": "completed",
                    }
                )
            written += count
            last = base + timedelta(microseconds=count * 1001)
            threads.append(
                {
                    "id": chat_id,
                    "owner_id": people[c % len(people)]["id"],
                    "title": f"Conversation {c}",
                    "intent": None,
                    "status": "active",
                    "message_count": count,
                    "last_message_at": last,
                    "last_activity_at": last,
                    "archived_at": None,
                    "metadata": None,
                    "created_at": base,
                    "updated_at": last,
                    "active_leaf_seq": count,
                    "path_length": count,
                    "forked_from_conversation_id": None,
                    "forked_from_message_id": None,
                }
            )
        bulk_insert(conn, conversations, threads)
        bulk_insert(conn, messages_table, rows)
    engine.dispose()
