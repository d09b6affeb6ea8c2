"""The benchmark suite runs: ``python -m bench --smoke`` exits 0 and writes valid JSON.

Benchmarks are not tests: nothing here looks at a timing. The smoke run uses tiny sizes
(SQLite, plus the servers when reachable); peers that are not installed are reported as n/a.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every core system loads its own copy of each store (schema made by opening a Ledger: seconds
# per database on a loaded MariaDB): minutes on a busy 2-core machine.
pytestmark = pytest.mark.timeout(600)


def test_smoke_run_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    completed = subprocess.run(
        # Few peers keep the run short: langchain-sql (on all three backends) and the two
        # LangGraph savers (the saver row); one not installed is reported as n/a with the
        # reason.
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--peers",
            "langchain-sql,langgraph,langgraph-chatledger",
            "--out",
            str(out),
            "--no-chart",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]

    latest = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    stamped = [path for path in out.glob("*.json") if path.name != "latest.json"]
    assert len(stamped) == 1
    assert json.loads(stamped[0].read_text(encoding="utf-8")) == latest

    assert set(latest) == {"meta", "results", "targets"}
    meta = latest["meta"]
    assert meta["mode"] == "smoke"
    for key in ("machine", "durability", "settings", "mode_description", "elapsed_s"):
        assert key in meta
    assert {"cpu", "cores", "memory", "python", "sqlite", "packages"} <= set(meta["machine"])

    results = latest["results"]
    keys = {
        "backend",
        "workload",
        "case",
        "system",
        "surface",
        "status",
        "reason",
        "metrics",
        "vs_raw",
        "vs_bare",
    }
    for record in results:
        assert keys <= set(record)
        assert record["status"] in ("ok", "n/a", "error")
        if record["status"] != "ok":
            assert record["reason"], record
    # SQLite needs no server: every workload ran there for raw and both chatledger surfaces.
    sqlite_ok = {
        (r["workload"], r["case"], r["system"], r["surface"])
        for r in results
        if r["backend"] == "sqlite" and r["status"] == "ok"
    }
    for workload, case in (
        ("append", ""),
        ("read", "small"),
        ("read", "big"),
        ("sidebar", ""),
        ("concurrency", "own"),
        ("concurrency", "one"),
        ("bulk", ""),
    ):
        for system, surface in (
            ("raw-bare", "sync"),
            ("raw", "sync"),
            ("chatledger", "sync"),
            ("chatledger", "async"),
        ):
            assert (workload, case, system, surface) in sqlite_ok, (workload, case, system)
    # Both references, both ratios: chatledger against the bare operation and against raw
    # doing chatledger's work; raw doing the work against the bare operation.
    for record in results:
        if record["backend"] != "sqlite" or record["status"] != "ok":
            continue
        ratios = (record["vs_bare"], record["vs_raw"])
        if record["system"] == "chatledger":
            assert all(ratio > 0 for ratio in ratios), record
        elif record["system"] == "raw":
            assert ratios[0] > 0, record
            assert ratios[1] is None, record
        elif record["system"] == "raw-bare":
            assert ratios == (None, None), record
    for record in results:
        if record["status"] == "ok" and record["workload"] in ("read", "sidebar"):
            assert record["metrics"]["p50_us"] > 0
        elif record["status"] == "ok":
            assert record["metrics"]["per_s"] > 0
    # Concurrency records carry the correctness counts.
    for record in results:
        if record["workload"] == "concurrency" and record["status"] == "ok":
            for key in ("errors", "lost", "successes", "order_violations"):
                assert key in record["metrics"]

    peer = [r for r in results if r["system"] == "langchain-sql"]
    assert peer, "the peer is reported, measured or n/a"
    assert all(r["status"] == "ok" or r["reason"] for r in peer)

    # The LangGraph saver row is reported, measured or n/a with the reason.
    saver = [r for r in results if r["system"] == "langgraph-chatledger"]
    assert {r["backend"] for r in saver} >= {"sqlite"}
    for record in saver:
        if record["status"] == "ok":
            assert record["workload"] == "append"
            assert record["metrics"]["ms_per_turn"] > 0
            assert "vs_official" in record["metrics"]

    for target in latest["targets"]:
        assert {"backend", "name", "value", "threshold", "met"} <= set(target)
    sqlite_targets = {t["name"] for t in latest["targets"] if t["backend"] == "sqlite"}
    assert "append: chatledger / bare insert messages/s" in sqlite_targets
    assert "append: chatledger / raw-work messages/s" in sqlite_targets
    assert "references" in meta
    assert "targets" in completed.stdout


def test_console_bench_runs(tmp_path: Path) -> None:
    """``python -m bench.console`` at tiny sizes: it measures both pages and prints plans."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.console",
            "--messages",
            "20",
            "--usage-messages",
            "200",
            "--rounds",
            "1",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert "conversation page, 20 messages" in completed.stdout
    assert "usage page over 220 messages" in completed.stdout
    assert "ix_messages_usage" in completed.stdout


def test_tree_benchmark_runs_on_a_small_size() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = ["--messages", "800", "--backends", "sqlite", "--rounds", "1", "--reads", "5"]
    completed = subprocess.run(
        [sys.executable, "-m", "bench.trees", *args, "--appends", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "sqlite: 800 messages" in completed.stdout
    assert "ratio" in completed.stdout
