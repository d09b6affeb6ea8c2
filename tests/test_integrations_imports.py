"""The integrations import their framework only when used, and name the extra when it is
missing. Checked in fresh interpreters (this one has every framework imported already)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("langchain_core", "langgraph", "llama_index")


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )


def test_importing_chatledger_imports_no_framework():
    found = run(
        "import sys, chatledger, chatledger.integrations\n"
        f"print([m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}])"
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("langchain", "langchain_core", "langchain"),
        ("langgraph", "langgraph", "langgraph"),
        ("llamaindex", "llama_index", "llamaindex"),
    ],
)
def test_a_missing_framework_names_the_extra(module, blocked, extra):
    # Blocking the top-level package in sys.modules makes every import of it fail, as when it
    # is not installed.
    result = run(
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from chatledger import MissingDependencyError\n"
        "try:\n"
        f"    import chatledger.integrations.{module}\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    assert result.returncode == 0, result.stderr
    named, message = result.stdout.strip().split(" | ")
    assert named == extra
    assert f"chatledger[{extra}]" in message
