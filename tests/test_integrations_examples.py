"""The runnable examples of docs/integrations/ run, on SQLite, with warnings as errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "integrations").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(example, tmp_path):
    # Warnings are errors, but this machine's SQLite predates the WAL-reset fix (that warning
    # has its own test in tests/test_sqlite.py).
    runner = (
        "import runpy, sys, warnings\n"
        "from chatledger import SQLiteWALResetBugWarning\n"
        "warnings.simplefilter('error')\n"
        "warnings.filterwarnings('ignore', category=SQLiteWALResetBugWarning)\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    result = subprocess.run(
        [sys.executable, "-c", runner, str(example), "--url", url],
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
