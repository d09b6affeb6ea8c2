"""The ``chatledger`` command line: a thin layer over the public API.

Each command parses its arguments, calls one public function and renders the result. Errors
are one line on stderr and a non-zero exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from . import migrate
from .config import Config
from .errors import ChatledgerError

__all__ = ["app", "main"]

app = typer.Typer(
    name="chatledger",
    help="chatledger: the conversation store for LLM apps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db = typer.Typer(help="Schema migrations.", no_args_is_help=True)
app.add_typer(db, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

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


def _target(url: str | None, config_file: str | None) -> Config:
    return Config.load(url, config_file=config_file)


_state = {"debug": False}


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    if debug:
        logging.basicConfig(level=logging.DEBUG)
    _state["debug"] = debug


@db.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: Url = None,
    config_file: ConfigFile = None,
) -> None:
    """Upgrade the schema (to the newest revision by default)."""
    config = _target(url, config_file)
    migrate.upgrade(config.url, revision)
    out.print(f"{config.redacted_url()} is at revision {migrate.current(config.url)}")


@db.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")] = "-1",
    url: Url = None,
    config_file: ConfigFile = None,
) -> None:
    """Downgrade the schema (one revision by default; 'base' removes chatledger's tables)."""
    config = _target(url, config_file)
    migrate.downgrade(config.url, revision)
    out.print(f"{config.redacted_url()} is at revision {migrate.current(config.url)}")


@db.command()
def current(url: Url = None, config_file: ConfigFile = None) -> None:
    """Show the database's schema revision and whether it is the newest."""
    config = _target(url, config_file)
    revision = migrate.current(config.url)
    head = migrate.head()
    state = "up to date" if revision == head else f"head is {head}: run `chatledger db upgrade`"
    out.print(f"{config.redacted_url()}: {revision or 'not initialised'} ({state})")


@db.command()
def history() -> None:
    """List the migration history, newest first."""
    table = Table("revision", "down", "message")
    for step in migrate.history():
        mark = " (head)" if step.is_head else ""
        table.add_row(step.revision + mark, step.down_revision or "-", step.message)
    out.print(table)


@db.command()
def check(url: Url = None, config_file: ConfigFile = None) -> None:
    """Fail if the database differs from chatledger's models (pending migrations)."""
    config = _target(url, config_file)
    diffs = migrate.check(config.url)
    if diffs:
        for diff in diffs:
            err.print(f"pending: {diff}")
        raise typer.Exit(1)
    out.print("the schema matches chatledger's models")


def main() -> None:
    """Run the command line; chatledger errors become one line and exit code 1."""
    try:
        app()
    except ChatledgerError as exc:
        if _state["debug"]:
            raise
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(1)
