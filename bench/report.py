"""Ratios to the raw reference, the targets (met / missed), the table, the JSON and the chart."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .harness import Record

__all__ = [
    "Target",
    "attach_ratios",
    "evaluate_targets",
    "ordered",
    "print_tables",
    "sanitize_records",
    "write_chart",
    "write_json",
]

#: Per-turn append, chatledger sync vs raw (messages/s), per backend.
APPEND_TARGET: Final = {"sqlite": 0.5, "postgresql": 0.65, "mariadb": 0.65}
READ_TARGET: Final = 1.5
GROWTH_TARGET: Final = 1.2
CONCURRENCY_TARGET: Final = 0.5
BULK_TARGET: Final = 0.5
ASYNC_TARGET: Final = 1.3

_READ_LIKE: Final = ("read", "sidebar")
#: Issue 21's targets against the bare operation (``raw-bare``), where they differ from the
#: targets against raw doing chatledger's work.
BARE_READ_TARGET: Final = 1.2
SAVER_TARGET: Final = 1.0
#: The raw references: the bare operation, and raw doing chatledger's work.
REFERENCES: Final = ("raw-bare", "raw", "raw-copy")
#: ChatledgerSaver's peer (the LangGraph saver row).
SAVER: Final = "langgraph-chatledger"


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the issue, evaluated on this run's numbers."""

    backend: str
    name: str
    system: str
    value: float | None
    threshold: float
    comparison: str  # "<=" or ">="
    met: bool | None  # None: not measured
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "name": self.name,
            "system": self.system,
            "value": None if self.value is None else round(self.value, 3),
            "threshold": self.threshold,
            "comparison": self.comparison,
            "met": self.met,
            "detail": self.detail,
        }


def _find(
    records: Sequence[Record], backend: str, workload: str, case: str, system: str, surface: str
) -> Record | None:
    for record in records:
        if (
            record.backend == backend
            and record.workload == workload
            and record.case == case
            and record.system == system
            and record.surface == surface
            and record.status == "ok"
        ):
            return record
    return None


def _num(record: Record | None, key: str) -> float | None:
    if record is None:
        return None
    value = record.metrics.get(key)
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _paired_ratio(record: Record, raw: Record | None) -> float | None:
    """For writes: the median over rounds of (this system's rate / raw's rate in the same
    round). Systems alternate within a round, so drift of the disk's commit latency, shared
    by neighbours in time, cancels out (a ratio of medians would not cancel it)."""
    if raw is None or record.workload in _READ_LIKE:
        return None
    mine, ref = record.metrics.get("per_s_rounds"), raw.metrics.get("per_s_rounds")
    if not isinstance(mine, list) or not isinstance(ref, list) or len(mine) != len(ref):
        return None
    ratios = [a / b for a, b in zip(mine, ref, strict=True) if b]
    return statistics.median(ratios) if ratios else None


def _ratio(record: Record, reference: Record | None) -> float | None:
    """Throughput ratio for writes (paired by block when both have the same blocks), p50
    ratio for reads."""
    if reference is None:
        return None
    key = "p50_us" if record.workload in _READ_LIKE else "per_s"
    mine, ref = _num(record, key), _num(reference, key)
    paired = _paired_ratio(record, reference)
    if paired is not None:
        return paired
    return mine / ref if mine is not None and ref else None


def attach_ratios(records: Sequence[Record]) -> None:
    """Set ``vs_raw`` (against ``raw``, raw doing chatledger's work) and ``vs_bare`` (against
    ``raw-bare``, the bare operation) of the same backend, workload and case, measured in this
    run: throughput ratio for writes, p50 ratio for reads. Then the saver rows' ratio."""
    for record in records:
        if record.status != "ok":
            continue

        def reference(system: str, r: Record = record) -> Record | None:
            return _find(records, r.backend, r.workload, r.case, system, "sync")

        if record.system not in REFERENCES:
            record.vs_raw = _ratio(record, reference("raw"))
        if record.system != "raw-bare":
            record.vs_bare = _ratio(record, reference("raw-bare"))
        if (
            record.workload == "bulk"
            and record.backend == "postgresql"
            and record.system not in REFERENCES
        ):
            copy = _ratio(record, reference("raw-copy"))
            if copy is not None:
                record.metrics["vs_copy"] = round(copy, 3)
    _attach_saver(records)


def _attach_saver(records: Sequence[Record]) -> None:
    """The LangGraph saver rows (append workload): ``ms_per_turn`` (p50 of one ``invoke``)
    on both savers' records, and on ChatledgerSaver's ``vs_official``: its time per turn over
    the official saver's (the median of the per-block ratios; lower is better)."""
    for record in records:
        if record.status != "ok" or record.workload != "append":
            continue
        if record.system not in ("langgraph", SAVER):
            continue
        p50 = _num(record, "p50_us")
        record.metrics["ms_per_turn"] = None if p50 is None else round(p50 / 1000, 3)
        if record.system != SAVER:
            continue
        official = _find(records, record.backend, "append", "", "langgraph", "sync")
        # The official saver's rate over ChatledgerSaver's: a ratio of times per turn.
        ratio = _paired_ratio(official, record) if official is not None else None
        if ratio is None:
            theirs = _num(official, "p50_us")
            ratio = p50 / theirs if p50 is not None and theirs else None
        record.metrics["vs_official"] = None if ratio is None else round(ratio, 3)


def _target(
    backend: str,
    name: str,
    system: str,
    value: float | None,
    threshold: float,
    comparison: str,
    detail: str,
) -> Target:
    met: bool | None
    if value is None:
        met = None
    elif comparison == "<=":
        met = value <= threshold
    else:
        met = value >= threshold
    return Target(backend, name, system, value, threshold, comparison, met, detail)


def evaluate_targets(records: Sequence[Record], backends: Sequence[str]) -> list[Target]:
    """The issue's targets, per backend, from this run's records."""
    targets: list[Target] = []
    for backend in backends:
        if not any(r.backend == backend and r.status == "ok" for r in records):
            continue

        def get(workload: str, case: str, surface: str = "sync", b: str = backend) -> Record | None:
            return _find(records, b, workload, case, "chatledger", surface)

        append = get("append", "")
        if append is not None or _find(records, backend, "append", "", "raw", "sync"):
            targets.append(
                _target(
                    backend,
                    "append: chatledger / raw-work messages/s",
                    "chatledger sync",
                    append.vs_raw if append else None,
                    APPEND_TARGET[backend],
                    ">=",
                    "per-turn append, one message per transaction, full semantics",
                )
            )
        small, big = get("read", "small"), get("read", "big")
        for case, record in (("small", small), ("big", big)):
            if record is None and _find(records, backend, "read", case, "raw", "sync") is None:
                continue
            label = record.metrics.get("store_label", case) if record else case
            targets.append(
                _target(
                    backend,
                    f"last-20 read p50: chatledger / raw-work ({label} store)",
                    "chatledger sync",
                    record.vs_raw if record else None,
                    READ_TARGET,
                    "<=",
                    "same SELECT on the same store",
                )
            )
        for surface in ("sync", "async"):
            small_s, big_s = get("read", "small", surface), get("read", "big", surface)
            if small_s is None and big_s is None:
                continue
            p_small, p_big = _num(small_s, "p50_us"), _num(big_s, "p50_us")
            targets.append(
                _target(
                    backend,
                    "last-20 read p50: big store / small store",
                    f"chatledger {surface}",
                    p_big / p_small if p_small and p_big else None,
                    GROWTH_TARGET,
                    "<=",
                    f"{_label(small_s)} -> {_label(big_s)}",
                )
            )
        for surface in ("sync", "async"):
            one = get("concurrency", "one", surface)
            if one is None and _find(records, backend, "concurrency", "one", "raw", "sync") is None:
                continue
            m = one.metrics if one else {}
            clean = (
                one is not None
                and m.get("lost") == 0
                and m.get("errors") == 0
                and m.get("order_violations") == 0
                and m.get("phantoms") == 0
            )
            targets.append(
                _target(
                    backend,
                    "one-conversation concurrency: 0 lost, 0 errors, gap-free",
                    f"chatledger {surface}",
                    (1.0 if clean else 0.0) if one else None,
                    1.0,
                    ">=",
                    (
                        f"lost={m.get('lost')} errors={m.get('errors')} "
                        f"order_violations={m.get('order_violations')}"
                        if one
                        else "not measured"
                    ),
                )
            )
            targets.append(
                _target(
                    backend,
                    "one-conversation concurrency: chatledger / raw-work messages/s",
                    f"chatledger {surface}",
                    one.vs_raw if one else None,
                    CONCURRENCY_TARGET,
                    ">=",
                    f"{m.get('threads', '?')} writers on one conversation",
                )
            )
        bulk = get("bulk", "")
        if bulk is not None or _find(records, backend, "bulk", "", "raw", "sync"):
            reference = "COPY" if backend == "postgresql" else "executemany"
            value = (
                (bulk.metrics.get("vs_copy") if backend == "postgresql" else bulk.vs_raw)
                if bulk
                else None
            )
            targets.append(
                _target(
                    backend,
                    f"bulk import: chatledger append_many / raw-work {reference}",
                    "chatledger sync",
                    float(value) if isinstance(value, int | float) else None,
                    BULK_TARGET,
                    ">=",
                    f"{bulk.metrics.get('batch', '?') if bulk else '?'} messages per call",
                )
            )
        for workload, case, key in (
            ("append", "", "per_s"),
            ("read", "small", "p50_us"),
            ("read", "big", "p50_us"),
            ("sidebar", "", "p50_us"),
            ("bulk", "", "per_s"),
        ):
            sync, asynchronous = get(workload, case), get(workload, case, "async")
            if sync is None and asynchronous is None:
                continue
            a, s = _num(asynchronous, key), _num(sync, key)
            # As a time ratio: async takes at most 1.3x what sync takes.
            value = None if not a or not s else (a / s if key == "p50_us" else s / a)
            label = workload if not case else f"{workload} ({_label(sync) or case})"
            targets.append(
                _target(
                    backend,
                    f"async / sync time: {label}",
                    "chatledger async",
                    value,
                    ASYNC_TARGET,
                    "<=",
                    "p50 latency ratio" if key == "p50_us" else "inverse throughput ratio",
                )
            )
        targets += _bare_targets(records, backend)
    return targets


def _bare_targets(records: Sequence[Record], backend: str) -> list[Target]:
    """Issue 21's targets: chatledger sync against the bare operation, and the saver."""
    targets: list[Target] = []

    def get(workload: str, case: str, system: str = "chatledger") -> Record | None:
        return _find(records, backend, workload, case, system, "sync")

    def measured(workload: str, case: str) -> bool:
        return get(workload, case) is not None or get(workload, case, "raw-bare") is not None

    bulk_reference = "COPY" if backend == "postgresql" else "executemany"
    for workload, case, name, threshold, comparison, detail in (
        (
            "append",
            "",
            "append: chatledger / bare insert messages/s",
            APPEND_TARGET[backend],
            ">=",
            "one message per transaction vs one INSERT + commit",
        ),
        (
            "read",
            "small",
            "last-20 read p50: chatledger / bare select",
            BARE_READ_TARGET,
            "<=",
            "vs a plain SELECT on a table of the same shape",
        ),
        (
            "read",
            "big",
            "last-20 read p50: chatledger / bare select",
            BARE_READ_TARGET,
            "<=",
            "vs a plain SELECT on a table of the same shape",
        ),
        (
            "concurrency",
            "one",
            "one-conversation concurrency: chatledger / bare inserts messages/s",
            CONCURRENCY_TARGET,
            ">=",
            "4 writers on one conversation",
        ),
        (
            "bulk",
            "",
            f"bulk import: chatledger append_many / bare {bulk_reference}",
            BULK_TARGET,
            ">=",
            "the rows alone, one transaction",
        ),
    ):
        if not measured(workload, case):
            continue
        record = get(workload, case)
        if workload == "read":
            name += f" ({_label(record) if record else case} store)"
        targets.append(
            _target(
                backend,
                name,
                "chatledger sync",
                record.vs_bare if record else None,
                threshold,
                comparison,
                detail,
            )
        )
    saver = get("append", "", SAVER)
    if saver is not None or get("append", "", "langgraph") is not None:
        value = saver.metrics.get("vs_official") if saver else None
        targets.append(
            _target(
                backend,
                "LangGraph saver: ChatledgerSaver / official saver time per turn",
                SAVER,
                float(value) if isinstance(value, int | float) else None,
                SAVER_TARGET,
                "<=",
                "one invoke of the one-node graph (2 messages); p50 ms "
                f"{_num(saver, 'ms_per_turn')} vs "
                f"{_num(get('append', '', 'langgraph'), 'ms_per_turn')}",
            )
        )
    return targets


def _label(record: Record | None) -> str:
    if record is None:
        return "?"
    return str(record.metrics.get("store_label", record.case))


# -- output ---------------------------------------------------------------------------------


def _fmt_rate(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) and not math.isnan(value) else "-"


def _fmt_us(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    if value >= 10_000:
        return f"{value / 1000:,.1f} ms"
    return f"{value:,.0f} µs"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _case_label(record: Record) -> str:
    if record.workload == "read":
        label = record.metrics.get("store_label")
        return f"{record.case} store ({label})" if label else f"{record.case} store"
    if record.workload == "concurrency":
        return "4 threads, own convs" if record.case == "own" else "4 threads, ONE conv"
    return record.case


def _notes(record: Record) -> str:
    if record.status != "ok":
        return f"{record.status}: {record.reason}"
    m = record.metrics
    parts: list[str] = []
    if record.workload == "concurrency":
        parts.append(f"errors={m.get('errors')} lost={m.get('lost')}")
        if m.get("order_violations") is not None:
            parts.append(f"gaps/dups={m.get('order_violations')}")
        else:
            parts.append("order: no seq")
        if m.get("first_error"):
            parts.append(str(m["first_error"])[:60])
    if record.workload == "bulk" and "vs_copy" in m:
        parts.append(f"vs COPY {m['vs_copy']:.2f}x")
    if record.system.startswith("langgraph") and record.workload in ("append", "concurrency"):
        parts.append("2 msgs/turn")
    if isinstance(m.get("ms_per_turn"), int | float):
        parts.append(f"{m['ms_per_turn']:.2f} ms/turn")
    if isinstance(m.get("vs_official"), int | float):
        parts.append(f"{m['vs_official']:.2f}x the official saver's time")
    return "; ".join(parts)


_WORKLOAD_ORDER: Final = ("append", "read", "sidebar", "concurrency", "bulk")
_CASE_ORDER: Final = ("", "small", "big", "own", "one")
_SYSTEM_ORDER: Final = (
    "raw-bare",
    "raw",
    "raw-copy",
    "chatledger",
    "langchain-sql",
    "langchain-postgres",
    "langgraph",
    "langgraph-chatledger",
)


def _order(record: Record) -> tuple[int, int, int, int]:
    def rank(items: tuple[str, ...], value: str) -> int:
        return items.index(value) if value in items else len(items)

    return (
        rank(_WORKLOAD_ORDER, record.workload),
        rank(_CASE_ORDER, record.case),
        rank(_SYSTEM_ORDER, record.system),
        0 if record.surface == "sync" else 1,
    )


def ordered(records: Sequence[Record]) -> list[Record]:
    """Records in table order: workload, case, system (raw first), surface."""
    return sorted(records, key=_order)


def print_tables(
    records: Sequence[Record], targets: Sequence[Target], meta: dict[str, Any]
) -> None:
    """The results (one table per backend) and the targets, with rich."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    console.print(f"[bold]chatledger benchmarks[/bold] - {meta['mode_description']}")
    for backend in dict.fromkeys(r.backend for r in records):
        table = Table(title=f"{backend}", show_lines=False)
        for column in ("workload", "case", "system", "surface"):
            table.add_column(column)
        for column in ("msg/s", "p50", "p99", "vs bare", "vs raw-work"):
            table.add_column(column, justify="right")
        table.add_column("notes", overflow="fold", max_width=60)
        for record in ordered(records):
            if record.backend != backend:
                continue
            m = record.metrics
            rate = m.get("per_s") if record.workload not in _READ_LIKE else None
            table.add_row(
                record.workload,
                _case_label(record),
                record.system,
                record.surface,
                _fmt_rate(rate) if record.status == "ok" else "n/a",
                _fmt_us(m.get("p50_us")) if record.status == "ok" else "",
                _fmt_us(m.get("p99_us")) if record.status == "ok" else "",
                _fmt_ratio(record.vs_bare),
                _fmt_ratio(record.vs_raw),
                _notes(record),
            )
        console.print(table)
    table = Table(title="targets (ratios measured in this run)")
    for column in ("backend", "target", "system", "value", "needs", "met"):
        table.add_column(column)
    for target in targets:
        mark = {True: "[green]met[/green]", False: "[red]MISSED[/red]", None: "not measured"}
        table.add_row(
            target.backend,
            target.name,
            target.system,
            "-" if target.value is None else f"{target.value:.2f}",
            f"{target.comparison} {target.threshold:g}",
            mark[target.met],
        )
    console.print(table)


def write_json(
    out: Path,
    stamp: str,
    meta: dict[str, Any],
    records: Sequence[Record],
    targets: Sequence[Target],
) -> list[Path]:
    """``<out>/<stamp>.json`` and ``<out>/latest.json``."""
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "results": [record.as_dict() for record in records],
        "targets": [target.as_dict() for target in targets],
    }
    text = json.dumps(document, indent=2, default=str, allow_nan=False)
    paths = [out / f"{stamp}.json", out / "latest.json"]
    for path in paths:
        path.write_text(text + "\n", encoding="utf-8")
    return paths


def _sanitize(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {key: _sanitize(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitize(item) for item in value]
    return value


def sanitize_records(records: Sequence[Record]) -> None:
    """NaN is not JSON: replace it with null in every record's metrics."""
    for record in records:
        record.metrics = _sanitize(record.metrics)


_PANELS: Final = (
    ("append", "", "per-turn append (msg/s)"),
    ("read", "small", "last-20 read, small store (1/p50)"),
    ("read", "big", "last-20 read, big store (1/p50)"),
    ("sidebar", "", "sidebar page (1/p50)"),
    ("concurrency", "one", "4 writers, one conversation (msg/s)"),
    ("bulk", "", "bulk import (msg/s)"),
)


def write_chart(path: Path, records: Sequence[Record], meta: dict[str, Any]) -> Path | None:
    """A chart of every system's speed relative to raw doing chatledger's work (raw = 1,
    higher is faster); the tables and the JSON carry the ratios to the bare operation too."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')")
        return None
    backends = list(dict.fromkeys(r.backend for r in records))
    series = [
        ("chatledger", "sync"),
        ("chatledger", "async"),
        ("langchain-sql", "sync"),
        ("langchain-postgres", "sync"),
        ("langgraph", "sync"),
    ]
    colors = ["#1f77b4", "#6baed6", "#ff7f0e", "#2ca02c", "#9467bd"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for ax, (workload, case, title) in zip(axes.flat, _PANELS, strict=True):
        width = 0.8 / len(series)
        for index, (system, surface) in enumerate(series):
            xs, ys = [], []
            for position, backend in enumerate(backends):
                record = _find(records, backend, workload, case, system, surface)
                if record is None or record.vs_raw is None or record.vs_raw <= 0:
                    continue
                speed = 1 / record.vs_raw if workload in _READ_LIKE else record.vs_raw
                xs.append(position + (index - (len(series) - 1) / 2) * width)
                ys.append(speed)
            if xs:
                ax.bar(xs, ys, width, label=f"{system} ({surface})", color=colors[index])
        ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_yscale("log")
        ax.set_xticks(range(len(backends)), backends)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("speed vs raw doing the work (= 1)", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle(f"chatledger vs raw drivers and peers - {meta['mode_description']}", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
