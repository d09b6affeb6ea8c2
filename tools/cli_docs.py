"""Write docs/cli.md, the command-line reference, from the Typer app's own help texts
(``typer chatledger.cli utils docs``). tests/test_cli_commands.py fails when it is stale.

    .venv/bin/python tools/cli_docs.py            # rewrite docs/cli.md
    .venv/bin/python tools/cli_docs.py --output x # write elsewhere
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Generate the reference."""
    parser = argparse.ArgumentParser(description="Generate docs/cli.md.")
    parser.add_argument("--output", default=str(ROOT / "docs" / "cli.md"))
    args = parser.parse_args()
    command = [sys.executable, "-m", "typer", "chatledger.cli", "utils", "docs"]
    command += [
        "--name",
        "chatledger",
        "--title",
        "chatledger command line",
        "--output",
        args.output,
    ]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)


if __name__ == "__main__":
    main()
