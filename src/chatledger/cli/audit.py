"""``chatledger audit verify``: check the audit hash chain."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import AsJson, ConfigFile, Quiet, Url, emit_json, err, open_ledger, out

__all__ = ["audit"]

audit = typer.Typer(help="The audit log.", no_args_is_help=True)


@audit.command()
def verify(
    batch_size: Annotated[int, typer.Option(min=1, help="Events read at a time.")] = 1000,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Check the audit log's hash chain from the first event to the head. Exits 1 when it is
    broken, naming the first bad event."""
    with open_ledger(url, config_file) as ledger:
        result = ledger.audit.verify(batch_size=batch_size)
    if as_json:
        emit_json(result)
    elif result.ok and not quiet:
        out.print(f"the audit chain is intact: {result.checked} events checked", highlight=False)
    elif not result.ok:
        err.print(
            f"error: the audit chain is broken at event {result.first_broken_seq}: "
            f"{result.problem} ({result.checked} events checked)",
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(1)
