"""Measure `chatledger copy`: generate an SQLite database of N messages, copy it into each
target URL (which must name an empty database) and print the rates.

    .venv/bin/python tools/copy_rate.py --messages 100000 \\
        postgresql+psycopg://postgres@127.0.0.1:5432/copy_rate \\
        mysql+pymysql://root@127.0.0.1:3306/copy_rate
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatledger import transfer  # noqa: E402
from tests._transfer_data import generate_database  # noqa: E402


def main() -> None:
    """Generate, copy, print."""
    parser = argparse.ArgumentParser(description="Measure chatledger copy rates.")
    parser.add_argument("targets", nargs="+", help="URLs of empty target databases")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=transfer.DEFAULT_BATCH_SIZE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        source = f"sqlite:///{Path(scratch) / 'source.db'}"
        started = time.perf_counter()
        generate_database(source, messages=args.messages)
        print(f"generated {args.messages:,} messages in {time.perf_counter() - started:.1f} s")
        for target in args.targets:
            marks: dict[str, float] = {}

            def progress(
                task: str, done: int, total: int | None, marks: dict[str, float] = marks
            ) -> None:
                marks.setdefault(task, time.perf_counter())
                marks["last"] = time.perf_counter()

            report = transfer.copy_database(
                source, target, batch_size=args.batch_size, backup=False, progress=progress
            )
            copy_seconds = marks.get("verify", marks["last"]) - min(marks.values())
            print(
                f"{report.target}: ok={report.ok} rows={report.rows_copied:,} "
                f"messages={report.copied['messages']:,}; whole run {report.seconds:.1f} s "
                f"({report.rows_per_second:,.0f} rows/s, {report.messages_per_second:,.0f} "
                f"messages/s, verification included); copy phase {copy_seconds:.1f} s "
                f"({report.rows_copied / copy_seconds:,.0f} rows/s); "
                f"verification {report.seconds - copy_seconds:.1f} s"
            )


if __name__ == "__main__":
    main()
