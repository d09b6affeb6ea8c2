"""The runnable examples of docs/integrations/ run, on SQLite, with warnings as errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "integrations").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(example, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            # This machine's SQLite predates the WAL-reset fix (tests/test_sqlite.py covers it).
            "-W",
            "ignore::chatledger.errors.SQLiteWALResetBugWarning",
            str(example),
            "--url",
            f"sqlite:///{tmp_path / 'chat.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_every_example_is_documented():
    docs = Path(__file__).parent.parent / "docs" / "integrations"
    text = "".join(page.read_text() for page in docs.glob("*.md"))
    for example in EXAMPLES:
        assert f"examples/integrations/{example.name}" in text, example.name
