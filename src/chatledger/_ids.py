"""Identifiers: UUIDv7 (RFC 9562), which sort by creation time, millisecond first."""

from __future__ import annotations

import uuid

from uuid_utils import uuid7

from ._types import uuid_from_int

__all__ = ["new_id"]


def new_id() -> uuid.UUID:
    """A new time-ordered UUID (version 7), as the standard library's ``uuid.UUID``.

    uuid_utils makes it (monotonic within a millisecond, RFC 9562); its ``compat.uuid7``
    converts with ``uuid.UUID(int=...)``, which checks what cannot be wrong and costs 1.4 µs
    against 0.5 µs here (a share of every append and of bulk imports)."""
    return uuid_from_int(uuid7().int)
