"""Reading the files ``import_data`` is given, so that every unreadable one is a
:class:`~chatledger.errors.ValidationError` naming the file and the problem.

Text is UTF-8 (a leading byte-order mark is allowed). A ZIP archive is read as the ChatGPT
export it usually is (its ``conversations.json``, or the ``conversations-NNN.json`` parts newer
exports split it into). An SQLite database, a binary file, text in another encoding and
malformed JSON are refused with one sentence each.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any, Final, TextIO

from .errors import ValidationError

__all__ = ["is_zip", "load_document", "open_text", "read_head"]

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
#: How much of a file is looked at to tell text from binary.
_SNIFF: Final = 8192
#: Control characters that plain text holds (tab, line feed, form feed, carriage return).
_TEXT_CONTROLS: Final = frozenset(b"\t\n\x0c\r")


def _refuse_binary(name: str, head: bytes) -> None:
    """Refuse an SQLite database or another binary file from its first bytes."""
    if head.startswith(_SQLITE_MAGIC):
        raise ValidationError(
            name,
            "is an SQLite database, not an import file (to move a database into another one, "
            "use `chatledger copy sqlite:///FILE TARGET_URL`)",
        )
    if b"\x00" in head:
        raise ValidationError(name, "is a binary file, not JSON or JSON lines")


def _not_utf8(name: str, exc: UnicodeDecodeError, *, whole: bool = True) -> ValidationError:
    bad = exc.object[exc.start : exc.start + 1].hex()
    where = f" at offset {exc.start}" if whole else ""
    return ValidationError(
        name,
        f"is not UTF-8 text (byte 0x{bad}{where}; Latin-1 or Windows-1252 perhaps): "
        "save it as UTF-8 and import it again",
    )


def _decode(name: str, raw: bytes) -> str:
    head = raw[:_SNIFF]
    _refuse_binary(name, head)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Text in a legacy encoding has (almost) no control characters; binary data has many.
        controls = sum(1 for byte in head if byte < 32 and byte not in _TEXT_CONTROLS)
        if controls * 100 > len(head):
            raise ValidationError(name, "is a binary file, not JSON or JSON lines") from None
        raise _not_utf8(name, exc) from None


def _parse(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(name, f"is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValidationError(name, "is nested too deeply to read") from None


def is_zip(name: str) -> bool:
    """Whether the file is a ZIP archive."""
    return zipfile.is_zipfile(name)


def _chatgpt_zip(name: str) -> Any:
    """The conversations of a ChatGPT export ZIP: ``conversations.json``, or the
    ``conversations-NNN.json`` parts joined in order."""
    try:
        with zipfile.ZipFile(name) as archive:
            members = [
                info
                for info in archive.infolist()
                if not info.is_dir() and _is_conversations(PurePosixPath(info.filename).name)
            ]
            if not members:
                raise ValidationError(
                    name,
                    "is a ZIP archive without conversations.json: not a ChatGPT export "
                    "(extract the file to import and give it instead)",
                )
            members.sort(key=lambda info: info.filename)
            parts = []
            for info in members:
                where = f"{name}: {info.filename}"
                parts.append(_parse(where, _decode(where, archive.read(info))))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise ValidationError(name, f"is a damaged or unsupported ZIP archive ({exc})") from None
    if len(parts) == 1:
        return parts[0]
    joined: list[Any] = []
    for member, part in zip(members, parts, strict=True):
        if not isinstance(part, list):
            raise ValidationError(f"{name}: {member.filename}", "must hold a list of conversations")
        joined.extend(part)
    return joined


def _is_conversations(basename: str) -> bool:
    if basename == "conversations.json":
        return True
    stem = basename.removeprefix("conversations-").removesuffix(".json")
    return basename.startswith("conversations-") and basename.endswith(".json") and stem.isdigit()


def load_document(name: str) -> Any:
    """The JSON document in the file (or in a ChatGPT export ZIP)."""
    if is_zip(name):
        return _chatgpt_zip(name)
    with open(name, "rb") as stream:
        raw = stream.read()
    return _parse(name, _decode(name, raw))


def read_head(name: str, limit: int) -> str | None:
    """The file's first line (at most ``limit`` characters) when it is UTF-8 text; None for
    a ZIP archive, a binary file or other encodings (:func:`load_document` says why)."""
    if is_zip(name):
        return None
    with open(name, "rb") as stream:
        head = stream.read(limit * 4)
    try:
        _refuse_binary(name, head[:_SNIFF])
    except ValidationError:
        return None
    text = head.decode("utf-8-sig", errors="replace")
    return text.split("\n", 1)[0][:limit]


@contextmanager
def open_text(name: str) -> Iterator[TextIO]:
    """The file opened as UTF-8 text (a byte-order mark skipped); a decoding error while it is
    read becomes a :class:`ValidationError` naming the file."""
    try:
        with open(name, encoding="utf-8-sig", newline=None) as stream:
            yield stream
    except UnicodeDecodeError as exc:
        raise _not_utf8(name, exc, whole=False) from None
