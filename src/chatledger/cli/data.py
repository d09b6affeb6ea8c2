"""``chatledger import | export | copy``: moving data in, out and between databases."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.table import Table

from ._common import (
    USER_REF_HELP,
    AsJson,
    ConfigFile,
    Quiet,
    Url,
    emit_json,
    err,
    load_config,
    open_ledger,
    out,
    progress_bar,
    resolve_user,
)

if TYPE_CHECKING:
    from .. import transfer

__all__ = ["copy", "export", "import_"]


class ImportFormat(enum.StrEnum):
    """The formats ``chatledger import`` reads (``transfer.IMPORT_FORMATS``)."""

    chatledger = "chatledger"
    chatledger_jsonl = "chatledger-jsonl"
    chatgpt = "chatgpt"
    visitors = "visitors"
    feedback = "feedback"


class ExportFormat(enum.StrEnum):
    """The formats ``chatledger export`` writes (``transfer.EXPORT_FORMATS``)."""

    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"


def _import_format(chosen: ImportFormat | None) -> transfer.ImportFormat | None:
    from .. import transfer

    return None if chosen is None else next(f for f in transfer.IMPORT_FORMATS if f == chosen)


def _export_format(chosen: ExportFormat) -> transfer.ExportFormat:
    from .. import transfer

    return next(f for f in transfer.EXPORT_FORMATS if f == chosen)


#: ``transfer.DEFAULT_BATCH_SIZE`` (a test holds them equal): the CLI does not import
#: ``transfer`` until a command runs.
DEFAULT_BATCH_SIZE = 5000
BatchSize = Annotated[
    int,
    typer.Option("--batch-size", min=1, max=100_000, help="Rows per batch (one transaction each)."),
]


def import_(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="The file to import: JSON, JSON lines, or the ZIP a ChatGPT export comes in.",
        ),
    ],
    format: Annotated[
        ImportFormat | None,
        typer.Option(
            "--format",
            help="Force the format (default: detected from the file).",
            show_default=False,
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help=f"ChatGPT imports: the owner. {USER_REF_HELP} "
            "An unknown external id creates the user.",
            show_default=False,
        ),
    ] = None,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Import chatledger's own export (JSON or JSON lines), a ChatGPT export (its ZIP or the
    conversations.json in it), or a visitors or feedback JSON file. Importing the same file
    twice adds nothing. A file that cannot be read is one error line naming it and the
    problem (exit code 1)."""
    from .. import transfer

    with open_ledger(url, config_file) as ledger, progress_bar(not (quiet or as_json)) as tick:
        report = transfer.import_data(
            ledger,
            path,
            format=_import_format(format),
            user=user,
            batch_size=batch_size,
            progress=tick,
        )
    if as_json:
        emit_json(
            {
                "format": report.format,
                "inserted": report.inserted,
                "skipped": report.skipped,
                "not_imported": report.not_imported,
            }
        )
        return
    if quiet:
        return
    table = Table("table", "inserted", "skipped", title=f"imported {path} ({report.format})")
    for name in report.inserted:
        table.add_row(name, str(report.inserted[name]), str(report.skipped[name]))
    out.print(table)
    out.print(
        f"{report.total_inserted} rows inserted, {report.total_skipped} already there",
        highlight=False,
    )
    if report.not_imported:
        kinds = ", ".join(f"{count} {kind}" for kind, count in report.not_imported.items())
        out.print(f"not imported (no place in chatledger): {kinds}", highlight=False)


def export(
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="File to write ('-': standard output)."),
    ] = "-",
    format: Annotated[
        ExportFormat,
        typer.Option("--format", "-f", help="json (lossless), jsonl (lossless) or markdown."),
    ] = ExportFormat.json,
    user: Annotated[
        str | None,
        typer.Option("--user", help=f"Only this user. {USER_REF_HELP}", show_default=False),
    ] = None,
    conversation: Annotated[
        str | None,
        typer.Option("--conversation", help="Only this conversation (id).", show_default=False),
    ] = None,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    include_hidden: Annotated[
        bool,
        typer.Option(
            "--include-hidden",
            help="Also the content of messages users hid (left out by default).",
        ),
    ] = False,
    url: Url = None,
    config_file: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Export everything, one user or one conversation as JSON, JSON lines or Markdown."""
    from .. import transfer

    to_stdout = output == "-"
    with open_ledger(url, config_file) as ledger:
        # Resolve the scope before creating the file: a wrong id leaves no empty file behind.
        owner = None if user is None else resolve_user(ledger, user)
        if conversation is not None:
            ledger.conversations.get(conversation)
        target = Path(output)
        partial = target.with_name(f".{target.name}.partial")
        stream: TextIO = (
            sys.stdout if to_stdout else open(partial, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
        )
        try:
            with progress_bar(not quiet and not to_stdout) as tick:
                report = transfer.export_data(
                    ledger,
                    stream,
                    format=_export_format(format),
                    user=owner,
                    conversation=conversation,
                    batch_size=batch_size,
                    progress=tick,
                    include_hidden=include_hidden,
                )
        except BaseException:
            if not to_stdout:
                stream.close()
                partial.unlink(missing_ok=True)
            raise
        if not to_stdout:
            stream.close()
            partial.replace(target)
    if not quiet and not to_stdout:
        rows = sum(report.rows.values())
        err.print(
            f"exported {report.scope} to {output}: {rows} rows ({format.value})", highlight=False
        )


def copy(
    source: Annotated[str, typer.Argument(help="URL of the database to copy.")],
    target: Annotated[str, typer.Argument(help="URL of the database to copy into.")],
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    backup: Annotated[
        bool,
        typer.Option(
            "--backup/--no-backup",
            help="Back an SQLite source up before the first write (a run with nothing to "
            "copy makes no backup); the path is printed.",
        ),
    ] = True,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Copy a whole database into another one, on any backend (e.g. an SQLite file into
    PostgreSQL or MariaDB), then verify every table. Safe to rerun: it brings the target up to
    date with the source as it is now, and never copies a row twice. Exits 1 when a table
    differs."""
    from .. import transfer

    if not (quiet or as_json):
        err.print(
            f"copying {load_config(source, None).redacted_url()} -> "
            f"{load_config(target, None).redacted_url()}",
            highlight=False,
        )
    with progress_bar(not (quiet or as_json)) as tick:
        report = transfer.copy_database(
            source, target, batch_size=batch_size, backup=backup, progress=tick
        )
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "source": report.source,
                "target": report.target,
                "backup": report.backup,
                "seconds": round(report.seconds, 3),
                "rows_copied": report.rows_copied,
                "rows_per_second": round(report.rows_per_second, 1),
                "messages_per_second": round(report.messages_per_second, 1),
                "tables": [
                    {
                        "table": check.table,
                        "ok": check.ok,
                        "copied": check.copied,
                        "source_rows": check.source_rows,
                        "target_rows": check.target_rows,
                        "source_checksum": check.source_checksum,
                        "target_checksum": check.target_checksum,
                    }
                    for check in report.tables
                ],
            }
        )
    elif not quiet:
        if report.backup is not None:
            out.print(f"backup of the source: {report.backup}", highlight=False)
        table = Table("table", "copied", "source rows", "target rows", "checksum", "match")
        for check in report.tables:
            table.add_row(
                check.table,
                str(check.copied),
                str(check.source_rows),
                str(check.target_rows),
                check.source_checksum[:12],
                "yes" if check.ok else "NO",
            )
        out.print(table)
        out.print(
            f"{report.rows_copied} rows copied in {report.seconds:.1f} s "
            f"({report.rows_per_second:,.0f} rows/s, {report.messages_per_second:,.0f} messages/s)",
            highlight=False,
        )
        out.print("verified: every table matches" if report.ok else "MISMATCH", highlight=False)
    if not report.ok:
        if not as_json:
            bad = ", ".join(check.table for check in report.tables if not check.ok)
            err.print(f"error: the copy differs from the source in: {bad}", highlight=False)
        raise typer.Exit(1)
