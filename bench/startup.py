"""Start-up time: ``import chatledger`` and ``chatledger --help`` against ``import sqlalchemy``.

    .venv/bin/python -m bench.startup [--rounds 15]

Each round starts a fresh interpreter for each command, in an order rotated round by round
(interleaved, so a change of load hits every command alike), and times it from spawn to exit.
Prints the median of each command, its ratio to ``import sqlalchemy`` (chatledger's one
unavoidable dependency) and the targets: ``import chatledger`` <= 1.5x, ``chatledger --help``
<= 2.5x. ``from chatledger import Ledger`` (the first line of most programs) is shown too.
Exits 1 when a target is missed. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

EXECUTABLE = str(Path(sys.executable).parent / "chatledger")
BASELINE = "import sqlalchemy"
#: name -> the command it times.
COMMANDS: dict[str, list[str]] = {
    BASELINE: [sys.executable, "-c", "import sqlalchemy"],
    "import chatledger": [sys.executable, "-c", "import chatledger"],
    "from chatledger import Ledger": [sys.executable, "-c", "from chatledger import Ledger"],
    "chatledger --help": [EXECUTABLE, "--help"],
}
#: name -> the largest ratio to the baseline's median that meets the target.
TARGETS = {"import chatledger": 1.5, "chatledger --help": 2.5}


def _time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=os.environ)
    return time.perf_counter() - started


def measure(rounds: int) -> dict[str, list[float]]:
    """Seconds per run of each command, ``rounds`` runs each, interleaved."""
    names = list(COMMANDS)
    for name in names:  # warm the file cache and the bytecode cache first
        _time(COMMANDS[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_time(COMMANDS[name]))
    return times


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, and return 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="runs of each command")
    args = parser.parse_args(argv)
    times = measure(args.rounds)
    base = statistics.median(times[BASELINE])
    missed = False
    print(f"{'command':<32} {'median ms':>10} {'x sqlalchemy':>13}  target")
    for name, runs in times.items():
        median = statistics.median(runs)
        ratio = median / base
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            met = ratio <= target
            missed = missed or not met
            verdict = f"<= {target}x: {'met' if met else 'MISSED'}"
        print(f"{name:<32} {median * 1000:>10.1f} {ratio:>13.2f}  {verdict}")
    print(f"({args.rounds} interleaved rounds; {sys.executable})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
