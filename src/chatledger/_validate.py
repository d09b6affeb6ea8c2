"""Input policy: the same on every backend, applied before anything is written.

- Text must be ``str``. It may not contain NUL (``\\x00``): PostgreSQL cannot store it, so no
  backend accepts it. It must be encodable as UTF-8 (no lone surrogates).
- Every text field has a maximum length in characters; message content's is configurable.
- JSON metadata must be a mapping that serialises to standard JSON (no NaN/Infinity, no NUL
  anywhere), within a size limit.
- Counts (tokens, latency) are integers from 0 to 2**31-1. ``bool`` is not an integer here.
- Cost is an exact, non-negative decimal below one billion with at most 9 digits after the
  point; ``float`` is accepted through its shortest repr (``0.1`` means ``Decimal("0.1")``).

Every violation raises :class:`~chatledger.errors.ValidationError` naming the field and limit.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from ._schema import INT32_MAX, TOKEN_AMOUNT_MAX
from ._types import MONEY_SCALE, canonical_decimal
from .errors import ValidationError
from .records import ANONYMOUS_USER_ID

__all__ = ["Id", "Limits"]

#: An id argument: a UUID or its string form.
Id = uuid.UUID | str

#: Amounts must stay below this, on every backend (SQLite keeps billionths in a 64-bit integer).
_MONEY_MAX: Final = Decimal(10) ** 9


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits for what callers may store. Column sizes (titles, names, keys) are fixed by the
    schema; these are the limits of the unbounded columns."""

    #: Maximum characters of message content. MariaDB's ``max_allowed_packet`` (16 MiB by
    #: default) must hold 4 bytes per character of this.
    max_content_chars: int = 1_000_000
    #: Maximum size of a JSON metadata document, in bytes of its compact UTF-8 serialisation.
    max_metadata_bytes: int = 1_048_576
    #: Largest page a listing may ask for.
    max_page_size: int = 1000
    #: Maximum characters of one flushed batch of a streaming reply (``streams.delta``).
    max_delta_chars: int = 100_000
    #: Most items one batch call may write (``append_many``, ``bulk_upsert``, ``add_many``).
    max_batch_size: int = 10_000
    #: Deepest nesting of objects and arrays in a JSON document (``{"a": 1}`` is 1 deep). The
    #: same on every backend: MariaDB's JSON check refuses documents nested 32 deep or more.
    max_json_depth: int = 30
    #: Refuse e-mail addresses in special-use or reserved domains (``corp.local``,
    #: ``example.test``). Off by default: internal domains are common for staff accounts.
    strict_email_domains: bool = False


def text(field: str, value: object, max_chars: int) -> str:
    """A required string within ``max_chars`` characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if len(value) > max_chars:
        raise ValidationError(
            field, f"{len(value):,} characters exceeds the limit of {max_chars:,}", limit=max_chars
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(field, "is not valid UTF-8 (lone surrogate)") from None
    if "\x00" in value:
        raise ValidationError(field, "contains a NUL character, which no backend stores")
    return value


def optional_text(field: str, value: object, max_chars: int) -> str | None:
    """``None``, or a string within ``max_chars`` characters."""
    return None if value is None else text(field, value, max_chars)


def nonblank(field: str, value: object, max_chars: int) -> str:
    """A string that is not empty or only white space, stripped."""
    stripped = text(field, value, max_chars).strip()
    if not stripped:
        raise ValidationError(field, "must not be blank")
    return stripped


def choice(field: str, value: object, allowed: Collection[str]) -> str:
    """One of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(sorted(allowed))
        raise ValidationError(field, f"{value!r} is not one of: {options}", limit=tuple(allowed))
    return value


def count(field: str, value: object) -> int | None:
    """``None`` or an integer from 0 to 2**31-1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if not 0 <= value <= INT32_MAX:
        raise ValidationError(
            field, f"{value} is outside 0..{INT32_MAX}", limit=0 if value < 0 else INT32_MAX
        )
    return value


def page_size(field: str, value: object, limits: Limits) -> int:
    """An integer from 1 to ``limits.max_page_size``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if not 1 <= value <= limits.max_page_size:
        raise ValidationError(
            field,
            f"{value} is outside 1..{limits.max_page_size}",
            limit=limits.max_page_size,
        )
    return value


def paging(
    decode: Callable[[str, str | None], list[Any] | None],
    after: str | None,
    before: str | None,
    limit: object,
    limits: Limits,
) -> dict[str, Any]:
    """The keyset arguments of a page operation (``after``, ``before``, ``limit``): at most one
    cursor, read back by the listing's ``decode``, and a page size (:func:`page_size`)."""
    if after is not None and before is not None:
        raise ValidationError("before", "give after or before, not both")
    return {
        "after": decode("after", after),
        "before": decode("before", before),
        "limit": page_size("limit", limit, limits),
    }


def money(field: str, value: object) -> Decimal | None:
    """``None`` or an exact non-negative decimal with at most ``MONEY_SCALE`` decimals."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(field, "must be a decimal number, not bool")
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError(field, "must be finite")
            amount = Decimal(repr(value))
        elif isinstance(value, Decimal | int | str):
            amount = Decimal(value)
        else:
            raise ValidationError(field, f"must be a decimal number, not {type(value).__name__}")
    except InvalidOperation:
        raise ValidationError(field, f"{value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise ValidationError(field, "must be finite")
    if amount < 0:
        raise ValidationError(field, "must not be negative", limit=0)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MONEY_SCALE:
        raise ValidationError(
            field, f"has more than {MONEY_SCALE} digits after the point", limit=MONEY_SCALE
        )
    if amount >= _MONEY_MAX:
        raise ValidationError(field, f"must be below {_MONEY_MAX}", limit=_MONEY_MAX)
    return canonical_decimal(amount)


def _check_json_strings(field: str, value: object) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError(field, "contains a NUL character, which no backend stores")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_json_strings(field, key)
            _check_json_strings(field, item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json_strings(field, item)


def metadata(field: str, value: object, limits: Limits) -> dict[str, Any] | None:
    """``None`` or a JSON object within ``limits.max_metadata_bytes``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a mapping, not {type(value).__name__}")
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, f"is not JSON-serialisable: {exc}") from None
    try:
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(field, "is not valid UTF-8 (lone surrogate)") from None
    if size > limits.max_metadata_bytes:
        raise ValidationError(
            field,
            f"{size:,} bytes of JSON exceeds the limit of {limits.max_metadata_bytes:,}",
            limit=limits.max_metadata_bytes,
        )
    if "\\u0000" in encoded:
        _check_json_strings(field, value)
    result: dict[str, Any] = json.loads(encoded)
    if _depth(result, limits.max_json_depth) > limits.max_json_depth:
        raise ValidationError(
            field,
            f"JSON nested deeper than the limit of {limits.max_json_depth} levels",
            limit=limits.max_json_depth,
        )
    return result


def _depth(document: Any, ceiling: int) -> int:
    """How deep objects and arrays nest in ``document`` (stops counting past ``ceiling``)."""
    deepest = 0
    level: list[Any] = [document]
    while level and deepest <= ceiling:
        deepest += 1
        children: list[Any] = []
        for node in level:
            values = node.values() if isinstance(node, dict) else node
            children.extend(child for child in values if isinstance(child, dict | list))
        level = children
    return deepest


#: A host name of letters, digits and hyphens in dot-separated labels (internal domains).
_HOST: Final = re.compile(r"(?i)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")


def email(field: str, value: object, max_chars: int, *, strict: bool = False) -> str | None:
    """``None`` or a syntactically valid address, normalised: trimmed and lower-cased.
    Internal domains (``corp.local``, one-label hosts) are accepted unless ``strict``
    (``Limits.strict_email_domains``)."""
    if value is None:
        return None
    raw = text(field, value, max_chars).strip()
    from email_validator import EmailNotValidError, validate_email  # ~30 ms: imported on use

    try:
        checked = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        local, at, domain = raw.rpartition("@")
        if strict or not at or not _HOST.fullmatch(domain):
            raise ValidationError(field, f"is not a valid email address: {exc}") from None
        # Not a public domain: check the local part alone, against a public one.
        try:
            checked_local = validate_email(f"{local}@example.com", check_deliverability=False)
        except EmailNotValidError as local_exc:
            raise ValidationError(field, f"is not a valid email address: {local_exc}") from None
        return f"{checked_local.local_part}@{domain}".lower()
    return checked.normalized.lower()


def optional_aware_datetime(field: str, value: object) -> datetime | None:
    """``None`` or a timezone-aware datetime, converted to UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(field, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, "must be timezone-aware")
    return value.astimezone(UTC)


def identifier(field: str, value: object) -> uuid.UUID:
    """A UUID, or its string form."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError(field, f"{value!r} is not a valid id (a UUID)")


def flag(field: str, value: object) -> bool:
    """A boolean option: ``True`` or ``False``, nothing that merely looks like one."""
    if not isinstance(value, bool):
        raise ValidationError(field, f"must be true or false, not {type(value).__name__}")
    return value


def acting_user(field: str, value: object) -> uuid.UUID:
    """A user id that can act (a user scope, an API key): any id but the anonymous owner's,
    whose conversations only the unscoped ledger may see."""
    key = identifier(field, value)
    if key == ANONYMOUS_USER_ID:
        raise ValidationError(
            field, "is the anonymous owner: its conversations are for the unscoped ledger only"
        )
    return key


def order(value: object) -> Literal["asc", "desc"]:
    """A listing order: ``"asc"`` or ``"desc"``."""
    if value == "asc":
        return "asc"
    if value == "desc":
        return "desc"
    raise ValidationError("order", f"{value!r} is not one of: asc, desc")


def token_amount(field: str, value: object, *, minimum: int = 1) -> int:
    """An integer number of tokens from ``minimum`` to ``2**53``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValidationError(field, f"{value} is below {minimum}", limit=minimum)
    if value > TOKEN_AMOUNT_MAX:
        raise ValidationError(
            field, f"{value} exceeds the limit of {TOKEN_AMOUNT_MAX:,}", limit=TOKEN_AMOUNT_MAX
        )
    return value
