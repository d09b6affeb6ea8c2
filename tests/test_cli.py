"""The `chatledger db` commands, through Typer's runner and as the installed executable."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from chatledger import TransientError, migrate
from chatledger.cli import app

runner = CliRunner()


def test_db_commands_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = runner.invoke(app, ["db", "current", "--url", url])
    assert result.exit_code == 0, result.output
    assert "not initialised" in result.output

    result = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 0, result.output
    assert migrate.current(url) == migrate.head()

    assert runner.invoke(app, ["db", "check", "--url", url]).exit_code == 0
    history = runner.invoke(app, ["db", "history"])
    assert migrate.head() in history.output

    result = runner.invoke(app, ["db", "downgrade", "base", "--url", url])
    assert result.exit_code == 0, result.output
    assert migrate.current(url) is None


def test_errors_are_one_line_and_exit_1_without_a_traceback():
    executable = shutil.which("chatledger") or f"{sys.prefix}/bin/chatledger"
    secret = "pw-that-must-not-leak"
    result = subprocess.run(
        [executable, "db", "current", "--url", f"postgresql://u:{secret}@127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert secret not in result.stderr + result.stdout


def test_usage_errors_exit_2():
    assert runner.invoke(app, ["db", "no-such-command"]).exit_code == 2


def test_migrate_functions_translate_driver_errors():
    with pytest.raises(TransientError):
        migrate.current("postgresql://u:x@127.0.0.1:1/x")
