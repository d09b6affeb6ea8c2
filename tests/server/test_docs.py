"""docs/server.md cannot rot: every operation of the OpenAPI document is in its route table, and
every option of ``chatledger serve`` is in its option table."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command

from chatledger.cli import app
from chatledger.server import create_app

DOC = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()


def test_every_route_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z]+)` \| `([^`]+)` \|", DOC, flags=re.MULTILINE))
    operations = {
        (method.upper(), path)
        for path, methods in create_app("sqlite:///:memory:").openapi()["paths"].items()
        for method in methods
    }
    assert operations - documented == set(), "routes missing from docs/server.md"
    assert documented - operations == set(), "docs/server.md lists routes that do not exist"


def test_every_serve_option_is_documented() -> None:
    serve = get_command(app).commands["serve"]  # type: ignore[attr-defined]
    for parameter in serve.params:
        for option in parameter.opts:
            assert f"`{option}`" in DOC, f"{option} is not in docs/server.md"
