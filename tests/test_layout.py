"""The house: ``_sync/`` is only generated, and imports run down the layers, never back up."""

from __future__ import annotations

import ast
import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "chatledger"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_sync", ROOT / "tools/generate_sync.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _imported(path: Path) -> set[str]:
    """The modules ``path`` imports, as absolute names under ``chatledger``."""
    package = ["chatledger", *path.parent.relative_to(PACKAGE).parts]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _reaches(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / folder).glob("*.py")
        for name in _imported(path)
        if name.startswith(forbidden)
    )


def test_async_source_never_imports_the_generated_folder():
    assert _reaches("_async", ("chatledger._sync",)) == []


def test_runtime_imports_neither_surface():
    assert _reaches("_run", ("chatledger._sync", "chatledger._async")) == []


def test_the_import_scanner_sees_relative_imports():
    assert "chatledger._run.compat_async.Lock" in _imported(PACKAGE / "_async" / "_memory.py")
    assert "chatledger._backends" in _imported(PACKAGE / "_run" / "engine.py")


def test_every_async_module_is_generated_and_nothing_else(tmp_path):
    generator = _generator()
    assert generator.sources() == sorted(p.name for p in (PACKAGE / "_async").glob("*.py"))
    target = tmp_path / "_sync"
    shutil.copytree(PACKAGE / "_sync", target, ignore=shutil.ignore_patterns("__pycache__"))
    assert generator.drift(target) == []

    (target / "_usage.py").unlink()
    (target / "_handmade.py").write_text('"""Written by hand."""\n')
    stale = target / "_tokens.py"
    stale.write_text(stale.read_text().replace("def ", "def stale_", 1))

    problems = "".join(generator.drift(target))
    assert f"{target / '_usage.py'} (missing)" in problems
    assert f"{target / '_handmade.py'}: not generated" in problems
    assert "def stale_" in problems


def test_generated_text_reads_synchronously():
    for path in (PACKAGE / "_sync").glob("*.py"):
        first, second, text = path.read_text().split("\n", 2)
        assert first.startswith("# This file is generated from ../_async/"), path
        assert second == "# Edit the asynchronous source and run `make generate`.", path
        for word in ("await ", "async ", "asynchronous", "AsyncLedger"):
            assert word not in text, f"{path.name} says {word!r}"
