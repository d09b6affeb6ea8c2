"""``chatledger retention``: archive or delete inactive conversations."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import AsJson, ConfigFile, Url, Yes, confirm, emit_json, open_ledger, out

__all__ = ["retention"]


def retention(
    inactive_days: Annotated[
        int, typer.Option(min=1, help="Conversations inactive for more than this many days.")
    ],
    action: Annotated[
        str, typer.Option(help="archive (active and closed ones) or delete (any status).")
    ] = "archive",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, change nothing.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Conversations per transaction.")] = 500,
    yes: Yes = False,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Archive or delete the conversations inactive for INACTIVE_DAYS days."""
    if action not in ("archive", "delete"):
        raise typer.BadParameter("must be archive or delete", param_hint="--action")
    with open_ledger(url, config_file) as ledger:
        if not dry_run:
            confirm(
                f"{action.capitalize()} every conversation inactive for {inactive_days} days?",
                yes,
            )
        report = ledger.conversations.apply_retention(
            inactive_days=inactive_days,
            action=action,  # type: ignore[arg-type]
            dry_run=dry_run,
            batch_size=batch_size,
        )
    if as_json:
        emit_json(report)
        return
    verb = {"archive": "archived", "delete": "deleted"}[report.action]
    prefix = "would be " if report.dry_run else ""
    out.print(
        f"{report.conversations} conversations ({report.messages} messages) inactive since "
        f"{report.cutoff.isoformat(timespec='seconds')} {prefix}{verb}",
        highlight=False,
    )
