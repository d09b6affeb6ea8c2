"""Render a results JSON as Markdown tables (for docs/benchmarks.md).

python -m bench.markdown bench/results/latest.json > /tmp/tables.md
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["main", "render"]

_READ_LIKE = ("read", "sidebar")


def _rate(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) and not math.isnan(value) else ""


def _us(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    if value >= 10_000:
        return f"{value / 1000:,.1f} ms"
    return f"{value:,.0f} µs"


def _case(record: dict[str, Any]) -> str:
    case: str = record["case"]
    metrics: dict[str, Any] = record["metrics"]
    if record["workload"] == "read":
        return f"{metrics.get('store_label', case)} store"
    if record["workload"] == "concurrency":
        return "4 writers, own conversations" if case == "own" else "4 writers, ONE conversation"
    return case


def _notes(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return f"{record['status']}: {record['reason']}"
    metrics = record["metrics"]
    parts = []
    if record["workload"] == "concurrency":
        parts.append(f"errors {metrics['errors']}, lost {metrics['lost']}")
        if metrics.get("order_violations") is not None:
            parts.append(f"seq gaps/dups {metrics['order_violations']}")
        else:
            parts.append("no seq to check")
    if "vs_copy" in metrics:
        parts.append(f"{metrics['vs_copy']:.2f}x COPY")
    if record["system"].startswith("langgraph") and record["workload"] in (
        "append",
        "concurrency",
    ):
        parts.append("2 messages per turn")
    return "; ".join(parts)


def _ratio(value: Any) -> str:
    return f"{value:.2f}x" if isinstance(value, int | float) else ""


def _saver(document: dict[str, Any]) -> list[str]:
    """The LangGraph saver row: ms per turn of each saver, per backend."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for record in document["results"]:
        if (
            record["workload"] == "append"
            and record["status"] == "ok"
            and record["system"] in ("langgraph", "langgraph-chatledger")
        ):
            found.setdefault(record["backend"], {})[record["system"]] = record["metrics"]
    if not found:
        return []
    lines = [
        "#### LangGraph saver (per turn: one invoke of the one-node graph, 2 messages)",
        "",
        "| backend | ChatledgerSaver | official saver | ChatledgerSaver / official |",
        "|---|--:|--:|--:|",
    ]
    for backend, systems in found.items():
        ours, theirs = systems.get("langgraph-chatledger", {}), systems.get("langgraph", {})

        def ms(metrics: dict[str, Any]) -> str:
            value = metrics.get("ms_per_turn")
            return f"{value:.2f} ms" if isinstance(value, int | float) else "n/a"

        lines.append(
            f"| {backend} | {ms(ours)} | {ms(theirs)} | {_ratio(ours.get('vs_official'))} |"
        )
    return [*lines, ""]


def render(document: dict[str, Any]) -> str:
    """Markdown: one results table per backend, then the targets."""
    lines: list[str] = [f"_{document['meta']['mode_description']}_", ""]
    backends = list(dict.fromkeys(r["backend"] for r in document["results"]))
    for backend in backends:
        lines += [
            f"#### {backend}",
            "",
            "| workload | case | system | msg/s | p50 | p99 | vs bare | vs raw-work | notes |",
            "|---|---|---|--:|--:|--:|--:|--:|---|",
        ]
        for record in document["results"]:
            if record["backend"] != backend:
                continue
            metrics = record["metrics"]
            ok = record["status"] == "ok"
            system = record["system"] + (" (async)" if record["surface"] == "async" else "")
            lines.append(
                "| "
                + " | ".join(
                    [
                        record["workload"],
                        _case(record),
                        system,
                        _rate(metrics.get("per_s"))
                        if ok and record["workload"] not in _READ_LIKE
                        else "",
                        _us(metrics.get("p50_us")) if ok else "",
                        _us(metrics.get("p99_us")) if ok else "",
                        _ratio(record.get("vs_bare")),
                        _ratio(record.get("vs_raw")),
                        _notes(record),
                    ]
                )
                + " |"
            )
        lines.append("")
    lines += _saver(document)
    lines += [
        "#### Targets",
        "",
        "| backend | target | system | value | needs | |",
        "|---|---|---|--:|---|---|",
    ]
    for target in document["targets"]:
        value = target["value"]
        mark = {True: "met", False: "**missed**", None: "not measured"}[target["met"]]
        lines.append(
            f"| {target['backend']} | {target['name']} | {target['system']} | "
            f"{'' if value is None else f'{value:.2f}'} | "
            f"{target['comparison']} {target['threshold']:g} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.markdown", description=__doc__)
    parser.add_argument("results", type=Path, help="a JSON written by python -m bench")
    args = parser.parse_args(argv)
    print(render(json.loads(args.results.read_text(encoding="utf-8"))), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
