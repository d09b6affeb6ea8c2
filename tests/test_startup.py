"""Start-up stays cheap: ``import chatledger`` and ``chatledger --help`` import none of the
heavy dependencies (checked in fresh interpreters; timings live in bench/startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import chatledger

#: Imported only when used: migrations, the database drivers, the server, the CLI framework.
HEAVY = (
    "alembic",
    "psycopg",
    "psycopg2",
    "pg8000",
    "asyncpg",
    "pymysql",
    "aiomysql",
    "sqlite3",
    "pysqlite3",
    "fastapi",
    "uvicorn",
    "starlette",
    "typer",
    "rich",
    "pydantic",
    "yaml",
)


def _modules_after(code: str) -> set[str]:
    """The top-level packages imported by running ``code`` in a fresh interpreter."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {name.split(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}


def test_import_chatledger_imports_no_heavy_dependency():
    loaded = _modules_after("import chatledger")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert "sqlalchemy" not in loaded


def test_cli_help_imports_neither_the_database_layer_nor_migrations():
    loaded = _modules_after(
        "from typer.testing import CliRunner\n"
        "from chatledger.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0"
    )
    assert not loaded & {"alembic", "sqlalchemy", "pydantic", "fastapi", "uvicorn", "psycopg"}


def test_opening_a_ledger_does_not_import_the_server_or_the_cli():
    loaded = _modules_after("from chatledger import Ledger\nLedger('sqlite://').close()")
    assert not loaded & {"fastapi", "uvicorn", "typer", "rich"}


@pytest.mark.parametrize("name", chatledger.__all__)
def test_every_public_name_resolves(name):
    assert getattr(chatledger, name) is not None
    assert name in dir(chatledger)


def test_star_import_and_unknown_names():
    namespace: dict[str, object] = {}
    exec("from chatledger import *", namespace)
    assert set(chatledger.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = chatledger.no_such_name
