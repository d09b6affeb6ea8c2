"""What every command shares: the consoles, the common options, opening the ledger, progress
bars, confirmations and JSON output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..errors import ChatledgerError

if TYPE_CHECKING:  # imported when a command runs, so `chatledger --help` stays quick
    from .._sync.ledger import Ledger
    from ..config import Config

__all__ = [
    "AsJson",
    "ConfigFile",
    "Quiet",
    "Url",
    "UserRef",
    "Yes",
    "confirm",
    "emit_json",
    "err",
    "load_config",
    "open_ledger",
    "out",
    "progress_bar",
    "resolve_user",
    "state",
    "table",
]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
if not out.is_terminal and "COLUMNS" not in os.environ:
    # Piped or captured: don't cut ids to fit 80 columns.
    out.width = 200

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Database URL. Default: CHATLEDGER_DATABASE_URL, DATABASE_URL, ... (see the docs).",
        show_default=False,
    ),
]
ConfigFile = Annotated[
    str | None, typer.Option("--config", help="YAML configuration file.", show_default=False)
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
#: How every command names a user (docs/cli.md "Naming a user").
USER_REF_HELP = "A user: their id, external id, email or username."
UserRef = Annotated[str, typer.Argument(help=USER_REF_HELP, show_default=False)]

#: Set by the top-level ``--debug`` option.
state = {"debug": False}


def load_config(url: str | None, config_file: str | None) -> Config:
    """The configuration a command acts on: ``--url``/``--config``, else the environment."""
    from ..config import Config

    return Config.load(url, config_file=config_file)


@contextmanager
def open_ledger(url: str | None, config_file: str | None) -> Iterator[Ledger]:
    """An opened ledger on the configured database (an empty one is initialised)."""
    from .._sync.ledger import Ledger

    with Ledger(config=load_config(url, config_file)) as ledger:
        yield ledger


def resolve_user(ledger: Ledger, ref: str) -> UUID:
    """The id of the user ``ref`` names (:data:`USER_REF_HELP`)."""
    from ..transfer import resolve_user

    return resolve_user(ledger, ref)


#: Columns that hold UUIDs (36 characters): never cut or wrapped, so they can be copied whole.
_ID_COLUMNS = frozenset({"id", "user", "owner", "conversation"})


def table(*columns: str, title: str | None = None) -> Table:
    """A Rich table whose id columns keep their full width (a narrow terminal folds the
    other columns instead)."""
    grid = Table(title=title)
    for name in columns:
        if name in _ID_COLUMNS:
            grid.add_column(name, no_wrap=True, min_width=36)
        elif name.endswith(" id"):
            grid.add_column(name, no_wrap=True)
        else:
            grid.add_column(name, overflow="fold")
    return grid


def _plain(value: Any) -> Any:
    if isinstance(value, UUID | Decimal | Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout: records as objects; ids, times, decimals as strings."""
    typer.echo(json.dumps(_plain(value), ensure_ascii=False, indent=2))


def confirm(question: str, yes: bool) -> None:
    """Ask before destructive work; without a terminal, ``--yes`` is required."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ChatledgerError(f"{question} Refusing without --yes: stdin is not a terminal")
    if not typer.confirm(question, default=False, err=True):
        err.print("aborted: nothing changed")
        raise typer.Exit(1)


def _silent(task: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int | None], None]]:
    """A progress callback for :mod:`chatledger.transfer`, drawing one Rich bar per task on
    stderr; silent unless ``enabled`` and stdout is a terminal."""
    if not enabled or not out.is_terminal:
        yield _silent
        return
    columns = (
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def update(task: str, done: int, total: int | None) -> None:
            if task not in tasks and total == 0:
                return  # an empty table: nothing to show
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done, total=total)

        yield update
