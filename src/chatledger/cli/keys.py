"""``chatledger keys create | list | revoke``: API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from ..records import ApiKey
from ._common import (
    USER_REF_HELP,
    AsJson,
    ConfigFile,
    Quiet,
    Url,
    UserRef,
    emit_json,
    err,
    open_ledger,
    out,
    resolve_user,
    table,
)

__all__ = ["keys"]

keys = typer.Typer(help="API keys.", no_args_is_help=True)


@keys.command()
def create(
    user: UserRef,
    name: Annotated[str | None, typer.Option(help="A label.", show_default=False)] = None,
    expires_in_days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Valid for this many days (default: no expiry).", show_default=False
        ),
    ] = None,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Create an API key. Its secret is printed this once and stored nowhere."""
    expires = None
    if expires_in_days is not None:
        expires = datetime.now(UTC) + timedelta(days=expires_in_days)
    with open_ledger(url, config_file) as ledger:
        created = ledger.api_keys.create(resolve_user(ledger, user), name=name, expires_at=expires)
    if as_json:
        emit_json({"key": created.key, "secret": created.secret})
    elif quiet:
        typer.echo(created.secret)
    else:
        out.print(f"created key {created.key.id} ({created.key.prefix})", highlight=False)
        typer.echo(created.secret)
        err.print("This secret is shown once: store it now.", highlight=False)


def _row(key: ApiKey) -> list[str]:
    def when(value: datetime | None) -> str:
        return "" if value is None else value.isoformat(timespec="seconds")

    return [
        str(key.id),
        str(key.user_id),
        key.name or "",
        key.prefix,
        when(key.created_at),
        when(key.expires_at),
        when(key.revoked_at),
        when(key.last_used_at),
    ]


@keys.command("list")
def list_(
    user: Annotated[
        str | None,
        typer.Option(help=f"Only this user's keys. {USER_REF_HELP}", show_default=False),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """List API keys, oldest first (never their secrets)."""
    with open_ledger(url, config_file) as ledger:
        owner = None if user is None else resolve_user(ledger, user)
        found = ledger.api_keys.list(user_id=owner, include_revoked=all_)
    if as_json:
        emit_json(found)
        return
    grid = table("id", "user", "name", "prefix", "created", "expires", "revoked", "last used")
    for key in found:
        grid.add_row(*_row(key))
    out.print(grid)


@keys.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Revoke an API key: it stops verifying at once."""
    with open_ledger(url, config_file) as ledger:
        key = ledger.api_keys.revoke(key_id)
    if as_json:
        emit_json(key)
    elif not quiet:
        out.print(f"revoked key {key.id} ({key.prefix})", highlight=False)
