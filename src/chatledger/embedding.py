"""Embedders: what turns text into vectors for :meth:`chatledger.Knowledge.retrieve`.

chatledger never calls a model itself. An embedder is any callable that takes a list of texts
and returns one vector (a sequence of floats) per text, or an awaitable of that list; the
application passes its own (a local model, an API client). :class:`HashingEmbedder` is a
small deterministic one for tests and examples: no model, no download, stable across runs
and machines.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeAlias

__all__ = ["Embedder", "HashingEmbedder"]

#: A callable from texts to one vector each (or an awaitable of them).
Embedder: TypeAlias = Callable[
    [list[str]], Sequence[Sequence[float]] | Awaitable[Sequence[Sequence[float]]]
]

_WORD: Final = re.compile(r"[^\W_]+")


class HashingEmbedder:
    """The hashing trick: each lower-cased word (and each pair of neighbouring words) adds
    ±1 to the coordinate its BLAKE2b hash picks; the vector is then scaled to length 1.
    Texts sharing words get similar vectors (cosine), which is enough for tests and demos,
    not for semantic search."""

    def __init__(self, dimension: int = 256) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise ValueError("dimension must be a positive integer")
        self.dimension = dimension

    def __call__(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text (a text without words gives the zero vector)."""
        return [self.embed(text) for text in texts]

    def embed(self, text: str) -> list[float]:
        """The vector of one text."""
        words = [word.lower() for word in _WORD.findall(text)]
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        vector = [0.0] * self.dimension
        for feature in features:
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vector[value % self.dimension] += 1.0 if value >> 63 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector] if norm else vector
