"""Deterministic chat messages: the same contents for every system, cheap to produce in bulk."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

__all__ = ["MESSAGES_PER_CONVERSATION", "Msg", "message", "messages"]

#: Messages per conversation in the read stores (a long-ish chat; the last 20 are read).
MESSAGES_PER_CONVERSATION: Final = 200

_WORDS: Final = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "that",
    "is",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "at",
    "by",
    "this",
    "had",
    "not",
    "are",
    "but",
    "from",
    "or",
    "have",
    "an",
    "they",
    "which",
    "one",
    "you",
    "were",
    "her",
    "all",
    "she",
    "there",
    "would",
    "their",
    "we",
    "him",
    "been",
    "has",
    "when",
    "who",
    "will",
    "more",
    "no",
    "if",
    "out",
    "so",
    "said",
    "what",
    "up",
    "its",
    "about",
    "into",
    "than",
    "them",
    "can",
    "only",
    "other",
    "new",
    "some",
    "could",
    "time",
    "these",
    "two",
    "may",
    "then",
    "do",
    "first",
    "any",
    "my",
    "now",
    "such",
    "like",
    "our",
    "over",
    "man",
    "me",
    "even",
    "most",
    "made",
    "after",
    "also",
    "did",
    "many",
    "before",
    "must",
    "through",
    "back",
    "years",
    "where",
    "much",
    "your",
    "way",
    "well",
    "down",
    "should",
    "because",
    "each",
    "just",
    "those",
    "people",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "own",
    "see",
    "men",
    "work",
    "long",
    "get",
    "here",
    "between",
    "both",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "while",
    "last",
    "might",
    "us",
    "great",
    "old",
    "year",
    "off",
    "come",
    "since",
    "against",
    "go",
    "came",
    "right",
    "used",
    "take",
    "three",
    "model",
    "token",
    "prompt",
    "answer",
    "context",
    "window",
    "latency",
    "stream",
    "reply",
    "assistant",
    "question",
    "plan",
    "Lisbon",
    "Sintra",
    "Belem",
    "castle",
    "tram",
    "museum",
    "coffee",
    "pastry",
    "river",
    "bridge",
    "sunset",
    "hill",
    "street",
]

_POOL_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class Msg:
    """One message as an app would write it (an assistant reply carries its usage)."""

    role: str
    content: str
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: Decimal | None = None
    latency_ms: int | None = None

    def as_batch_item(self) -> dict[str, Any]:
        """The mapping ``ledger.messages.append_many`` takes."""
        item: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.model is not None:
            item.update(
                model=self.model,
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cost=self.cost,
                latency_ms=self.latency_ms,
            )
        return item


def _sentence(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words).capitalize() + "."


def _pool() -> tuple[list[Msg], list[Msg]]:
    rng = random.Random(20261122)
    users = [Msg("user", _sentence(rng, rng.randint(20, 300))) for _ in range(_POOL_SIZE)]
    replies = []
    for _ in range(_POOL_SIZE):
        input_tokens = rng.randint(50, 4000)
        output_tokens = rng.randint(20, 800)
        replies.append(
            Msg(
                "assistant",
                _sentence(rng, rng.randint(100, 900)),
                model="gpt-4o-mini",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost=Decimal(input_tokens * 150 + output_tokens * 600) / Decimal(10**9),
                latency_ms=rng.randint(200, 9000),
            )
        )
    return users, replies


_USERS, _REPLIES = _pool()


def message(index: int) -> Msg:
    """The ``index``-th message of a chat: user and assistant turns alternate."""
    pool = _USERS if index % 2 == 0 else _REPLIES
    return pool[(index // 2 * 7919) % _POOL_SIZE]


def messages(count: int, start: int = 0) -> list[Msg]:
    """``count`` consecutive messages from position ``start``."""
    return [message(i) for i in range(start, start + count)]
