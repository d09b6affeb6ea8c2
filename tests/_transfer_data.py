"""Databases with something in every area, for the transfer and CLI tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from chatledger import Ledger

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
