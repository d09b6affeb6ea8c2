"""Generate the synchronous surface from the asynchronous source.

    python tools/generate_sync.py               # write src/chatledger/_sync/<file> for each file
    python tools/generate_sync.py _tokens.py    # only the files named
    python tools/generate_sync.py --check       # exit 1 if _sync/ is not exactly what this writes

Every module of ``src/chatledger/_async/`` is generated into ``src/chatledger/_sync/``, and
nothing else lives there: the check fails when a generated file is missing, stale or extra.
Token-level rewriting by ``unasync`` (python-trio): ``async``/``await`` disappear, and the names
below are replaced by their synchronous twins, in code and in docstrings and comments (where
"asynchronous" also becomes "synchronous"). The output is formatted with ruff, so the check
compares like with like.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import unasync

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "chatledger" / "_async"
TARGET = ROOT / "src" / "chatledger" / "_sync"
REPLACEMENTS = {
    "AsyncLedger": "Ledger",
    "AsyncUserScope": "UserScope",
    "AsyncUsers": "Users",
    "AsyncConversations": "Conversations",
    "AsyncMessages": "Messages",
    "AsyncTrees": "Trees",
    "AsyncStreams": "Streams",
    "AsyncStreamWriter": "StreamWriter",
    "AsyncTools": "Tools",
    "AsyncMessageFeedback": "MessageFeedback",
    "AsyncProductFeedbackForms": "ProductFeedbackForms",
    "AsyncCitations": "Citations",
    "AsyncUsage": "Usage",
    "AsyncVisitors": "Visitors",
    "AsyncSurveys": "Surveys",
    "AsyncTokens": "Tokens",
    "AsyncAuditLog": "AuditLog",
    "AsyncKnowledge": "Knowledge",
    "AsyncSearch": "Search",
    "AsyncApiKeys": "ApiKeys",
    "AsyncAuditLogger": "AuditLogger",
    "AsyncConversationMemory": "ConversationMemory",
    "AsyncIdempotentRequests": "IdempotentRequests",
    "AsyncDatabase": "Database",
    "AsyncTransaction": "Transaction",
    "_AsyncCore": "_Core",
    "_AsyncStore": "_Store",
    "_AsyncReplicas": "_Replicas",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    # The runtime's twins in ``_run/``.
    "compat_async": "compat_sync",
    "database_async": "database_sync",
    "open_async": "open_sync",
}
#: Rewrites of docstrings and comments beyond the names: (pattern, replacement).
PROSE = [
    (re.compile(r"\b(?:async|await) (?=\w)"), ""),
    (re.compile(r"\ban asynchronous\b"), "a synchronous"),
    (re.compile(r"\bAn asynchronous\b"), "A synchronous"),
    (re.compile(r"\basynchronous\b"), "synchronous"),
    (re.compile(r"\bAsynchronous\b"), "Synchronous"),
]
HEADER = (
    "# This file is generated from ../_async/{name} by tools/generate_sync.py: do not edit it.\n"
    "# Edit the asynchronous source and run `make generate`.\n"
)
_NAME = re.compile(r"\b\w+\b")


class _Rule(unasync.Rule):  # type: ignore[misc]
    """unasync's rule, which also rewrites the prose of docstrings and comments."""

    def _unasync_tokens(self, tokens: Any) -> Iterator[Any]:
        for token in super()._unasync_tokens(tokens):
            if token.name in ("STRING", "COMMENT"):
                token = token._replace(src=self._unasync_prose(token.src))
            yield token

    def _unasync_prose(self, text: str) -> str:
        text = _NAME.sub(lambda match: self._unasync_name(match.group()), text)
        for pattern, replacement in PROSE:
            text = pattern.sub(replacement, text)
        return text


def sources() -> list[str]:
    """Every module of ``_async/``: each one is generated."""
    return sorted(path.name for path in SOURCE.glob("*.py"))


def generate(out_dir: Path, files: list[str] | None = None) -> list[Path]:
    """Write the generated twins of ``files`` (default: all) into ``out_dir``; return them."""
    files = sources() if files is None else files
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "_async"
        work.mkdir()
        for name in files:
            (work / name).write_text((SOURCE / name).read_text())
        rule = _Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
        unasync.unasync_files([str(work / name) for name in files], rules=[rule])
        outputs = []
        for name in files:
            text = (Path(scratch) / "_sync" / name).read_text()
            target = out_dir / name
            target.write_text(HEADER.format(name=name) + text)
            outputs.append(target)
    subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--fix-only", "--quiet", *map(str, outputs)],
        check=True,
        cwd=ROOT,
    )
    subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--quiet", *map(str, outputs)],
        check=True,
        cwd=ROOT,
    )
    return outputs


def drift(target: Path = TARGET) -> list[str]:
    """How ``target`` differs from what :func:`generate` writes: a unified diff per stale or
    missing file, a line per extra file. Empty when they match."""
    problems = []
    with tempfile.TemporaryDirectory() as scratch:
        fresh = {path.name: path for path in generate(Path(scratch))}
        for name, path in sorted(fresh.items()):
            committed = target / name
            old = committed.read_text() if committed.exists() else ""
            new = path.read_text()
            if old != new:
                label = str(committed) if committed.exists() else f"{committed} (missing)"
                diff = difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), label, "generated"
                )
                problems.append("".join(diff))
    for path in sorted(target.iterdir()):
        if path.name not in fresh and path.name != "__pycache__":
            problems.append(f"{path}: not generated from ../_async/ (remove it)\n")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if _sync/ drifts")
    parser.add_argument("files", nargs="*", help="files of _async/ to generate (default: all)")
    args = parser.parse_args()
    unknown = set(args.files) - set(sources())
    if unknown:
        parser.error(f"not modules of _async/: {', '.join(sorted(unknown))}")
    if not args.check:
        for path in generate(TARGET, args.files or None):
            print(f"generated {path.relative_to(ROOT)}")
        return 0
    problems = drift()
    if problems:
        sys.stdout.writelines(problems)
        print("\nthe synchronous surface is out of date: run `make generate`", file=sys.stderr)
        return 1
    print("the synchronous surface matches its asynchronous source")
    return 0


if __name__ == "__main__":
    sys.exit(main())
