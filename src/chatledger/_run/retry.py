"""How transient failures are retried: the whole transaction, with capped exponential backoff
and full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["OpenWait", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry transient failures up to ``attempts`` times in all (1 disables retrying), sleeping a
    random time between 0 and ``min(max_delay, base_delay * 2**(n-1))`` before retry ``n``."""

    attempts: int = 6
    base_delay: float = 0.02
    max_delay: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay(self, failures: int) -> float | None:
        """Seconds to wait after ``failures`` failed attempts, or ``None`` to give up."""
        if failures >= self.attempts:
            return None
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        return random.uniform(0, ceiling)


#: The longest pause between two attempts of a first open.
_OPEN_MAX_DELAY = 5.0


@dataclass(frozen=True, slots=True)
class OpenWait:
    """How the first open waits for a database it cannot reach yet (a server still starting):
    it tries again after ``first_delay`` seconds, doubling each time up to 5 s, until
    ``timeout`` seconds have passed and at least ``retries`` retries were made."""

    timeout: float = 0.0
    retries: int = 0
    first_delay: float = 0.1

    def delay(self, failures: int, elapsed: float) -> float | None:
        """Seconds to wait after ``failures`` failed opens, ``elapsed`` seconds after the
        first began, or ``None`` to give up."""
        owed = failures <= self.retries
        if elapsed >= self.timeout and not owed:
            return None
        pause = min(_OPEN_MAX_DELAY, self.first_delay * 2.0 ** (failures - 1))
        return pause if owed else max(0.0, min(pause, self.timeout - elapsed))
