"""The ``chatledger`` command line: a thin layer over the public API.

Each command parses its arguments, calls public functions and renders the result. Errors are
one line on stderr and exit code 1 (usage errors: 2); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import ChatledgerError, SQLiteWALResetBugWarning
from ._common import err, state
from .admin import doctor, init
from .audit import audit
from .data import copy, export, import_
from .db import db
from .keys import keys
from .retention import retention
from .search import search
from .serve import serve
from .stats import stats
from .users import erase_user, users

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """The root group: chatledger errors and file errors end the command with one line on
    stderr and exit code 1 (the traceback with ``--debug``)."""

    def invoke(self, ctx: Any) -> Any:  # typer's (vendored) click.Context
        try:
            return super().invoke(ctx)
        except (ChatledgerError, OSError) as exc:
            if state["debug"]:
                raise
            message = str(exc) if isinstance(exc, ChatledgerError) else _os_error(exc)
            err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


def _os_error(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc)


app = typer.Typer(
    name="chatledger",
    cls=_Commands,
    help="chatledger: the conversation store for LLM apps.\n\n"
    "Naming a user: every command that takes a user (users, keys, erase-user, stats, export, "
    "import) accepts their id, external id, email or username, and refuses a text that names "
    "two different users (give the id then). Errors are one line on stderr and exit code 1 "
    "(usage errors: 2); --json prints JSON for scripts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(init)
app.add_typer(db, name="db")
app.command()(doctor)
app.command("import")(import_)
app.command()(export)
app.command()(copy)
app.command()(stats)
app.command()(search)
app.add_typer(users, name="users")
app.add_typer(keys, name="keys")
app.add_typer(audit, name="audit")
app.command("erase-user")(erase_user)
app.command()(retention)
app.command()(serve)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"chatledger {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    if debug:
        logging.basicConfig(level=logging.DEBUG)
    state["debug"] = debug


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    err.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    """Run the command line; chatledger errors become one line and exit code 1."""
    if not sys.warnoptions:
        warnings.showwarning = _one_line_warning
        # `chatledger doctor` reports it; repeating it on every command is noise.
        warnings.filterwarnings("ignore", category=SQLiteWALResetBugWarning)
    try:
        app()
    except ChatledgerError as exc:  # raised outside a command (e.g. while parsing)
        if state["debug"]:
            raise
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(1)
