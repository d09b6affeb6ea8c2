"""chatledger.transfer: export and import (lossless round trips, foreign formats, idempotency,
bad input) and copy between databases (backup, verify, resume, refusals), on every backend."""

from __future__ import annotations

import io
import json
import sqlite3
import string
import subprocess
import sys
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import URL

from chatledger import (
    ConfigurationError,
    ConflictError,
    Ledger,
    NotFoundError,
    SchemaOutOfDateError,
    ValidationError,
    migrate,
    transfer,
)
from chatledger._bulk import bulk_insert
from chatledger._ops import transfer as transfer_ops
from chatledger._schema import messages

from ._transfer_data import POPULATED, jsonl_without_time, populate, without_time

DATA = Path(__file__).parent / "data"


def _export(ledger: Ledger, **options: Any) -> str:
    buffer = io.StringIO()
    transfer.export_data(ledger, buffer, **options)
    return buffer.getvalue()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def empty_url(backend: str, make_database: Callable[[str, str], URL], tmp_path: Path) -> URL:
    """A second, empty (not migrated) database of the same backend."""
    if backend == "sqlite":
        return sa.make_url(f"sqlite:///{tmp_path / 'second.db'}")
    return make_database(backend, "transfer_second")


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_export_import_export_is_identical(
    database_url: URL, empty_url: URL, tmp_path: Path, fmt: str
) -> None:
    with Ledger(database_url) as source:
        ids = populate(source)
        first = _export(source, format=fmt, batch_size=2)
    path = _write(tmp_path, f"all.{fmt}", first)
    with Ledger(empty_url) as target:
        report = transfer.import_data(target, path, batch_size=3)
        assert report.format == ("chatledger" if fmt == "json" else "chatledger-jsonl")
        assert report.total_skipped == 0
        assert all(report.inserted[name] > 0 for name in POPULATED)
        second = _export(target, format=fmt)
        # Secrets and the audit chain survive: the copy is usable as it is.
        assert target.api_keys.verify(ids["secret"]).user_id == ids["ada"]
        assert (
            target.users.verify_password("ada-a", "correct horse battery staple").id == ids["ada"]
        )
        assert target.audit.verify().ok
        again = transfer.import_data(target, path)
        assert again.total_inserted == 0
        assert again.total_skipped == report.total_inserted + report.total_skipped
    if fmt == "json":
        assert without_time(first) == without_time(second)
    else:
        assert jsonl_without_time(first) == jsonl_without_time(second)


def test_export_values_are_exact_strings(ledger: Ledger) -> None:
    ids = populate(ledger)
    document = json.loads(_export(ledger))
    assert document["kind"] == "chatledger-export"
    assert document["schema_revision"] == migrate.head()
    rows = {row["id"]: row for row in document["tables"]["messages"]}
    answer = rows[str(ids["answer"])]
    assert answer["cost"] == "0.000199"
    assert answer["metadata"] == {"temperature": 0.2, "tools": ["search"], "nested": {"a": None}}
    assert answer["created_at"].endswith("+00:00")
    assert [
        row["seq"]
        for row in document["tables"]["messages"]
        if row["conversation_id"] == str(ids["chat"])
    ] == [1, 2, 3]


def test_user_and_conversation_exports_hold_only_their_rows(
    ledger: Ledger, empty_url: URL, tmp_path: Path
) -> None:
    ids = populate(ledger)
    mine = json.loads(_export(ledger, user="ada-a"))
    tables = mine["tables"]
    assert mine["scope"] == {"kind": "user", "id": str(ids["ada"])}
    assert [row["id"] for row in tables["users"]] == [str(ids["ada"])]
    assert {row["owner_id"] for row in tables["conversations"]} == {str(ids["ada"])}
    assert "audit_events" not in tables
    assert {row["rater_id"] for row in tables["message_feedback"]} == {str(ids["ada"])}
    assert len(tables["knowledge_chunks"]) == 1  # the chunk their citation needs

    single = _export(ledger, conversation=str(ids["chat"]))
    chat = json.loads(single)["tables"]
    assert [row["id"] for row in chat["conversations"]] == [str(ids["chat"])]
    assert len(chat["messages"]) == 3
    path = _write(tmp_path, "chat.json", single)
    with Ledger(empty_url) as target:
        report = transfer.import_data(target, path)
        assert report.inserted["messages"] == 3
        assert target.conversations.get(ids["chat"]).message_count == 3
        assert without_time(_export(target, conversation=ids["chat"])) == without_time(single)

    with pytest.raises(NotFoundError):
        _export(ledger, user="nobody")
    with pytest.raises(ValidationError, match="not both"):
        _export(ledger, user="ada-a", conversation=ids["chat"])


def test_markdown_transcript(ledger: Ledger) -> None:
    ids = populate(ledger)
    text = _export(ledger, format="markdown", conversation=ids["chat"])
    assert text.startswith("# Trip to Lisbon\n")
    assert "## 1. user (" in text
    assert "Plan three days in Lisbon. ✈️" in text
    assert "gpt-4o-mini, 412 in / 230 out tokens, cost 0.000199" in text
    everything = _export(ledger, format="markdown")
    assert everything.count("\n# ") + everything.startswith("# ") == 2


def test_import_chatgpt_walks_the_visible_thread(ledger: Ledger) -> None:
    path = DATA / "chatgpt_conversations.json"
    assert transfer.detect_format(path) == "chatgpt"
    with pytest.raises(ValidationError, match="user"):
        transfer.import_data(ledger, path)
    with pytest.raises(NotFoundError):  # an id that names nobody creates nobody
        transfer.import_data(ledger, path, user=str(uuid.uuid4()))
    assert ledger.users.count() == 0
    report = transfer.import_data(ledger, path, user="chatgpt-owner")
    assert report.inserted == {"conversations": 2, "messages": 5}
    assert report.not_imported == {}
    owner = ledger.users.get_by_external_id("chatgpt-owner")
    chats = ledger.conversations.list(owner.id, limit=10).items
    lisbon = next(c for c in chats if c.title == "Lisbon trip")
    assert (lisbon.message_count, lisbon.path_length, lisbon.active_leaf_seq) == (5, 4, 5)
    thread = ledger.messages.last(lisbon.id, 10)
    assert [(m.seq, m.role, m.parent_seq) for m in thread] == [
        (1, "user", None),
        (3, "assistant", 1),
        (4, "user", 3),
        (5, "assistant", 4),
    ]
    # The edited-away answer n2 is kept, as a sibling of the current one.
    regenerated = ledger.trees.siblings(thread[1].id)
    assert [(m.metadata or {}).get("chatgpt_id") for m in regenerated] == ["n2", "n3"]
    assert thread[1].content.startswith("Day 1: Alfama")  # the current branch, not n2
    assert thread[2].content == "Make it four days, with \na day in Cascais."
    assert thread[1].model == "gpt-4o"
    assert thread[0].model is None
    assert thread[1].metadata == {"chatgpt_id": "n3"}
    assert thread[1].created_at.timestamp() == pytest.approx(1718000030.25)
    assert lisbon.metadata == {
        "source": "chatgpt",
        "chatgpt_id": "6a5d1f0e-0c1b-4d5e-9f7a-0b1c2d3e4f50",
    }

    again = transfer.import_data(ledger, path, user=str(owner.id))
    assert again.inserted == {"conversations": 0, "messages": 0}
    assert again.skipped == {"conversations": 2, "messages": 5}


def test_reimporting_a_grown_chatgpt_conversation_adds_the_new_messages(
    ledger: Ledger, tmp_path: Path
) -> None:
    docs = json.loads((DATA / "chatgpt_conversations.json").read_text())
    transfer.import_data(ledger, _write(tmp_path, "v1.json", json.dumps(docs)), user="grower")
    lisbon = docs[0]
    lisbon["mapping"]["n5"]["children"] = ["n6"]
    lisbon["mapping"]["n6"] = {
        "id": "n6",
        "parent": "n5",
        "children": [],
        "message": {
            "id": "n6",
            "author": {"role": "user"},
            "create_time": 1718000400.0,
            "content": {"content_type": "text", "parts": ["Thanks!"]},
        },
    }
    lisbon["current_node"] = "n6"
    grown = transfer.import_data(
        ledger, _write(tmp_path, "v2.json", json.dumps(docs)), user="grower"
    )
    assert grown.inserted == {"conversations": 0, "messages": 1}
    assert grown.skipped == {"conversations": 2, "messages": 5}
    owner = ledger.users.get_by_external_id("grower")
    chat = next(c for c in ledger.conversations.list(owner.id).items if c.title == "Lisbon trip")
    assert chat.message_count == 6
    assert chat.last_message_at is not None
    assert chat.last_message_at.timestamp() == pytest.approx(1718000400.0)
    assert [m.content for m in ledger.messages.last(chat.id, 2)] == [
        "Day 4: Cascais by train.",
        "Thanks!",
    ]
    # Another branch chosen since: the active path follows it, nothing is added.
    lisbon["current_node"] = "n2"
    branched = transfer.import_data(
        ledger, _write(tmp_path, "v3.json", json.dumps(docs)), user="grower"
    )
    assert branched.inserted == {"conversations": 0, "messages": 0}
    switched = ledger.conversations.get(chat.id)
    assert (switched.message_count, switched.path_length) == (6, 2)
    last = ledger.messages.last(chat.id)
    assert [(m.metadata or {}).get("chatgpt_id") for m in last] == ["n1", "n2"]


def test_chatgpt_export_zip_imports_the_tree_and_counts_what_it_cannot(
    ledger: Ledger, tmp_path: Path
) -> None:
    docs = json.loads((DATA / "chatgpt_conversations.json").read_text())
    mapping = docs[0]["mapping"]
    mapping["n5"]["children"] = ["t", "img"]
    mapping["t"] = {
        "id": "t",
        "parent": "n5",
        "children": [],
        "message": {
            "id": "t",
            "author": {"role": "assistant"},
            "create_time": 1718000500.0,
            "content": {"content_type": "thoughts", "thoughts": [{"content": "hmm"}]},
        },
    }
    mapping["img"] = {
        "id": "img",
        "parent": "n5",
        "children": [],
        "message": {
            "id": "img",
            "author": {"role": "user"},
            "create_time": 1718000600.0,
            "metadata": {"attachments": [{"id": "file-1", "name": "plan.pdf"}]},
            "content": {
                "content_type": "multimodal_text",
                "parts": [{"content_type": "image_asset_pointer"}, "and this photo"],
            },
        },
    }
    docs[0]["current_node"] = "img"
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("chat.html", "<html></html>")
        zipped.writestr("conversations.json", json.dumps(docs))
    assert transfer.detect_format(archive) == "chatgpt"
    report = transfer.import_data(ledger, archive, user="zipped")
    assert report.inserted == {"conversations": 2, "messages": 6}
    assert report.not_imported == {"images": 1, "files": 1, "thoughts": 1}
    owner = ledger.users.get_by_external_id("zipped")
    chat = next(c for c in ledger.conversations.list(owner.id).items if c.title == "Lisbon trip")
    assert [m.content for m in ledger.messages.last(chat.id, 2)][-1] == "and this photo"
    assert len(ledger.trees.leaves(chat.id)) == 2


def test_import_visitors_and_feedback_twice_counts_once(ledger: Ledger) -> None:
    visitors = DATA / "visitors.json"
    feedback = DATA / "feedback.json"
    assert transfer.detect_format(visitors) == "visitors"
    assert transfer.detect_format(feedback) == "feedback"
    first = transfer.import_data(ledger, visitors)
    assert first.inserted == {"visitors": 2}
    assert first.skipped == {"visitors": 0}
    assert transfer.import_data(ledger, visitors).inserted == {"visitors": 0}
    listed = {v.name: v for v in ledger.visitors.list(limit=10)}
    claude = listed["Claude"]
    assert str(claude.id) == "0b6f4a7e-2d1c-4b7a-9e1f-3c5d7e9f1a2b"
    assert claude.visit_count == 3  # two records of one identity, merged
    assert claude.answers == {"favourite_page": "/docs", "would_return": "definitely"}
    assert claude.purpose == "Second visit"
    assert listed["Ada"].visit_time.isoformat() == "2025-03-02T07:30:00+00:00"
    # The app's next visit finds the imported visitor.
    assert ledger.visitors.record_visit("CLAUDE", agent_type="Anthropic Assistant").visit_count == 4

    assert transfer.import_data(ledger, feedback).inserted == {"product_feedback": 2}
    assert transfer.import_data(ledger, feedback).skipped == {"product_feedback": 2}
    forms = {f.agent_name: f for f in ledger.product_feedback.list(limit=10)}
    assert forms["Claude"].usability_rating == 8
    assert forms["Claude"].submitted_at.isoformat() == "2025-03-01T12:05:00+00:00"


def test_bad_chatgpt_record_names_file_record_and_field(ledger: Ledger, tmp_path: Path) -> None:
    docs = json.loads((DATA / "chatgpt_conversations.json").read_text())
    docs[1]["mapping"]["r"]["children"] = ["bad"]
    docs[1]["current_node"] = "bad"
    docs[1]["mapping"]["bad"] = {
        "id": "bad",
        "parent": "r",
        "children": [],
        "message": {"id": "bad", "author": {"role": "critic"}, "content": {"parts": ["x"]}},
    }
    path = _write(tmp_path, "conversations.json", json.dumps(docs))
    with pytest.raises(ValidationError) as caught:
        transfer.import_data(ledger, path, user="u1")
    assert str(path) in caught.value.field
    assert "conversation 1 (second-conversation), message 'bad'.author.role" in caught.value.field
    owner = ledger.users.get_by_external_id("u1")
    # The valid conversation before it was imported whole; the bad one not at all.
    assert [c.title for c in ledger.conversations.list(owner.id).items] == ["Lisbon trip"]


@pytest.mark.parametrize(
    ("table", "column", "value", "problem"),
    [
        ("messages", "cost", "abc", "not a decimal"),
        ("messages", "created_at", "2024-01-01T00:00:00", "UTC offset"),
        ("users", "email", "x" * 400, "exceeds the limit of 320"),
        ("conversations", "id", None, "must not be null"),
    ],
)
def test_bad_export_value_is_rejected_before_writing(
    ledger: Ledger, tmp_path: Path, table: str, column: str, value: Any, problem: str
) -> None:
    populate(ledger)
    document = json.loads(_export(ledger))
    document["tables"][table][0][column] = value
    with Ledger(f"sqlite:///{tmp_path / 'target.db'}") as target:
        path = _write(tmp_path, "bad.json", json.dumps(document))
        with pytest.raises(ValidationError, match=problem) as caught:
            transfer.import_data(target, path)
        assert caught.value.field == f"{path}: {table}[0].{column}"


def test_import_conflict_names_the_file_and_table(ledger: Ledger, tmp_path: Path) -> None:
    populate(ledger)
    path = _write(tmp_path, "all.json", _export(ledger))
    with Ledger(f"sqlite:///{tmp_path / 'other.db'}") as target:
        target.users.create(external_id="ada-a")  # another user with Ada's external id
        with pytest.raises(ConflictError, match="external_id is already taken") as caught:
            transfer.import_data(target, path)
        assert str(caught.value).startswith(f"{path}: users rows 0..1: ")
        assert target.users.count() == 1  # that batch was not written


def test_import_fills_a_nullable_column_the_export_lacks(ledger: Ledger, tmp_path: Path) -> None:
    ids = populate(ledger)
    document = json.loads(_export(ledger))
    for row in document["tables"]["messages"]:
        del row["intent"]  # as if exported before the column existed
    with Ledger(f"sqlite:///{tmp_path / 'target.db'}") as target:
        transfer.import_data(target, _write(tmp_path, "old.json", json.dumps(document)))
        assert target.messages.get(ids["answer"]).intent is None
        del document["tables"]["messages"][0]["role"]
        path = _write(tmp_path, "bad.json", json.dumps(document))
        with pytest.raises(ValidationError, match="is missing"):
            transfer.import_data(target, path)


def test_format_detection_errors(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="empty list"):
        transfer.import_data(ledger, _write(tmp_path, "empty.json", "[]"))
    with pytest.raises(ValidationError, match="no known format"):
        transfer.import_data(ledger, _write(tmp_path, "obj.json", '{"a": 1}'))
    with pytest.raises(ValidationError, match="not valid JSON"):
        transfer.import_data(ledger, _write(tmp_path, "broken.json", "[{"))
    with pytest.raises(ValidationError, match="format"):
        transfer.import_data(ledger, DATA / "visitors.json", format="nonsense")  # type: ignore[arg-type]
    newer = {"kind": "chatledger-export", "format": 99, "tables": {}}
    with pytest.raises(ValidationError, match="format 1"):
        transfer.import_data(ledger, _write(tmp_path, "newer.json", json.dumps(newer)))


def _sqlite_source(tmp_path: Path) -> tuple[URL, dict[str, Any]]:
    url = sa.make_url(f"sqlite:///{tmp_path / 'source.db'}")
    with Ledger(url) as ledger:
        ids = populate(ledger)
    return url, ids


def test_copy_from_sqlite_verifies_and_is_idempotent(database_url: URL, tmp_path: Path) -> None:
    source, ids = _sqlite_source(tmp_path)
    seen: list[tuple[str, int, int | None]] = []
    report = transfer.copy_database(
        source, database_url, batch_size=2, progress=lambda *args: seen.append(args)
    )
    assert report.ok, report.tables
    assert report.copied["messages"] == 4
    assert report.copied["audit_events"] > 0  # the chain's head moved with them
    assert {check.table for check in report.tables} >= set(POPULATED)
    assert ("messages", 4, 4) in seen
    assert ("verify", len(report.tables), len(report.tables)) in seen
    # The backup is a consistent SQLite database with the same rows.
    assert report.backup is not None
    assert report.backup.name.startswith("source.db.backup.")
    with sqlite3.connect(report.backup) as saved:
        assert saved.execute("SELECT count(*) FROM messages").fetchone() == (4,)
    with Ledger(database_url) as target:
        assert target.api_keys.verify(ids["secret"]).user_id == ids["ada"]
        assert target.audit.verify().ok
        assert target.conversations.get(ids["chat"]).message_count == 3
        # Appends continue the copied numbering.
        assert target.messages.append(ids["chat"], "user", "more").seq == 4


def test_copy_rerun_copies_nothing(database_url: URL, tmp_path: Path) -> None:
    source, _ = _sqlite_source(tmp_path)
    assert transfer.copy_database(source, database_url, backup=False).ok
    again = transfer.copy_database(source, database_url, backup=False)
    assert again.ok
    assert again.rows_copied == 0
    assert again.backup is None


class _Interrupt(Exception):
    pass


def test_interrupted_copy_resumes_without_duplicates(database_url: URL, tmp_path: Path) -> None:
    source, _ = _sqlite_source(tmp_path)
    calls = 0

    def fail_midway(task: str, done: int, total: int | None) -> None:
        nonlocal calls
        if task == "messages" and done > 0:
            calls += 1
            if calls == 2:
                raise _Interrupt

    with pytest.raises(_Interrupt):
        transfer.copy_database(source, database_url, batch_size=1, progress=fail_midway)
    partial = transfer.compare_databases(source, database_url)
    by_table = {check.table: check for check in partial}
    assert by_table["messages"].target_rows == 2  # two batches committed, then the failure
    assert by_table["users"].ok
    assert not by_table["citations"].ok

    report = transfer.copy_database(source, database_url, batch_size=1, backup=False)
    assert report.ok
    assert report.copied["messages"] == 2
    assert report.copied["users"] == 0


def test_copy_refuses_a_target_that_is_not_a_partial_copy(
    database_url: URL, tmp_path: Path
) -> None:
    source, _ = _sqlite_source(tmp_path)
    with Ledger(database_url) as target:
        target.users.create(external_id="someone-else")
    with pytest.raises(ConflictError, match="not a copy of this source"):
        transfer.copy_database(source, database_url, backup=False)


def test_copy_refuses_a_newer_target_and_bad_sources(
    database_url: URL, tmp_path: Path, backend: str
) -> None:
    source, _ = _sqlite_source(tmp_path)
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE chatledger_alembic_version SET version_num = '9999'"))
    try:
        with pytest.raises(SchemaOutOfDateError, match="newer"):
            transfer.copy_database(source, database_url, backup=False)
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE chatledger_alembic_version SET version_num = :v"),
                {"v": migrate.head()},
            )
        engine.dispose()
    missing = tmp_path / "missing.db"
    with pytest.raises(ConfigurationError, match="does not exist"):
        transfer.copy_database(f"sqlite:///{missing}", database_url)
    assert not missing.exists()
    with pytest.raises(ConfigurationError, match="same database"):
        transfer.copy_database(source, source)
    with pytest.raises(ValidationError, match="batch_size"):
        transfer.copy_database(source, database_url, batch_size=0)


def test_copy_upgrades_an_older_target(tmp_path: Path) -> None:
    source, _ = _sqlite_source(tmp_path)
    target = f"sqlite:///{tmp_path / 'old-target.db'}"
    migrate.upgrade(target, "0001")
    assert transfer.copy_database(source, target, backup=False).ok
    assert migrate.current(target) == migrate.head()


def test_copy_refuses_an_outdated_source(database_url: URL, tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(source, "0001")
    with pytest.raises(SchemaOutOfDateError, match="upgrade the source"):
        transfer.copy_database(source, database_url, backup=False)


def test_bulk_insert_stores_what_insert_stores(ledger: Ledger) -> None:
    user = ledger.users.create(external_id="bulk")
    one = ledger.conversations.create(user.id)
    two = ledger.conversations.create(user.id)
    base = ledger.messages.append(one.id, "user", "seed")

    def rows(conversation: Any) -> list[dict[str, Any]]:
        return [
            {
                "conversation_id": conversation,
                "seq": seq,
                "id": uuid.uuid4(),
                "role": "assistant",
                "content": f"tab\there, quote ' \" backslash \\ newline\n {seq} ✓",
                "intent": None,
                "metadata": {"n": seq, "f": 0.1, "s": "\\N"} if seq % 2 else None,
                "model": "m",
                "input_tokens": seq,
                "output_tokens": None,
                "cost": Decimal("0.000000001") * seq,
                "latency_ms": 5,
                "request_id": None,
                "idempotency_key": f"k{seq}",
                "created_at": base.created_at,
                "parent_seq": None,
                "depth": 0,
                "sibling_index": seq - 2,
                "on_active_path": seq == 6,
                "status": "completed",
            }
            for seq in range(2, 7)
        ]

    bulk_rows = rows(one.id)
    plain_rows = [dict(row, conversation_id=two.id) for row in rows(two.id)]
    engine = sa.create_engine(ledger.config.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            assert bulk_insert(conn, messages, bulk_rows) == 5
            conn.execute(messages.insert(), plain_rows)
        with engine.connect() as conn:

            def read(conversation: Any) -> list[list[Any]]:
                query = (
                    sa.select(messages)
                    .where(messages.c.conversation_id == conversation, messages.c.seq > 1)
                    .order_by(messages.c.seq)
                )
                return [
                    [
                        transfer_ops.canonical(v)
                        for k, v in row._mapping.items()
                        if k not in ("conversation_id", "id")
                    ]
                    for row in conn.execute(query)
                ]

            assert read(one.id) == read(two.id)
            assert len(read(one.id)) == 5
        # A duplicate key is a ConflictError on every backend (COPY's driver error included).
        with pytest.raises(ConflictError):
            ledger._call(bulk_insert, messages, bulk_rows, write=True)
        with engine.begin() as conn, pytest.raises(ValueError, match="other keys"):
            bulk_insert(conn, messages, [bulk_rows[0], {"seq": 1}])
    finally:
        engine.dispose()


_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40
)
_MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool"]),
        "content": _TEXT,
        "cost": st.none() | st.decimals(min_value=0, max_value=10**6, places=9),
        "metadata": st.none()
        | st.dictionaries(
            st.text(alphabet=string.ascii_letters, min_size=1, max_size=5),
            st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _TEXT,
            max_size=3,
        ),
        "input_tokens": st.none() | st.integers(0, 2**31 - 1),
    }
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.none() | _TEXT, batch=st.lists(_MESSAGE, max_size=8))
def test_round_trip_of_random_conversations(title: str | None, batch: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with Ledger(f"sqlite:///{folder / 'a.db'}") as source:
            user = source.users.create(external_id="h")
            chat = source.conversations.create(user.id, title=title)
            if batch:
                source.messages.append_many(chat.id, batch)
            first = _export(source, batch_size=3)
        path = _write(folder, "a.json", first)
        with Ledger(f"sqlite:///{folder / 'b.db'}") as target:
            transfer.import_data(target, path)
            assert without_time(_export(target)) == without_time(first)


def test_preview_erase_counts_what_erase_deletes(store: Any) -> None:
    ada = store.users.create(external_id="erase-me")
    other = store.users.create(external_id="stays")
    chat = store.conversations.create(ada.id)
    answer = store.messages.append(chat.id, "assistant", "hi")
    store.feedback.rate(answer.id, rater_id=other.id, thumb="up")
    store.audit.record("user.signed_in", user_id=ada.id)
    preview = store.users.preview_erase(ada.id)
    assert preview.deleted["messages"] == 1
    assert preview.deleted["message_feedback"] == 1
    assert preview.redacted_audit_events == 1
    assert store.users.get(ada.id).id == ada.id  # nothing changed
    report = store.users.erase(ada.id)
    assert report.deleted == preview.deleted
    with pytest.raises(NotFoundError):
        store.users.preview_erase(ada.id)


def test_copy_from_a_server_into_sqlite(database_url: URL, tmp_path: Path) -> None:
    with Ledger(database_url) as ledger:
        ids = populate(ledger)
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    report = transfer.copy_database(database_url, target, batch_size=3)
    assert report.ok
    assert report.backup is None or database_url.get_backend_name() == "sqlite"
    # Compared the other way round, every table matches too.
    assert all(check.ok for check in transfer.compare_databases(target, database_url))
    with Ledger(target) as copy:
        assert copy.api_keys.verify(ids["secret"]).user_id == ids["ada"]
        assert copy.messages.get(ids["answer"]).cost == Decimal("0.000199")
        assert copy.audit.verify().ok


def test_moving_data_doc_example_runs(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "docs" / "moving-data.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert blocks
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-W", "ignore::chatledger.SQLiteWALResetBugWarning", "-c", block],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1"


def test_concurrent_imports_of_one_file_insert_each_row_once(
    database_url: URL, tmp_path: Path
) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'source.db'}") as source:
        populate(source)
        path = _write(tmp_path, "all.jsonl", _export(source, format="jsonl"))
    barrier = threading.Barrier(3)
    reports: list[transfer.ImportReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with Ledger(database_url) as target:
                barrier.wait()
                reports.append(transfer.import_data(target, path, batch_size=2))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sum(report.inserted["messages"] for report in reports) == 4
    assert sum(report.inserted["users"] for report in reports) == 2
    with Ledger(database_url) as target:
        assert target.audit.verify().ok
        assert transfer.table_counts(target)["messages"] == 4


def test_export_is_one_snapshot_while_the_app_writes(
    database_url: URL, empty_url: URL, tmp_path: Path
) -> None:
    with Ledger(database_url) as ledger, Ledger(database_url) as app:
        ids = populate(ledger)
        wrote: list[Any] = []

        def write_meanwhile(task: str, done: int, total: int | None) -> None:
            if task == "users" and not wrote:  # the export has begun reading
                later = app.messages.append(ids["chat"], "assistant", "written during export")
                app.feedback.rate(later.id, rater_id=ids["ada"], thumb="up")
                wrote.append(later)

        buffer = io.StringIO()
        report = transfer.export_data(ledger, buffer, progress=write_meanwhile)
        assert wrote
        assert report.rows["messages"] == 4  # the new message is not in the snapshot
        assert transfer.table_counts(ledger)["messages"] == 5
    document = json.loads(buffer.getvalue())
    chat = next(c for c in document["tables"]["conversations"] if c["id"] == str(ids["chat"]))
    assert chat["message_count"] == 3  # consistent with its messages in the file
    path = _write(tmp_path, "snapshot.json", buffer.getvalue())
    with Ledger(empty_url) as target:
        assert transfer.import_data(target, path).inserted["message_feedback"] == 2


def test_copy_reads_one_snapshot_while_the_source_is_written(
    database_url: URL, tmp_path: Path
) -> None:
    source, ids = _sqlite_source(tmp_path)
    with Ledger(source) as app:
        wrote: list[Any] = []

        def write_meanwhile(task: str, done: int, total: int | None) -> None:
            if task == "users" and not wrote:
                wrote.append(app.messages.append(ids["chat"], "user", "written during the copy"))

        report = transfer.copy_database(source, database_url, progress=write_meanwhile)
    assert wrote
    assert report.ok  # verified against the same snapshot
    assert report.copied["messages"] == 4
    # A rerun brings the target up to date with the source as it is now: the new message,
    # and the conversation's counter and times.
    again = transfer.copy_database(source, database_url, backup=False)
    assert again.ok, again.tables
    assert again.copied["messages"] == 1
    assert again.updated["conversations"] == 1
    with Ledger(database_url) as target:
        assert target.conversations.get(ids["chat"]).message_count == 4
        assert target.messages.append(ids["chat"], "user", "on the target").seq == 5
