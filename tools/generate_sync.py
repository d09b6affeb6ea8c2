"""Generate the synchronous surface from the asynchronous source.

    python tools/generate_sync.py               # write src/chatledger/_sync/<file> for each file
    python tools/generate_sync.py _tokens.py    # only the files named
    python tools/generate_sync.py --check       # exit 1 if a generated file is out of date (CI)

Token-level rewriting by ``unasync`` (python-trio): ``async``/``await`` disappear, and the names
below are replaced by their synchronous twins. The output is formatted with ruff, so the check
compares like with like.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "chatledger" / "_async"
TARGET = ROOT / "src" / "chatledger" / "_sync"
#: Files of ``_async`` that are generated into ``_sync``. The rest of ``_sync`` is hand-written.
FILES = [
    "_store.py",
    "_users.py",
    "_conversations.py",
    "_messages.py",
    "_feedback.py",
    "_citations.py",
    "_usage.py",
    "_visitors.py",
    "_surveys.py",
    "_tokens.py",
    "_audit.py",
    "_knowledge.py",
    "_api_keys.py",
    "_memory.py",
    "ledger.py",
    "_idempotency.py",
]
REPLACEMENTS = {
    "AsyncLedger": "Ledger",
    "AsyncUserScope": "UserScope",
    "AsyncUsers": "Users",
    "AsyncConversations": "Conversations",
    "AsyncMessages": "Messages",
    "AsyncMessageFeedback": "MessageFeedback",
    "AsyncProductFeedbackForms": "ProductFeedbackForms",
    "AsyncCitations": "Citations",
    "AsyncUsage": "Usage",
    "AsyncVisitors": "Visitors",
    "AsyncSurveys": "Surveys",
    "AsyncTokens": "Tokens",
    "AsyncAuditLog": "AuditLog",
    "AsyncKnowledge": "Knowledge",
    "AsyncApiKeys": "ApiKeys",
    "AsyncAuditLogger": "AuditLogger",
    "AsyncConversationMemory": "ConversationMemory",
    "AsyncIdempotentRequests": "IdempotentRequests",
    "AsyncDatabase": "Database",
    "AsyncTransaction": "Transaction",
    "_AsyncCore": "_Core",
    "_AsyncStore": "_Store",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}
HEADER = (
    "# This file is generated from ../_async/{name} by tools/generate_sync.py: do not edit it.\n"
    "# Edit the asynchronous source and run `make generate`.\n"
)


def generate(out_dir: Path, files: list[str] = FILES) -> list[Path]:
    """Write the generated twins of ``files`` into ``out_dir``; return their paths."""
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "_async"
        work.mkdir()
        for name in files:
            (work / name).write_text((SOURCE / name).read_text())
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
        unasync.unasync_files([str(work / name) for name in files], rules=[rule])
        outputs = []
        for name in files:
            text = (Path(scratch) / "_sync" / name).read_text()
            text = text.replace("asynchronous surface", "synchronous surface")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated files drift")
    parser.add_argument(
        "files", nargs="*", help=f"files of _async/ to generate (default: all {len(FILES)})"
    )
    args = parser.parse_args()
    unknown = set(args.files) - set(FILES)
    if unknown:
        parser.error(f"not generated files: {', '.join(sorted(unknown))} (see FILES)")
    if not args.check:
        for path in generate(TARGET, args.files or FILES):
            print(f"generated {path.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory(dir=TARGET) as scratch:
        drifted = False
        for fresh in generate(Path(scratch)):
            committed = TARGET / fresh.name
            old = committed.read_text() if committed.exists() else ""
            new = fresh.read_text()
            if old != new:
                drifted = True
                diff = difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), str(committed), "generated"
                )
                sys.stdout.writelines(diff)
        if drifted:
            print("\nthe synchronous surface is out of date: run `make generate`", file=sys.stderr)
            return 1
    print("the synchronous surface matches its asynchronous source")
    return 0


if __name__ == "__main__":
    sys.exit(main())
