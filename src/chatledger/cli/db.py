"""``chatledger db ...``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .. import migrate
from ._common import ConfigFile, Url, err, load_config, out

__all__ = ["db"]

db = typer.Typer(help="Schema migrations.", no_args_is_help=True)


@db.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: Url = None,
    config_file: ConfigFile = None,
) -> None:
    """Upgrade the schema (to the newest revision by default)."""
    config = load_config(url, config_file)
    migrate.upgrade(config.url, revision)
    out.print(f"{config.redacted_url()} is at revision {migrate.current(config.url)}")


@db.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")] = "-1",
    url: Url = None,
    config_file: ConfigFile = None,
) -> None:
    """Downgrade the schema (one revision by default; 'base' removes chatledger's tables)."""
    config = load_config(url, config_file)
    migrate.downgrade(config.url, revision)
    out.print(f"{config.redacted_url()} is at revision {migrate.current(config.url)}")


@db.command()
def current(url: Url = None, config_file: ConfigFile = None) -> None:
    """Show the database's schema revision and whether it is the newest."""
    config = load_config(url, config_file)
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
    config = load_config(url, config_file)
    diffs = migrate.check(config.url)
    if diffs:
        for diff in diffs:
            err.print(f"pending: {diff}")
        raise typer.Exit(1)
    out.print("the schema matches chatledger's models")
