"""Identifiers: UUIDv7 (RFC 9562), which sort by creation time, millisecond first."""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7

__all__ = ["new_id"]


def new_id() -> uuid.UUID:
    """A new time-ordered UUID (version 7)."""
    return uuid7()
