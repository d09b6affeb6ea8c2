"""``chatledger init`` and ``chatledger doctor``: set up the database, and check it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ._common import AsJson, ConfigFile, Quiet, Url, emit_json, load_config, out

__all__ = ["doctor", "init"]


def init(
    create_database: Annotated[
        bool,
        typer.Option(
            "--create-database",
            help="PostgreSQL and MariaDB: create the database first when it does not exist "
            "(the user needs the right to create databases).",
        ),
    ] = False,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Create or upgrade the configured database to the newest schema, and say where it is."""
    from .. import migrate

    config = load_config(url, config_file)
    created = migrate.create_database(config.url) if create_database else False
    before = migrate.current(config.url)
    migrate.upgrade(config.url)
    after = migrate.current(config.url)
    if as_json:
        emit_json(
            {
                "url": config.redacted_url(),
                "database_created": created,
                "before": before,
                "revision": after,
            }
        )
        return
    if quiet:
        return
    if created:
        out.print(f"created the database {config.url.database}", highlight=False)
    if before == after:
        out.print(f"{config.redacted_url()} is up to date (revision {after})", highlight=False)
    else:
        state = "created" if before is None else f"upgraded from {before}"
        out.print(f"{config.redacted_url()}: {state}, now at revision {after}", highlight=False)


def doctor(url: Url = None, config_file: ConfigFile = None, as_json: AsJson = False) -> None:
    """Show the configuration in effect (and where each value came from), whether the database
    is reachable, its version, schema revision and pending migrations, and a verdict. Exits 1
    when the database is not usable as it stands."""
    from .._diagnose import diagnose

    found = diagnose(load_config(url, config_file))
    if as_json:
        emit_json(
            {
                "ok": found.ok,
                "url": found.url,
                "backend": found.backend,
                "settings": {
                    name: {"value": value, "source": source}
                    for name, (value, source) in found.settings.items()
                },
                "reachable": found.reachable,
                "connections_per_process": found.connections,
                "pools": found.pools,
                "server_version": found.server_version,
                "revision": found.revision,
                "head": found.head,
                "pending_migrations": found.migrations,
                "pending": found.pending,
                "sqlite_version": found.sqlite_version,
                "sqlite_library": found.sqlite_library,
                "sqlite_wal_reset_bug": found.sqlite_wal_reset_bug,
                "notes": found.notes,
                "journal_mode": found.journal_mode,
                "replicas": found.replicas,
                "litefs": found.litefs,
                "problems": found.problems,
                "warnings": found.warnings,
            }
        )
    else:
        settings = Table("setting", "value", "from", title="configuration")
        for name, (value, source) in found.settings.items():
            settings.add_row(name, str(value), source)
        out.print(settings)
        facts = Table("check", "result", title="database", show_header=False)
        facts.add_row("backend", found.backend)
        reachable = "yes" if found.reachable else "not created yet" if found.notes else "no"
        facts.add_row("reachable", reachable)
        facts.add_row("connections per process", f"up to {found.connections} ({found.pools})")
        if found.server_version:
            facts.add_row("server version", found.server_version)
        if found.sqlite_version:
            bug = "has the WAL-reset bug" if found.sqlite_wal_reset_bug else "no WAL-reset bug"
            facts.add_row("SQLite library", f"{found.sqlite_library} {found.sqlite_version}")
            facts.add_row("SQLite WAL-reset bug", bug)
        if found.journal_mode:
            facts.add_row("journal mode", found.journal_mode)
        facts.add_row("schema revision", found.revision or "-")
        facts.add_row("newest revision", found.head)
        facts.add_row("pending migrations", str(len(found.migrations)))
        facts.add_row("differences from the models", str(len(found.pending)))
        out.print(facts)
        if found.replicas:
            replicas = Table("replica", "reachable", "lag", "position", title="replicas")
            for entry in found.replicas:
                lag = entry["lag"]
                shown = "-" if lag is None else f"{lag:.2f}s"
                reachable = "yes" if entry["reachable"] else f"no: {entry['error']}"
                replicas.add_row(str(entry["url"]), reachable, shown, str(entry["position"]))
            out.print(replicas)
        if found.litefs is not None:
            role = "primary" if found.litefs["primary"] else "replica"
            host = found.litefs["primary_host"]
            out.print(
                f"LiteFS: {found.litefs['mount']}, this node is the {role}"
                + (f" (primary: {host})" if host else "")
                + f", position {found.litefs['position']}",
                markup=False,
                highlight=False,
            )
        for step in found.migrations:
            out.print(f"pending migration: {step}", markup=False, highlight=False)
        for diff in found.pending:
            out.print(f"pending: {diff}", markup=False, highlight=False)
        for warning in found.warnings:
            out.print(f"warning: {warning}", markup=False, highlight=False)
        for note in found.notes:
            out.print(f"note: {note}", markup=False, highlight=False)
        for problem in found.problems:
            out.print(f"problem: {problem}", markup=False, highlight=False)
        verdict = "OK: ready to use" if found.ok else f"NOT OK: {len(found.problems)} problem(s)"
        out.print(f"verdict: {verdict}", markup=False, highlight=False)
    if not found.ok:
        raise typer.Exit(1)
