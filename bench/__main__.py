"""``python -m bench``: chatledger against raw drivers and peers on SQLite, PostgreSQL and MariaDB.

    python -m bench                       quick mode (a few minutes): stores of 20k and 200k
    python -m bench --full                full mode (long): stores of 200k and 2M, more rounds
    python -m bench --smoke               a tiny run for the smoke test (seconds)
    python -m bench --backends sqlite,postgresql --only append,read --peers none

It prints a table per backend and the targets (met / missed), and writes
``bench/results/<UTC timestamp>.json``, ``bench/results/latest.json`` and the chart
``docs/benchmarks.png`` (``--chart``; smoke runs draw none unless ``--chart`` is given).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .databases import BACKENDS, SERVER_URLS, Scratches
from .harness import Settings, settings_for
from .peers import PEERS, Peer, peer_class
from .raw import REFERENCES
from .report import (
    attach_ratios,
    evaluate_targets,
    ordered,
    print_tables,
    sanitize_records,
    write_chart,
    write_json,
)
from .workloads import WORKLOADS, Runner

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="full mode: 200k and 2M stores")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated: sqlite,postgresql,mariadb (default: all)",
    )
    parser.add_argument(
        "--only", default=",".join(WORKLOADS), help=f"workloads (default: {','.join(WORKLOADS)})"
    )
    parser.add_argument(
        "--peers",
        default="all",
        help="all, none, or comma-separated: " + ",".join(p.system for p in PEERS),
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="JSON dir")
    parser.add_argument(
        "--chart", type=Path, default=None, help="PNG path (default: docs/benchmarks.png)"
    )
    parser.add_argument("--no-chart", action="store_true", help="write no chart")
    return parser


def _split(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    chosen = tuple(item.strip() for item in value.split(",") if item.strip())
    unknown = [item for item in chosen if item not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return chosen


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _describe(settings: Settings) -> str:
    def size(n: int) -> str:
        return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1000:g}k"

    text = (
        f"{settings.mode} mode: read stores of {size(settings.store_small)} and "
        f"{size(settings.store_big)} messages"
    )
    if settings.mode != "full":
        text += " (smaller than full mode's 200k and 2M)"
    return text


def _meta(settings: Settings, scratches: Scratches, backends: tuple[str, ...]) -> dict[str, Any]:
    import sqlite3

    drivers = {
        name: _version(name)
        for name in (
            "chatledger",
            "sqlalchemy",
            "psycopg",
            "psycopg-binary",
            "pymysql",
            "aiomysql",
            "uuid-utils",
            "langchain-core",
            "langchain-community",
            "langchain-postgres",
            "langgraph",
            "langgraph-checkpoint-sqlite",
            "langgraph-checkpoint-postgres",
        )
    }
    return {
        "mode": settings.mode,
        "mode_description": _describe(settings),
        "settings": {key: getattr(settings, key) for key in settings.__dataclass_fields__},
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "memory": _memory(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "servers": {
                backend: scratches.server_version(backend)
                for backend in backends
                if backend != "sqlite" and scratches.available(backend)
            },
            "packages": drivers,
        },
        "durability": {
            "sqlite": "journal_mode=WAL, synchronous=NORMAL for every system (chatledger's "
            "default; set on the raw connection and on the peers' engines/connections)",
            "postgresql": {
                "note": "server defaults for every system",
                **scratches.server_settings("postgresql"),
            },
            "mariadb": {
                "note": "server defaults for every system",
                **scratches.server_settings("mariadb"),
            },
        },
        "servers": {
            backend: SERVER_URLS[backend] for backend in backends if backend in SERVER_URLS
        },
        "references": REFERENCES,
        "ratios": {
            "vs_bare": "against raw-bare (the bare operation) of the same backend, workload "
            "and case: throughput ratio for writes (higher is better; the median of per-block "
            "ratios), p50 ratio for reads (lower is better)",
            "vs_raw": "the same against raw (raw SQL doing chatledger's work)",
        },
        "unreachable": scratches.unreachable,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    mode = "full" if args.full else "smoke" if args.smoke else "quick"
    settings = settings_for(mode)
    backends = _split(args.backends, BACKENDS, "backends")
    workloads = _split(args.only, WORKLOADS, "workloads")
    if args.peers == "all":
        peers: list[type[Peer]] = list(PEERS)
    elif args.peers == "none":
        peers = []
    else:
        names = _split(args.peers, tuple(p.system for p in PEERS), "peers")
        peers = [peer_class(name) for name in names]
    # This machine's SQLite predates the WAL-reset fix: chatledger warns once; noise here.
    warnings.filterwarnings("ignore", message=".*WAL-reset.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started = time.monotonic()
    scratches = Scratches(backends)
    try:
        meta = _meta(settings, scratches, backends)
        print(meta["mode_description"])
        runner = Runner(settings, scratches, peers)
        for backend in backends:
            if not scratches.available(backend):
                reason = scratches.unreachable[backend]
                print(f"{backend}: skipped, {reason}")
                for workload in workloads:
                    runner._na(backend, workload, "", "chatledger", reason)
                continue
            runner.run(backend, workloads)
    finally:
        scratches.close()
    records = runner.records
    records[:] = ordered(records)
    attach_ratios(records)
    sanitize_records(records)
    targets = evaluate_targets(records, backends)
    meta["finished_at"] = datetime.now(UTC).isoformat()
    meta["started_at"] = stamp
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["command"] = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    meta["backends"] = list(backends)
    meta["workloads"] = list(workloads)
    meta["peers"] = [p.system for p in peers]
    print_tables(records, targets, meta)
    paths = write_json(args.out, stamp, meta, records, targets)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    # A smoke run draws a chart only where --chart says (docs/ keeps the real run's chart).
    chart = args.chart or (None if mode == "smoke" else ROOT / "docs" / "benchmarks.png")
    if chart is not None and not args.no_chart:
        written = write_chart(chart, records, meta)
        if written is not None:
            print(f"wrote {written}")
    print(f"done in {meta['elapsed_s']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
