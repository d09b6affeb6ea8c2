"""The HTTP service's own settings (the database's come from :class:`~chatledger.Config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from .._async._idempotency import RUNNING_TIMEOUT, TTL
from ..errors import ConfigurationError

__all__ = ["MAX_BODY_BYTES", "MAX_PAGE", "ServerSettings"]

#: The default limit of a request body: 1 MiB.
MAX_BODY_BYTES: Final = 1_048_576
#: The largest page a listing route returns (``limit`` above it is a 422).
MAX_PAGE: Final = 100


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How the HTTP service behaves. Every field has a safe default."""

    #: Largest request body in bytes; a larger one is a 413, counted on the streamed body.
    max_body_bytes: int = MAX_BODY_BYTES
    #: Origins allowed by CORS; empty (the default) turns CORS off.
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    #: An ``Idempotency-Key`` claim still ``running`` after this was left by a dead process.
    idempotency_running_timeout: timedelta = RUNNING_TIMEOUT
    #: How long a completed request is replayed for its ``Idempotency-Key``.
    idempotency_ttl: timedelta = TTL
    #: Seconds between purges of expired idempotency rows (0: never purge in the background).
    purge_interval: float = 600.0
    #: Seconds a client should wait after a 503 (``Retry-After``).
    retry_after: int = 1
    #: Seconds between sweeps of streamed replies whose writer stopped (their lease ran
    #: out), in the background of every process (0: never; sweepers never collide).
    sweep_interval: float = 30.0
    #: Seconds between ``: keep-alive`` comments on an idle Server-Sent Events response.
    stream_heartbeat: float = 15.0
    #: Seconds after which an events response ends; the client resumes with
    #: ``Last-Event-ID`` (EventSource does so by itself).
    stream_max_seconds: float = 600.0
    #: The wake-up interval of an events response where the database cannot notify
    #: (SQLite, MariaDB: a write from another process is seen within it).
    stream_poll_interval: float = 0.1
    #: Milliseconds an EventSource waits before reconnecting (the ``retry:`` field).
    stream_retry_ms: int = 1000

    def __post_init__(self) -> None:
        if isinstance(self.max_body_bytes, bool) or not (
            isinstance(self.max_body_bytes, int) and self.max_body_bytes >= 1
        ):
            raise ConfigurationError("max_body_bytes must be a positive integer")
        for origin in self.cors_origins:
            if not isinstance(origin, str) or not origin:
                raise ConfigurationError(f"invalid CORS origin: {origin!r}")
        if self.idempotency_running_timeout <= timedelta(0) or self.idempotency_ttl <= timedelta(0):
            raise ConfigurationError("idempotency timeouts must be positive")
        if self.purge_interval < 0 or self.retry_after < 0 or self.sweep_interval < 0:
            raise ConfigurationError(
                "purge_interval, sweep_interval and retry_after must not be negative"
            )
        if not (
            self.stream_heartbeat > 0
            and self.stream_max_seconds > 0
            and 0 < self.stream_poll_interval <= 60
            and self.stream_retry_ms >= 0
        ):
            raise ConfigurationError(
                "stream_heartbeat and stream_max_seconds must be positive, "
                "stream_poll_interval in (0, 60] and stream_retry_ms not negative"
            )
