"""Opaque keyset cursors.

A cursor is the sort key of one row, tagged with the kind of listing it belongs to and encoded
as URL-safe base64 JSON. It carries no secret; it only marks a position. A cursor from another
kind of listing, or a mangled one, is rejected with a ValidationError naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .errors import ValidationError

__all__ = ["ID", "INTEGER", "TEXT", "TIME", "Decoder", "decode", "decoder", "encode"]

#: Decodes the ``after``/``before`` cursor of one listing: ``decode_cursor(field, cursor)``
#: is ``None`` for ``None``, else the row's sort key, typed.
Decoder = Callable[[str, "str | None"], "list[Any] | None"]


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


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _id(value: Any) -> uuid.UUID:
    return uuid.UUID(_text(value))


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(_text(value))


#: How each part of a sort key is read back: an integer, a string, a UUID, a timestamp.
INTEGER, TEXT, ID, TIME = _integer, _text, _id, _time


def decoder(kind: str, *parts: Callable[[Any], Any]) -> Decoder:
    """The cursor decoder of a listing of ``kind`` whose sort key has ``parts``; a part that
    does not read back raises ValidationError naming the field."""

    def decode_cursor(field: str, cursor: str | None) -> list[Any] | None:
        if cursor is None:
            return None
        key = decode(field, kind, cursor, len(parts))
        try:
            return [part(value) for part, value in zip(parts, key, strict=True)]
        except (TypeError, ValueError):
            raise ValidationError(field, "is not a valid cursor") from None

    return decode_cursor
