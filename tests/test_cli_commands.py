"""Every `chatledger` command through Typer's runner (the data-touching ones on every backend),
the installed executable end to end, and the generated CLI reference."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from chatledger import AuthenticationError, Ledger, migrate
from chatledger.cli import app

from ._transfer_data import populate

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
EXECUTABLE = shutil.which("chatledger") or f"{sys.prefix}/bin/chatledger"


def _url(url: URL | str) -> str:
    return url if isinstance(url, str) else url.render_as_string(hide_password=False)


def run(*args: str, ok: bool = True) -> Any:
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if hasattr(command, "commands"):
            found.extend(_commands(command, (*prefix, name)))
    return found


def test_every_command_has_help() -> None:
    commands = _commands(typer.main.get_command(app))
    names = {" ".join(c) for c in commands}
    assert names >= {
        "init",
        "doctor",
        "import",
        "export",
        "copy",
        "stats",
        "users create",
        "users list",
        "keys create",
        "keys list",
        "keys revoke",
        "audit verify",
        "erase-user",
        "retention",
        "db upgrade",
        "serve",
    }
    for command in commands:
        result = run(*command, "--help")
        assert "Usage:" in result.output
        if command not in {
            ("db",),
            ("users",),
            ("keys",),
            ("audit",),
            ("copy",),
            ("db", "history"),
        }:
            assert "--url" in result.output, command


def test_init_and_doctor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    missing = run_json("doctor", "--url", url)
    assert missing["ok"] is True  # the first open creates it: not a problem
    assert missing["problems"] == []
    assert "does not exist yet" in missing["notes"][0]
    assert missing["pending_migrations"][-1].startswith(migrate.head())
    assert not (tmp_path / "new.db").exists()  # doctor changes nothing

    migrate.upgrade(url, "0001")
    old = run_json_failing("doctor", "--url", url)
    assert old["revision"] == "0001"
    assert old["pending_migrations"][0].startswith("0002")
    assert old["pending_migrations"][-1].startswith(migrate.head())
    assert "chatledger db upgrade" in old["problems"][0]
    migrate.downgrade(url, "base")

    assert "created, now at revision" in run("init", "--url", url).output
    assert "up to date" in run("init", "--url", url).output
    found = run_json("doctor", "--url", url)
    assert found["ok"] is True
    assert found["revision"] == found["head"]
    assert found["pending_migrations"] == []
    assert found["pending"] == []
    assert found["settings"]["url"] == {"value": url, "source": "argument"}
    assert found["settings"]["echo"]["source"] == "default"
    assert found["journal_mode"] == "wal"
    assert found["sqlite_version"]
    text = run("doctor", "--url", url).output
    assert "verdict: OK" in text
    assert "sqlite_busy_timeout" in text


def run_json_failing(*args: str) -> Any:
    result = run(*args, "--json", ok=False)
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout)


def test_doctor_hides_the_password_and_fails_when_unreachable() -> None:
    result = run("doctor", "--url", "postgresql://u:pw-secret@127.0.0.1:1/x", ok=False)
    assert result.exit_code == 1
    assert "pw-secret" not in result.output
    assert "***" in result.output
    assert "unreachable" in result.output


def test_users_and_keys(database_url: URL) -> None:
    url = _url(database_url)
    user = run_json(
        "users", "create", "--external-id", "cli-1", "--email", "A@Example.com", "--url", url
    )
    assert user["email"] == "a@example.com"
    run("users", "create", "--external-id", "cli-2", "--role", "admin", "--url", url)
    listed = run_json("users", "list", "--url", url, "--limit", "1")
    assert [u["external_id"] for u in listed["users"]] == ["cli-1"]
    assert listed["next"]
    rest = run_json("users", "list", "--url", url, "--after", listed["next"])
    assert [u["external_id"] for u in rest["users"]] == ["cli-2"]
    admins = run_json("users", "list", "--role", "admin", "--url", url)
    assert [u["external_id"] for u in admins["users"]] == ["cli-2"]

    created = run("keys", "create", "cli-1", "--name", "ci", "--url", url)
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("clk_")
    assert "shown once" in created.stderr
    keys = run_json("keys", "list", "--user", "cli-1", "--url", url)
    assert [k["name"] for k in keys] == ["ci"]
    assert secret not in json.dumps(keys)
    with Ledger(database_url) as ledger:
        assert str(ledger.api_keys.verify(secret).id) == keys[0]["id"]
    revoked = run_json("keys", "revoke", keys[0]["id"], "--url", url)
    assert revoked["revoked_at"]
    assert run_json("keys", "list", "--url", url) == []
    assert len(run_json("keys", "list", "--all", "--url", url)) == 1
    with Ledger(database_url) as ledger, pytest.raises(AuthenticationError):
        ledger.api_keys.verify(secret)

    duplicate = run("users", "create", "--external-id", "cli-1", "--url", url, ok=False)
    assert duplicate.exit_code == 1
    assert duplicate.stderr.startswith("error: external_id is already taken")
    assert "Traceback" not in duplicate.output


def test_stats(database_url: URL) -> None:
    with Ledger(database_url) as ledger:
        ids = populate(ledger)
    url = _url(database_url)
    found = run_json("stats", "--url", url)
    assert found["counts"]["messages"] == 4
    assert found["counts"]["users"] == 2
    assert found["total"]["cost"] == "1.500199"
    by_model = {row["key"]: row for row in found["by_model"]}
    assert by_model["gpt-4o-mini"]["input_tokens"] == 412
    assert by_model["gpt-4o-mini"]["cost"] == "0.000199"
    assert len(found["by_day"]) == 1
    mine = run_json("stats", "--user", str(ids["ada"]), "--url", url)
    assert mine["total"]["messages"] == 3
    assert mine["counts"]["users"] == 1
    assert run_json("stats", "--since", "2999-01-01", "--url", url)["total"]["messages"] == 0
    text = run("stats", "--url", url).output
    assert "gpt-4o-mini" in text
    assert "1.500199" in text
    assert run("stats", "--since", "yesterday", "--url", url, ok=False).exit_code == 2


def test_search(database_url: URL) -> None:
    with Ledger(database_url) as ledger:
        ada = ledger.users.create(external_id="ada")
        chat = ledger.conversations.create(ada.id, title="Zeppelin plans")
        ledger.messages.append(chat.id, "user", "zeppelin over Lisbon?")
        answer = ledger.messages.append(chat.id, "assistant", "A zeppelin over Alfama")
        ledger.trees.regenerate(answer.id, "A zeppelin over Belém")
        other = ledger.users.create(external_id="bob")
        theirs = ledger.conversations.create(other.id)
        ledger.messages.append(theirs.id, "user", "my own zeppelin")
    url = _url(database_url)

    def seqs(*args: str) -> list[tuple[str, int]]:
        found = run_json("search", "zeppelin", *args, "--url", url)
        return sorted((hit["message"]["conversation_id"], hit["message"]["seq"]) for hit in found)

    mine = [(str(chat.id), seq) for seq in (1, 2, 3)]
    assert seqs("--user", "ada") == mine
    assert seqs("--user", "ada", "--branch", "all") == mine
    assert seqs("--user", "ada", "--branch", "active") == [mine[0], mine[2]]
    assert len(seqs()) == 4  # the ledger searches across users
    titles = run_json("search", "zeppelin", "--titles", "--url", url)
    assert [hit["conversation"]["id"] for hit in titles] == [str(chat.id)]
    text = run("search", "alfama", "--user", "ada", "--url", url).output
    assert "Alfama" in text
    refused = run("search", "zeppelin", "--branch", "sideways", "--url", url, ok=False)
    assert refused.exit_code != 0
    assert "branch" in refused.output


def test_audit_verify(database_url: URL) -> None:
    with Ledger(database_url) as ledger:
        ledger.audit.record("user.signed_in")
        ledger.audit.record("user.signed_out")
    url = _url(database_url)
    assert run_json("audit", "verify", "--url", url)["ok"] is True
    assert "intact: 2 events" in run("audit", "verify", "--url", url).output
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET event_type = 'forged' WHERE seq = 1"))
    engine.dispose()
    broken = run("audit", "verify", "--url", url, ok=False)
    assert broken.exit_code == 1
    assert "broken at event 1" in broken.stderr


def test_erase_user_and_retention_confirm(database_url: URL) -> None:
    with Ledger(database_url) as ledger:
        ids = populate(ledger)
    url = _url(database_url)
    preview = run_json("erase-user", "ada-a", "--dry-run", "--url", url)
    assert preview["dry_run"] is True
    assert preview["deleted"]["messages"] == 3
    refused = run("erase-user", "ada-a", "--url", url, ok=False)
    assert refused.exit_code == 1
    assert "--yes" in refused.stderr
    with Ledger(database_url) as ledger:
        assert ledger.users.get(ids["ada"])
    erased = run_json("erase-user", str(ids["ada"]), "--yes", "--url", url)
    assert erased["deleted"] == preview["deleted"]
    missing = run("erase-user", "ada-a", "--yes", "--url", url, ok=False)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: ")

    dry = run_json("retention", "--inactive-days", "1", "--dry-run", "--url", url)
    assert dry["dry_run"] is True
    assert dry["conversations"] == 0
    assert run("retention", "--inactive-days", "1", "--url", url, ok=False).exit_code == 1
    done = run_json(
        "retention", "--inactive-days", "1", "--action", "delete", "--yes", "--url", url
    )
    assert done["dry_run"] is False
    assert run("retention", "--inactive-days", "0", "--url", url, ok=False).exit_code == 2
    assert (
        run("retention", "--inactive-days", "1", "--action", "x", "--url", url, ok=False).exit_code
        == 2
    )


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_export_then_import(database_url: URL, tmp_path: Path, fmt: str) -> None:
    with Ledger(database_url) as ledger:
        ids = populate(ledger)
    url = _url(database_url)
    out = tmp_path / f"all.{fmt}"
    run("export", "--format", fmt, "-o", str(out), "--url", url)
    assert not list(tmp_path.glob(".*.partial"))
    target = f"sqlite:///{tmp_path / 'target.db'}"
    first = run_json("import", str(out), "--url", target)
    assert first["inserted"]["messages"] == 4
    second = run_json("import", str(out), "--url", target)
    assert sum(second["inserted"].values()) == 0
    assert second["skipped"]["messages"] == 4
    again = tmp_path / f"again.{fmt}"
    run("export", "--format", fmt, "-o", str(again), "--url", target)
    strip = _strip_time(fmt)
    assert strip(out.read_text()) == strip(again.read_text())

    transcript = run(
        "export", "--format", "markdown", "--conversation", str(ids["chat"]), "--url", url
    )
    assert transcript.stdout.startswith("# Trip to Lisbon")
    one = run("export", "--user", "ada-a", "--url", url)
    assert json.loads(one.stdout)["scope"]["id"] == str(ids["ada"])
    bad = run("export", "--user", "nobody", "-o", str(tmp_path / "no.json"), "--url", url, ok=False)
    assert bad.exit_code == 1
    assert not (tmp_path / "no.json").exists()
    assert run("export", "--format", "xml", "--url", url, ok=False).exit_code == 2


def _strip_time(fmt: str) -> Any:
    def strip(text: str) -> Any:
        if fmt == "json":
            document = json.loads(text)
            document.pop("exported_at")
            return document
        lines = [json.loads(line) for line in text.splitlines()]
        lines[0].pop("exported_at")
        return lines

    return strip


def test_import_foreign_formats_twice(database_url: URL) -> None:
    url = _url(database_url)
    chatgpt = str(DATA / "chatgpt_conversations.json")
    first = run_json("import", chatgpt, "--user", "gpt-user", "--url", url)
    assert first == {
        "format": "chatgpt",
        "inserted": {"conversations": 2, "messages": 5},
        "skipped": {"conversations": 0, "messages": 0},
        "not_imported": {},
    }
    assert run_json("import", chatgpt, "--user", "gpt-user", "--url", url)["inserted"] == {
        "conversations": 0,
        "messages": 0,
    }
    for name, table in (("visitors.json", "visitors"), ("feedback.json", "product_feedback")):
        assert run_json("import", str(DATA / name), "--url", url)["inserted"] == {table: 2}
        assert run_json("import", str(DATA / name), "--url", url)["skipped"] == {table: 2}
    forced = run(
        "import", str(DATA / "visitors.json"), "--format", "feedback", "--url", url, ok=False
    )
    assert forced.exit_code == 1
    assert "feedback 0" in forced.stderr
    assert "agent_name" in forced.stderr
    assert run("import", str(DATA / "nope.json"), "--url", url, ok=False).exit_code == 2
    assert run("import", chatgpt, "--format", "csv", "--url", url, ok=False).exit_code == 2


def test_copy_command(database_url: URL, tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with Ledger(source) as ledger:
        populate(ledger)
    report = run_json("copy", source, _url(database_url), "--batch-size", "2")
    assert report["ok"] is True
    assert report["backup"].startswith(str(tmp_path / "source.db.backup."))
    tables = {t["table"]: t for t in report["tables"]}
    assert tables["messages"]["copied"] == 4
    assert all(t["ok"] for t in report["tables"])
    text = run("copy", source, _url(database_url), "--no-backup")
    assert "verified: every table matches" in text.output
    assert "rows/s" in text.output


def _cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    return subprocess.run(
        [EXECUTABLE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        input=stdin,
    )


def test_installed_executable_end_to_end(tmp_path: Path) -> None:
    database = tmp_path / "e2e.db"
    env = {"CHATLEDGER_DATABASE_URL": f"sqlite:///{database}"}
    init = _cli("init", env=env)
    assert init.returncode == 0, init.stderr
    assert str(database) in init.stdout
    assert init.stderr == ""  # the SQLite warning is doctor's to report, not every command's

    imported = _cli(
        "import", str(DATA / "chatgpt_conversations.json"), "--user", "me", "--json", env=env
    )
    assert imported.returncode == 0, imported.stderr
    assert (
        json.loads(imported.stdout)["inserted"]["messages"] == 5
    )  # every branch of the tree (trees, issue 14)

    exported = _cli("export", "--format", "jsonl", env=env)
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert json.loads(lines[0])["kind"] == "chatledger-export"
    assert sum(json.loads(line)["table"] == "messages" for line in lines[1:]) == 5
    assert exported.stderr == ""  # no progress bar on a pipe

    copied = _cli("copy", f"sqlite:///{database}", f"sqlite:///{tmp_path / 'copy.db'}", "--quiet")
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout == ""

    refused = _cli("erase-user", "me", env=env, stdin="y\n")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ")
    assert "--yes" in refused.stderr

    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    failed = _cli("import", str(broken), env=env)
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.startswith(f"error: {broken}: is not valid JSON")

    usage = _cli("copy", env=env)
    assert usage.returncode == 2

    secret = "pw-never-shown"
    backups = len(list(tmp_path.glob("e2e.db.backup.*")))
    unreachable = _cli("copy", f"sqlite:///{database}", f"postgresql://u:{secret}@127.0.0.1:1/x")
    assert unreachable.returncode == 1
    assert unreachable.stderr.splitlines()[-1].startswith("error: transient database failure")
    assert len(list(tmp_path.glob("e2e.db.backup.*"))) == backups  # checked before backing up
    assert "Traceback" not in unreachable.stderr
    assert secret not in unreachable.stdout + unreachable.stderr


def test_cli_reference_is_up_to_date(tmp_path: Path) -> None:
    generated = tmp_path / "cli.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "cli_docs.py"), "--output", str(generated)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (ROOT / "docs" / "cli.md").read_text() == generated.read_text(), (
        "docs/cli.md is stale: run `.venv/bin/python tools/cli_docs.py`"
    )


def test_debug_shows_the_traceback_and_quiet_prints_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    plain = run("erase-user", "nobody", "--yes", "--url", url, ok=False)
    assert plain.exit_code == 1
    assert plain.exception is None or isinstance(plain.exception, SystemExit)
    debug = runner.invoke(app, ["--debug", "erase-user", "nobody", "--yes", "--url", url])
    assert debug.exit_code == 1
    assert type(debug.exception).__name__ == "NotFoundError"
    quiet = run("import", str(DATA / "feedback.json"), "--quiet", "--url", url)
    assert quiet.output == ""
    assert run("init", "--quiet", "--url", url).output == ""


def test_progress_bars_draw_on_a_terminal(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with Ledger(source) as ledger:
        populate(ledger)
    command = [EXECUTABLE, "copy", source, f"sqlite:///{tmp_path / 'copy.db'}", "--batch-size", "1"]
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            command, stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True
        )
        os.close(secondary)
        output = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=120) == 0
    finally:
        os.close(primary)
    text = output.decode("utf-8", "replace")
    assert "━" in text  # a Rich bar
    assert "messages" in text
    assert "verified: every table matches" in text
