"""``chatledger db ...``: schema migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ._common import AsJson, ConfigFile, Url, Yes, confirm, emit_json, err, load_config, out, table

if TYPE_CHECKING:
    from ..migrate import TableState

__all__ = ["db"]

db = typer.Typer(help="Schema migrations.", no_args_is_help=True)


def _at(revision: str | None) -> str:
    return f"revision {revision}" if revision else "no chatledger schema (base)"


@db.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Upgrade the schema (to the newest revision by default)."""
    from .. import migrate

    config = load_config(url, config_file)
    before = migrate.current(config.url)
    migrate.upgrade(config.url, revision)
    after = migrate.current(config.url)
    if as_json:
        emit_json({"url": config.redacted_url(), "before": before, "revision": after})
    else:
        out.print(f"{config.redacted_url()} is at {_at(after)}", highlight=False)


def _removed(
    before: dict[str, TableState], after: dict[str, TableState]
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Tables (with the rows they held) and columns that are in ``before`` only."""
    tables = {name: state.rows for name, state in before.items() if name not in after}
    columns = {
        name: sorted(state.columns - after[name].columns)
        for name, state in before.items()
        if name in after and state.columns - after[name].columns
    }
    return tables, columns


@db.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")] = "-1",
    backup: Annotated[
        bool,
        typer.Option("--backup/--no-backup", help="Back an SQLite database up first."),
    ] = True,
    yes: Yes = False,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Downgrade the schema (one revision by default; 'base' removes chatledger's tables).

    A downgrade drops the tables and columns that newer revisions added, with their data.
    When the database holds any rows, it asks first (on a terminal; elsewhere --yes is
    required), backs an SQLite file up next to itself, and lists what it removed."""
    from .. import migrate
    from ..transfer import backup_sqlite

    config = load_config(url, config_file)
    start = migrate.current(config.url)
    if start is None:
        raise typer.BadParameter("the database has no chatledger schema: nothing to downgrade")
    before = migrate.inventory(config.url)
    held = {
        name: state.rows
        for name, state in before.items()
        if state.rows and name not in migrate.SEEDED_TABLES
    }
    saved = None
    if held:
        rows = ", ".join(f"{name} {count:,}" for name, count in held.items())
        confirm(
            f"Downgrade {config.redacted_url()} from {start} to {revision}? It drops the "
            f"tables and columns newer revisions added, with their data (rows now: {rows}).",
            yes,
        )
        database = config.url.database
        if backup and config.backend == "sqlite" and database and database != ":memory:":
            saved = backup_sqlite(config.url)
            err.print(f"backup: {saved}", highlight=False)
    migrate.downgrade(config.url, revision)
    after = migrate.current(config.url)
    tables, columns = _removed(before, migrate.inventory(config.url))
    if as_json:
        emit_json(
            {
                "url": config.redacted_url(),
                "before": start,
                "revision": after,
                "backup": saved,
                "removed_tables": tables,
                "removed_columns": columns,
            }
        )
        return
    if tables or columns:
        grid = table("removed", "rows it held")
        for name, count in tables.items():
            grid.add_row(f"table {name}", f"{count:,}")
        for name, names in columns.items():
            for column in names:
                grid.add_row(f"column {name}.{column}", "")
        out.print(grid)
    out.print(f"{config.redacted_url()} is at {_at(after)} (was {start})", highlight=False)


@db.command()
def current(url: Url = None, config_file: ConfigFile = None, as_json: AsJson = False) -> None:
    """Show the database's schema revision and whether it is the newest."""
    from .. import migrate

    config = load_config(url, config_file)
    revision = migrate.current(config.url)
    head = migrate.head()
    if as_json:
        emit_json({"url": config.redacted_url(), "revision": revision, "head": head})
        return
    state = "up to date" if revision == head else f"head is {head}: run `chatledger db upgrade`"
    out.print(f"{config.redacted_url()}: {revision or 'not initialised'} ({state})")


@db.command()
def history(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Also mark the revision this database is at (default: no database).",
            show_default=False,
        ),
    ] = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """List the migration history, newest first (with --url or --config: and where that
    database is)."""
    from .. import migrate

    at = None
    if url is not None or config_file is not None:
        at = migrate.current(load_config(url, config_file).url)
    steps = migrate.history()
    if as_json:
        emit_json(
            [
                {
                    "revision": step.revision,
                    "down_revision": step.down_revision,
                    "message": step.message,
                    "head": step.is_head,
                    "current": step.revision == at,
                }
                for step in steps
            ]
        )
        return
    grid = table("revision", "down", "message")
    for step in steps:
        marks = [
            mark for mark, on in (("head", step.is_head), ("current", step.revision == at)) if on
        ]
        label = step.revision + (f" ({', '.join(marks)})" if marks else "")
        grid.add_row(label, step.down_revision or "-", step.message)
    out.print(grid)


@db.command()
def check(url: Url = None, config_file: ConfigFile = None, as_json: AsJson = False) -> None:
    """Fail if the database differs from chatledger's models (pending migrations)."""
    from .. import migrate

    config = load_config(url, config_file)
    diffs = migrate.check(config.url)
    if as_json:
        emit_json(
            {
                "url": config.redacted_url(),
                "ok": not diffs,
                "pending": [str(diff) for diff in diffs],
            }
        )
    elif diffs:
        for diff in diffs:
            err.print(f"pending: {diff}")
    else:
        out.print("the schema matches chatledger's models")
    if diffs:
        raise typer.Exit(1)
