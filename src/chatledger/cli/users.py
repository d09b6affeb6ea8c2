"""``chatledger users create | list`` and ``chatledger erase-user``."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import (
    AsJson,
    ConfigFile,
    Quiet,
    Url,
    UserRef,
    Yes,
    confirm,
    emit_json,
    open_ledger,
    out,
    resolve_user,
    table,
)

__all__ = ["erase_user", "users"]

users = typer.Typer(help="Users.", no_args_is_help=True)


@users.command()
def create(
    external_id: Annotated[
        str | None, typer.Option(help="The id your auth system gives them.", show_default=False)
    ] = None,
    email: Annotated[str | None, typer.Option(show_default=False)] = None,
    username: Annotated[str | None, typer.Option(show_default=False)] = None,
    display_name: Annotated[str | None, typer.Option(show_default=False)] = None,
    role: Annotated[str, typer.Option(help="'user', 'admin' or any role name.")] = "user",
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Create a user. Give at least one of --external-id, --email and --username: they are
    how the user is found again."""
    if external_id is None and email is None and username is None:
        raise typer.BadParameter(
            "give at least one of --external-id, --email and --username "
            "(a user with none of them cannot be named again)",
            param_hint="'--external-id' / '--email' / '--username'",
        )
    with open_ledger(url, config_file) as ledger:
        user = ledger.users.create(
            external_id=external_id,
            email=email,
            username=username,
            display_name=display_name,
            role=role,
        )
    if as_json:
        emit_json(user)
    elif quiet:
        typer.echo(str(user.id))
    else:
        out.print(f"created user {user.id}", highlight=False)


@users.command("list")
def list_(
    role: Annotated[str | None, typer.Option(help="Only users with this role.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Users per page.")] = 50,
    after: Annotated[
        str | None, typer.Option(help="Cursor of the page to continue from.", show_default=False)
    ] = None,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """List users in creation order, a page at a time."""
    with open_ledger(url, config_file) as ledger:
        if role is None:
            page = ledger.users.list(limit=limit, after=after)
        else:
            page = ledger.users.with_role(role, limit=limit, after=after)
    if as_json:
        emit_json(
            {
                "users": list(page.items),
                "next": page.last_cursor if page.has_more else None,
            }
        )
        return
    grid = table("id", "external id", "email", "username", "name", "role", "created")
    for user in page.items:
        grid.add_row(
            str(user.id),
            user.external_id or "",
            user.email or "",
            user.username or "",
            user.display_name or "",
            user.role,
            user.created_at.isoformat(timespec="seconds"),
        )
    out.print(grid)
    if page.has_more:
        out.print(f"more: --after {page.last_cursor}", highlight=False)


def erase_user(
    user: UserRef,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, change nothing.")] = False,
    yes: Yes = False,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Erase a user and every row of theirs for good (their audit events are redacted)."""
    with open_ledger(url, config_file) as ledger:
        user_id = resolve_user(ledger, user)
        if dry_run:
            report = ledger.users.preview_erase(user_id)
        else:
            confirm(f"Erase user {user_id} and all their data for good?", yes)
            report = ledger.users.erase(user_id)
    if as_json:
        emit_json({"dry_run": dry_run, **vars_of(report)})
        return
    grid = table("table", "rows" + (" to delete" if dry_run else " deleted"))
    for name, count in report.deleted.items():
        grid.add_row(name, str(count))
    out.print(grid)
    verb = "would be" if dry_run else "were"
    out.print(
        f"{report.redacted_audit_events} audit events {verb} redacted"
        + (" (dry run: nothing changed)" if dry_run else f"; user {user_id} is erased"),
        highlight=False,
    )


def vars_of(report: object) -> dict[str, object]:
    """A record's fields, for JSON output."""
    return {name: getattr(report, name) for name in getattr(report, "__dataclass_fields__", {})}
