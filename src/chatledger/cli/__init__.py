"""The ``chatledger`` command line: a thin layer over the public API.

Each command parses its arguments, calls public functions and renders the result. Errors are
one line on stderr and a non-zero exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from ..errors import ChatledgerError
from ._common import err, state
from .db import db
from .serve import serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="chatledger",
    help="chatledger: the conversation store for LLM apps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db, name="db")
app.command()(serve)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    if debug:
        logging.basicConfig(level=logging.DEBUG)
    state["debug"] = debug


def main() -> None:
    """Run the command line; chatledger errors become one line and exit code 1."""
    try:
        app()
    except ChatledgerError as exc:
        if state["debug"]:
            raise
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(1)
