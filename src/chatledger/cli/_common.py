"""What every command shares: the consoles, the database options, and the debug switch."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ..config import Config

__all__ = ["ConfigFile", "Url", "err", "load_config", "out", "state"]

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

#: Set by the top-level ``--debug`` option.
state = {"debug": False}


def load_config(url: str | None, config_file: str | None) -> Config:
    """The configuration a command acts on: ``--url``/``--config``, else the environment."""
    return Config.load(url, config_file=config_file)
