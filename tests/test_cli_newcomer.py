"""What a new user and the five apps tripped over on the command line (issue 20), driven
through the installed ``chatledger`` executable; prompts through a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import sqlite3
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import ConfigurationError, Ledger, ValidationError, migrate, transfer

from .test_cli_commands import DATA, EXECUTABLE

CHATGPT = (DATA / "chatgpt_conversations.json").read_text(encoding="utf-8")


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    return subprocess.run(
        [EXECUTABLE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def on_terminal(args: list[str], answer: str | None, env: dict[str, str] | None = None) -> str:
    """Run the executable on a pseudo-terminal; type ``answer`` when it asks. Returns what it
    printed; the exit code must be 0 unless the answer is no."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [EXECUTABLE, *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        close_fds=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    os.close(secondary)
    output = b""
    answered = answer is None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not chunk:
                    break
                output += chunk
            if not answered and b"[y/N]" in output:
                os.write(primary, answer.encode() + b"\n")  # type: ignore[union-attr]
                answered = True
            if process.poll() is not None and not ready:
                break
        code = process.wait(timeout=60)
    finally:
        os.close(primary)
    text = output.decode("utf-8", "replace").replace("\r\n", "\n")
    assert code == (1 if answer == "n" else 0), text
    return text


def one_error_line(result: Any, *fragments: str) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return str(lines[0])


# --- import: the files people actually have -------------------------------------------------


def test_import_reads_the_zip_chatgpt_delivers(tmp_path: Path) -> None:
    archive = tmp_path / "chatgpt-export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("conversations.json", CHATGPT)
        zipped.writestr("chat.html", "<html></html>")
        zipped.writestr("user.json", "{}")
    env = {"CHATLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'z.db'}"}
    first = cli("import", str(archive), "--user", "me", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert (
        json.loads(first.stdout)["inserted"]["messages"] == 5
    )  # every branch of the tree (trees, issue 14)
    again = cli("import", str(archive), "--user", "me", "--json", env=env)
    assert json.loads(again.stdout)["inserted"]["messages"] == 0


def test_import_reads_the_split_conversations_of_newer_exports(tmp_path: Path) -> None:
    conversations = json.loads(CHATGPT)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("export/conversations-001.json", json.dumps(conversations[1:]))
        zipped.writestr("export/conversations-000.json", json.dumps(conversations[:1]))
    with Ledger(f"sqlite:///{tmp_path / 'z.db'}") as ledger:
        report = transfer.import_data(ledger, archive, user="me")
    assert report.format == "chatgpt"
    assert report.inserted["conversations"] == len(conversations)


def _unreadable(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    files = {
        "latin1": ("visitors.json", '[{"name": "José"}]'.encode("latin-1"), "is not UTF-8 text"),
        "binary": ("photo.jpg", bytes(range(256)) * 4, "is a binary file"),
        "random": ("noise.bin", os.urandom(2048).replace(b"\x00", b"\x01"), "is a binary file"),
        "malformed": ("broken.json", b'{"tables": [', "is not valid JSON"),
        "zip without conversations": ("other.zip", None, "without conversations.json"),
        "damaged zip": ("damaged.zip", None, "damaged"),
        "sqlite": ("chat.db", None, "is an SQLite database"),
    }
    made: dict[str, tuple[Path, str]] = {}
    for label, (name, content, problem) in files.items():
        path = tmp_path / name
        if label == "zip without conversations":
            with zipfile.ZipFile(path, "w") as zipped:
                zipped.writestr("notes.txt", "hello")
        elif label == "damaged zip":
            with zipfile.ZipFile(path, "w") as zipped:
                zipped.writestr("conversations.json", CHATGPT)
            raw = bytearray(path.read_bytes())
            raw[40:80] = b"\xff" * 40  # inside the member's compressed data and header
            path.write_bytes(bytes(raw))
        elif label == "sqlite":
            with sqlite3.connect(path) as conn:
                conn.execute("CREATE TABLE t (x)")
        else:
            assert content is not None
            path.write_bytes(content)
        made[label] = (path, problem)
    return made


@pytest.mark.parametrize(
    "label",
    [
        "latin1",
        "binary",
        "random",
        "malformed",
        "zip without conversations",
        "damaged zip",
        "sqlite",
    ],
)
def test_an_unreadable_import_is_one_line_naming_the_file(tmp_path: Path, label: str) -> None:
    path, problem = _unreadable(tmp_path)[label]
    env = {"CHATLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}"}
    result = cli("import", str(path), "--user", "me", env=env)
    line = one_error_line(result, str(path))
    if label == "damaged zip":
        assert "ZIP" in line or "JSON" in line or "UTF-8" in line
    else:
        assert problem in line
    # The library raises a chatledger error, never a raw decoding error.
    with Ledger(f"sqlite:///{tmp_path / 'u.db'}") as ledger, pytest.raises(ValidationError):
        transfer.import_data(ledger, path, user="me")


def test_a_json_file_with_a_byte_order_mark_imports(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + (DATA / "feedback.json").read_bytes())
    env = {"CHATLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    result = cli("import", str(path), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["format"] == "feedback"


def test_forcing_the_jsonl_format_on_a_latin1_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes('{"kind": "chatledger-export"}\n{"café": 1}\n'.encode("latin-1"))
    env = {"CHATLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}"}
    result = cli("import", str(path), "--format", "chatledger-jsonl", env=env)
    one_error_line(result, str(path))


# --- db downgrade -------------------------------------------------------------------------


def _with_data(tmp_path: Path) -> tuple[str, Path]:
    database = tmp_path / "down.db"
    url = f"sqlite:///{database}"
    with Ledger(url) as ledger:
        user = ledger.users.create(external_id="keep-me")
        ledger.messages.append(ledger.conversations.create(user.id).id, "user", "hello")
    return url, database


def _backups(database: Path) -> list[Path]:
    return sorted(database.parent.glob(f"{database.name}.backup.*"))


def test_downgrade_that_drops_data_asks_on_a_terminal(tmp_path: Path) -> None:
    url, database = _with_data(tmp_path)
    declined = on_terminal(["db", "downgrade", "base", "--url", url], "n")
    assert "Downgrade" in declined
    assert "users 1" in declined
    assert "messages 1" in declined
    assert "aborted: nothing changed" in declined
    assert migrate.current(url) == migrate.head()
    assert _backups(database) == []

    accepted = on_terminal(["db", "downgrade", "base", "--url", url], "y")
    assert migrate.current(url) is None
    [backup] = _backups(database)
    assert f"backup: {backup}" in accepted
    assert "table users" in accepted
    assert "table messages" in accepted
    assert "no chatledger schema (base)" in accepted
    assert "revision None" not in accepted
    with sqlite3.connect(backup) as saved:  # the backup holds what was dropped
        assert saved.execute("SELECT external_id FROM users").fetchall() == [("keep-me",)]


def test_downgrade_refuses_without_yes_when_not_on_a_terminal(tmp_path: Path) -> None:
    url, database = _with_data(tmp_path)
    refused = cli("db", "downgrade", "base", "--url", url, stdin="y\n")
    one_error_line(refused, "--yes", "not a terminal")
    assert migrate.current(url) == migrate.head()
    assert _backups(database) == []

    done = cli("db", "downgrade", "base", "--url", url, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["before"] == migrate.head()
    assert report["revision"] is None
    assert report["backup"] == str(_backups(database)[0])
    assert report["removed_tables"]["users"] == 1  # every table, with the rows it held
    assert report["removed_tables"]["messages"] == 1


def test_downgrade_of_an_empty_database_does_not_ask(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    migrate.upgrade(url)
    result = cli("db", "downgrade", "base", "--url", url, "--no-backup")
    assert result.returncode == 0, result.stderr
    assert migrate.current(url) is None
    assert _backups(tmp_path / "empty.db") == []


# --- copy backs up once per copy that writes ------------------------------------------------


def test_copy_backs_up_only_when_it_writes_and_says_where(tmp_path: Path) -> None:
    source_file = tmp_path / "source.db"
    source, target = f"sqlite:///{source_file}", f"sqlite:///{tmp_path / 'target.db'}"
    with Ledger(source) as ledger:
        ledger.users.create(external_id="u")
    first = cli("copy", source, target)
    assert first.returncode == 0, first.stderr
    [backup] = _backups(source_file)
    assert f"backup of the source: {backup}" in first.stdout
    second = cli("copy", source, target, "--json")
    assert json.loads(second.stdout)["backup"] is None
    assert len(_backups(source_file)) == 1
    with Ledger(source) as ledger:
        ledger.users.create(external_id="v")
    third = cli("copy", source, target, "--no-backup", "--json")
    assert json.loads(third.stdout)["rows_copied"] >= 1
    assert len(_backups(source_file)) == 1


# --- one way to name a user -------------------------------------------------------------------


def test_every_user_command_takes_id_external_id_email_or_username(tmp_path: Path) -> None:
    env = {"CHATLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'users.db'}"}
    created = cli(
        "users",
        "create",
        "--external-id",
        "auth0|7",
        "--email",
        "ada@example.com",
        "--username",
        "ada",
        "--json",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    user_id = json.loads(created.stdout)["id"]
    for ref in (user_id, "auth0|7", "ada@example.com", "ada"):
        made = cli("keys", "create", ref, "--json", env=env)
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["key"]["user_id"] == user_id
        listed = cli("keys", "list", "--user", ref, "--json", env=env)
        assert {key["user_id"] for key in json.loads(listed.stdout)} == {user_id}
        dry = cli("erase-user", ref, "--dry-run", "--json", env=env)
        assert dry.returncode == 0, dry.stderr
        stats = cli("stats", "--user", ref, "--json", env=env)
        assert stats.returncode == 0, stats.stderr
    missing = cli("keys", "create", "nobody@example.com", env=env)
    one_error_line(missing, "nobody@example.com")


def test_a_reference_naming_two_users_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    with Ledger(url) as ledger:
        ledger.users.create(external_id="bob")
        ledger.users.create(username="bob", email="b@example.com")
    result = cli("keys", "create", "bob", "--url", url)
    one_error_line(result, "names more than one user", "give the id")


def test_users_create_needs_an_identifying_field(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'blank.db'}"
    result = cli("users", "create", "--display-name", "Nobody", "--url", url)
    assert result.returncode == 2
    assert "--external-id" in result.stderr
    with Ledger(url) as ledger:
        assert ledger.users.count() == 0


def test_tables_show_whole_ids_on_a_narrow_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ids.db'}"
    with Ledger(url) as ledger:
        user = ledger.users.create(
            external_id="google-oauth2|1234567890", email="a.very.long.address@example.com"
        )
        key = ledger.api_keys.create(user.id, name="a key with a long name").key
    users = on_terminal(["users", "list", "--url", url], None, env={"COLUMNS": "70"})
    assert str(user.id) in users
    keys = on_terminal(["keys", "list", "--url", url], None, env={"COLUMNS": "70"})
    assert str(key.id) in keys
    assert str(user.id) in keys


def test_version_and_json_everywhere(tmp_path: Path) -> None:
    version = cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip().startswith("chatledger ")
    url = f"sqlite:///{tmp_path / 'j.db'}"
    for args in (
        ["init"],
        ["db", "upgrade"],
        ["db", "current"],
        ["db", "check"],
        ["db", "history"],
        ["users", "list"],
        ["keys", "list"],
        ["stats"],
        ["doctor"],
    ):
        result = cli(*args, "--url", url, "--json")
        assert result.returncode == 0, (args, result.stderr)
        json.loads(result.stdout)


def test_db_history_with_url_marks_where_the_database_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    migrate.upgrade(url, "0001")
    result = cli("db", "history", "--url", url, "--json")
    assert result.returncode == 0, result.stderr
    steps = {step["revision"]: step for step in json.loads(result.stdout)}
    assert steps["0001"]["current"] is True
    assert steps[migrate.head()]["head"] is True
    assert sum(step["current"] for step in steps.values()) == 1
    text = cli("db", "history", "--url", url)
    assert "0001 (current)" in text.stdout


# --- a database that does not exist ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_a_missing_server_database_is_a_configuration_error(database_url: URL) -> None:
    name = f"chatledger_missing_{uuid.uuid4().hex[:8]}"
    url = database_url.set(database=name)
    text_url = url.render_as_string(hide_password=False)
    with pytest.raises(ConfigurationError, match=name), Ledger(url) as ledger:
        ledger.users.count()
    result = cli("db", "current", "--url", text_url)
    one_error_line(result, name, "does not exist", "--create-database")
    try:
        created = cli("init", "--create-database", "--url", text_url, "--json")
        assert created.returncode == 0, created.stderr
        report = json.loads(created.stdout)
        assert report["database_created"] is True
        assert report["revision"] == migrate.head()
        again = cli("init", "--create-database", "--url", text_url, "--json")
        assert json.loads(again.stdout)["database_created"] is False
    finally:
        admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
        admin.dispose()


# --- doctor and the first open ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_doctor_on_an_empty_database_says_what_the_first_open_does(database_url: URL) -> None:
    migrate.downgrade(database_url, "base")
    try:
        url = database_url.render_as_string(hide_password=False)
        result = cli("doctor", "--url", url, "--json")
        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        assert found["ok"] is True
        assert "installs the schema" in found["notes"][0]
        assert len(found["pending_migrations"]) == len(migrate.history())
        assert found["connections_per_process"] >= 1
    finally:
        migrate.upgrade(database_url)


def test_doctor_shows_the_sqlite_library_and_each_url_part_source(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("database:\n  type: mariadb\n  mariadb:\n    database: coloraria\n")
    env = {"CHATLEDGER_CONFIG": str(config), "MARIADB_HOST": "db.invalid"}
    result = cli("doctor", "--json", env=env)
    found = json.loads(result.stdout)
    assert found["settings"]["url.host"] == {"value": "db.invalid", "source": "env MARIADB_HOST"}
    assert found["settings"]["url.database"]["source"] == f"file {config}"
    lite = cli("doctor", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--json")
    facts = json.loads(lite.stdout)
    assert facts["sqlite_library"].split()[0] in ("pysqlite3", "sqlite3")
    assert isinstance(facts["sqlite_wal_reset_bug"], bool)


def test_checkpointer_for_creates_the_default_data_directory(tmp_path: Path) -> None:
    pytest.importorskip("langgraph.checkpoint.sqlite")
    data = tmp_path / "no-such-dir"
    code = (
        "from chatledger.integrations.langgraph import checkpointer_for\n"
        "with checkpointer_for() as saver:\n"
        "    print(type(saver).__name__)\n"
    )
    result = subprocess.run(
        [str(Path(EXECUTABLE).parent / "python"), "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATABASE_TYPE": "sqlite", "XDG_DATA_HOME": str(data)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SqliteSaver"
    assert (data / "chatledger").is_dir()
