"""``chatledger stats``: counts, tokens and cost by model and by day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

import typer
from rich.table import Table

from ..records import UsageTotals
from ._common import (
    USER_REF_HELP,
    AsJson,
    ConfigFile,
    Url,
    emit_json,
    open_ledger,
    out,
    resolve_user,
)

__all__ = ["stats"]


def _day(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from None


def _table(title: str, key: str, rows: list[UsageTotals]) -> Table:
    table = Table(key, "messages", "input tokens", "output tokens", "cost", title=title)
    for row in rows:
        table.add_row(
            row.key or "(none)",
            f"{row.messages:,}",
            f"{row.input_tokens:,}",
            f"{row.output_tokens:,}",
            str(row.cost),
        )
    return table


def stats(
    user: Annotated[
        str | None, typer.Option(help=f"Only this user's conversations. {USER_REF_HELP}")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this UTC day (YYYY-MM-DD).")] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to and including this UTC day (YYYY-MM-DD).")
    ] = None,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Counts of users, conversations and messages, and tokens and exact cost by model and by
    UTC day."""
    start = _day(since, "--since")
    end = _day(until, "--until")
    if end is not None:
        end += timedelta(days=1)
    from .. import transfer

    with open_ledger(url, config_file) as ledger:
        owner = None if user is None else resolve_user(ledger, user)
        overall = ledger.usage.overall(user_id=owner, since=start, until=end)
        by_model = ledger.usage.totals("model", user_id=owner, since=start, until=end)
        by_day = ledger.usage.totals("day", user_id=owner, since=start, until=end)
        counts = transfer.table_counts(ledger, user=owner)
    if as_json:
        emit_json(
            {
                "counts": counts,
                "total": overall,
                "by_model": by_model,
                "by_day": by_day,
            }
        )
        return
    rows = Table("table", "rows", title="rows" + ("" if owner is None else f" of user {owner}"))
    for name, count in counts.items():
        rows.add_row(name, f"{count:,}")
    out.print(rows)
    out.print(
        f"messages {overall.messages:,} · input tokens {overall.input_tokens:,} · "
        f"output tokens {overall.output_tokens:,} · cost {overall.cost}"
        + ("" if start is None and end is None else " (in the chosen days)"),
        highlight=False,
    )
    out.print(_table("by model", "model", by_model))
    out.print(_table("by day (UTC)", "day", by_day))
