"""The README's Python blocks and the demo run as they are.

Each fenced ``python`` block of README.md runs in its own interpreter against a fresh SQLite
database (``CHATLEDGER_DATABASE_URL``), with warnings as errors except the SQLite WAL-reset
warning, which this machine's SQLite may issue. The block is padded with blank lines so that
line numbers in a traceback are README.md's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEMO = ROOT / "examples" / "demo.py"
#: Warnings fail the blocks, as in the test suite, except the WAL-reset one (matched by the
#: start of its message: a -W category must be importable before chatledger is).
WARNINGS = "error,ignore:the linked SQLite library:Warning"
#: Variables that select or tune a database: removed so that only the test's URL counts.
CONFIG_PREFIXES = ("CHATLEDGER_", "DATABASE_", "DB_", "MARIADB_", "SQL_ECHO")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
TIMEOUT = 120


class Block(NamedTuple):
    number: int  # 1-based
    line: int  # of the opening fence, 1-based
    code: str


def closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence``."""
    mark = line.strip()
    return len(mark) >= len(fence) and set(mark) == {fence[0]}


def python_blocks(text: str) -> list[Block]:
    """The fenced ``python`` blocks of a Markdown document, in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, start = opening["fence"], i
        i += 1
        body: list[str] = []
        while i < len(lines) and not closes(lines[i], fence):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if opening["info"].lower() in ("python", "py", "python3"):
            blocks.append(Block(len(blocks) + 1, start + 1, "\n".join(body) + "\n"))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    env["CHATLEDGER_DATABASE_URL"] = database_url
    env["PYTHONWARNINGS"] = WARNINGS
    return env


def run_docs_page(page: Path, tmp_path: Path) -> str:
    """Run each ``python`` block of a docs page, in order, against one fresh SQLite database
    with this checkout's chatledger; fail with the block's line on an error. Their output."""
    import chatledger

    blocks = python_blocks(page.read_text(encoding="utf-8"))
    assert blocks, f"{page.name} has no python example"
    source = str(Path(chatledger.__file__).resolve().parent.parent)
    output: list[str] = []
    for block in blocks:
        script = tmp_path / f"block{block.number}.py"
        script.write_text("\n" * (block.line) + block.code)
        env = environment(f"sqlite:///{tmp_path / 'docs.db'}")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"{page.name} line {block.line}:\n{result.stderr}"
        output.append(result.stdout)
    return "".join(output)


def run(args: list[str], cwd: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=environment(database_url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 2, "README.md should show the sync and async quickstarts"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{b.number}-line-{b.line}" for b in BLOCKS])
def test_readme_block_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / f"readme_block_{block.number}.py"
    script.write_text("\n" * block.line + block.code, encoding="utf-8")

    result = run([str(script)], tmp_path, f"sqlite:///{tmp_path / 'readme.db'}")

    assert result.returncode == 0, (
        f"README.md block {block.number} (line {block.line}) exited {result.returncode}; "
        f"traceback line numbers are README.md's\n--- stderr ---\n{result.stderr}"
        f"--- stdout ---\n{result.stdout}"
    )


def test_demo_prints_the_transcript(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    url = f"sqlite:///{database}"

    first = run([str(DEMO), "--url", url], tmp_path, "sqlite:///unused.db")
    second = run([str(DEMO), "--url", url], tmp_path, "sqlite:///unused.db")

    for result in (first, second):
        assert result.returncode == 0, f"--- stderr ---\n{result.stderr}"
    out = first.stdout
    assert f"database:     {url}" in out
    assert re.search(r"^#1 +user +\S", out, re.MULTILINE), out
    assert re.search(r"^#4 +assistant +\S", out, re.MULTILINE), out
    assert re.search(r"\[gpt-4o-mini · \d+ in / \d+ out tokens · \$[\d.]+ · \d+ ms\]", out), out
    assert "messages:     4" in out
    assert re.search(r"total cost: +\$0\.0000\d+$", out, re.MULTILINE), out
    assert "this user's conversations so far: 1" in out
    assert "this user's conversations so far: 2" in second.stdout
    assert database.exists()
    assert not (tmp_path / "unused.db").exists()
