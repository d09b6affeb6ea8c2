"""``python -m bench.saver`` runs (ChatledgerSaver against the official saver, per turn).

Nothing here looks at a timing: the run is tiny and only its report's shape is checked, and
the statement count, which is not a timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langgraph.checkpoint.sqlite")

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(300)


def test_saver_benchmark_runs_on_sqlite() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = ["--backends", "sqlite", "--turns", "4", "--block", "2", "--thread-turns", "10"]
    completed = subprocess.run(
        [sys.executable, "-m", "bench.saver", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    (row,) = [line for line in completed.stdout.splitlines() if line.startswith("sqlite")]
    fields = row.split()
    assert fields[1] == "SqliteSaver"
    # Statements / transactions of one ChatledgerSaver turn of a warm thread: 19 / 6 on SQLite
    # (issue 21; it was 50 / 6).
    statements, transactions = fields[-4], fields[-2]
    assert (statements, transactions) == ("19", "6"), row
