"""docs/search.md runs: its Python blocks, in order, as one script on a fresh SQLite database
(the examples build on each other), with warnings as errors."""

from __future__ import annotations

from pathlib import Path

from .test_readme import ROOT, python_blocks, run

DOC = ROOT / "docs" / "search.md"


def test_the_search_page_runs(tmp_path: Path) -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    script = tmp_path / "search_doc.py"
    # Each block starts at its own line of docs/search.md, so tracebacks point into the page.
    lines: list[str] = []
    for block in blocks:
        lines += [""] * (block.line - len(lines))
        lines += block.code.splitlines()
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run([str(script)], tmp_path, f"sqlite:///{tmp_path / 'search.db'}")
    assert result.returncode == 0, f"--- stderr ---\n{result.stderr}--- stdout ---\n{result.stdout}"
