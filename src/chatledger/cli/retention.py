"""``chatledger retention``: archive or delete inactive conversations."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from ._common import AsJson, ConfigFile, Url, Yes, confirm, emit_json, open_ledger, out

__all__ = ["Action", "retention"]


class Action(enum.StrEnum):
    """What retention does to an inactive conversation."""

    archive = "archive"
    delete = "delete"


def retention(
    inactive_days: Annotated[
        int, typer.Option(min=1, help="Conversations inactive for more than this many days.")
    ],
    action: Annotated[
        Action, typer.Option(help="archive (active and closed ones) or delete (any status).")
    ] = Action.archive,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, change nothing.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Conversations per transaction.")] = 500,
    yes: Yes = False,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Archive or delete the conversations inactive for INACTIVE_DAYS days."""
    with open_ledger(url, config_file) as ledger:
        if not dry_run:
            confirm(
                f"{action.value.capitalize()} every conversation inactive for "
                f"{inactive_days} days?",
                yes,
            )
        report = ledger.conversations.apply_retention(
            inactive_days=inactive_days,
            action="archive" if action is Action.archive else "delete",
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
