"""Opaque keyset cursors.

A cursor is the sort key of one row, tagged with the kind of listing it belongs to and encoded
as URL-safe base64 JSON. It carries no secret; it only marks a position. A cursor from another
kind of listing, or a mangled one, is rejected with a ValidationError naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .errors import ValidationError

__all__ = ["decode", "encode"]


def encode(kind: str, *key: Any) -> str:
    """The cursor for the row whose sort key is ``key``."""
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(field: str, kind: str, cursor: object, arity: int) -> list[Any]:
    """The sort key inside ``cursor``; ``field`` names the parameter in errors."""
    if not isinstance(cursor, str) or len(cursor) > 512:
        raise ValidationError(field, "is not a valid cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        raise ValidationError(field, "is not a valid cursor") from None
    if not isinstance(value, list) or len(value) != arity + 1 or value[0] != kind:
        raise ValidationError(field, f"is not a cursor of this listing ({kind})")
    return value[1:]
