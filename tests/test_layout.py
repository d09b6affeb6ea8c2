"""The house: ``_sync/`` is only generated, and imports run down the layers, never back up."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import inspect
import shutil
import typing
from pathlib import Path
from types import ModuleType

import pydantic

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


#: The modules a user imports from, besides ``chatledger`` itself. A name public in one of
#: them is re-exported from ``chatledger`` (the same object) or listed in MODULE_API: public
#: through its module only (``chatledger.migrate.upgrade``).
MODULE_API = {
    "chatledger.config": set(),
    "chatledger.errors": set(),
    "chatledger.records": set(),
    "chatledger.embedding": {"Embedder"},
    "chatledger.migrate": {
        "SEEDED_TABLES",
        "VERSION_TABLE",
        "Revision",
        "TableState",
        "check",
        "create_database",
        "current",
        "downgrade",
        "head",
        "history",
        "inventory",
        "upgrade",
    },
    "chatledger.transfer": {
        "DEFAULT_BATCH_SIZE",
        "EXPORT_FORMATS",
        "IMPORT_FORMATS",
        "CopyReport",
        "ExportFormat",
        "ExportReport",
        "ImportFormat",
        "ImportReport",
        "Progress",
        "TableCheck",
        "backup_sqlite",
        "compare_databases",
        "copy_database",
        "detect_format",
        "export_data",
        "import_data",
        "resolve_user",
        "table_counts",
    },
    "chatledger.server": {"ADMIN_ROLE", "ServerSettings", "create_app"},
    "chatledger.integrations": set(),
    "chatledger.integrations.langchain": {
        "METADATA_KEY",
        "ChatledgerChatMessageHistory",
        "message_fields",
        "prepare_messages",
        "to_langchain",
    },
    "chatledger.integrations.langgraph": {
        "FORK_KEY",
        "USER_KEY",
        "ChatledgerSaver",
        "CheckpointConflictError",
        "checkpointer_for",
    },
    "chatledger.integrations.llamaindex": {
        "METADATA_KEY",
        "ChatledgerChatStore",
        "message_fields",
        "to_llamaindex",
    },
}
#: Names without an underscore that are deliberately not API: chatledger's own code uses
#: them across modules (opening a store, the Alembic environment).
INTERNAL = {"chatledger.migrate": {"ensure_schema", "include_object"}}
#: Packages that are applications, not libraries: their modules are the server's and the
#: CLI's inside (routes, models, commands), reached through ``create_app`` and the console
#: script.
APPLICATIONS = ("chatledger.server.", "chatledger.cli")


def _public_modules() -> list[str]:
    import pkgutil

    import chatledger

    names = []
    for info in pkgutil.walk_packages(chatledger.__path__, "chatledger."):
        parts = info.name.split(".")[1:]
        if any(part.startswith("_") for part in parts) or parts[0] == "migrations":
            continue
        if not info.name.startswith(APPLICATIONS):
            names.append(info.name)
    return sorted(names)


def test_every_public_module_is_pinned():
    assert _public_modules() == sorted(MODULE_API)


def test_every_public_name_is_reachable_from_chatledger_or_pinned_to_its_module():
    import chatledger

    for name in MODULE_API:
        module = importlib.import_module(name)
        exported = set(module.__all__)
        elsewhere = {
            item
            for item in exported
            if getattr(chatledger, item, None) is not getattr(module, item)
            or item not in chatledger.__all__
        }
        assert elsewhere == MODULE_API[name], name
        defined = {
            item
            for item, value in vars(module).items()
            if not item.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and value.__module__ == name
        }
        assert defined - exported == INTERNAL.get(name, set()), f"{name}: public but not API"


def test_reexported_classes_are_named_from_chatledger():
    import chatledger

    for item in chatledger.__all__:
        value = getattr(chatledger, item)
        if isinstance(value, type):
            assert value.__module__ == "chatledger", item
            assert getattr(chatledger, value.__qualname__) is value, item
            typing.get_type_hints(value)  # annotations still resolve
            if item in chatledger.records.__all__ and dataclasses.is_dataclass(value):
                pydantic.TypeAdapter(value)  # the HTTP API's models read the fields' types
    assert repr(chatledger.Message).endswith("'chatledger.Message'>")
    assert chatledger.Unset is type(chatledger.UNSET)
