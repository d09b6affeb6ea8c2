"""SQLite specifics: pragmas, BEGIN IMMEDIATE for writes, the default file, the WAL bug."""

from __future__ import annotations

import dataclasses
import threading
import warnings

import pytest
import sqlalchemy as sa

from chatledger import Config, Ledger, SQLiteWALResetBugWarning
from chatledger import _backends as backends


def _pragmas(ledger: Ledger) -> dict[str, object]:
    engine = ledger._core.db.engine
    with engine.connect() as conn:
        return {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
        }


def test_connections_use_wal_foreign_keys_busy_timeout_and_normal_sync(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'a.db'}") as ledger:
        assert _pragmas(ledger) == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "synchronous": 1,
            "busy_timeout": 10_000,
        }


def test_synchronous_full_and_busy_timeout_are_configurable(tmp_path):
    config = Config.load(
        f"sqlite:///{tmp_path / 'a.db'}", sqlite_synchronous="FULL", sqlite_busy_timeout=2.5
    )
    with Ledger(config=config) as ledger:
        pragmas = _pragmas(ledger)
    assert (pragmas["synchronous"], pragmas["busy_timeout"]) == (2, 2500)


def test_writes_begin_immediate_and_single_reads_begin_nothing(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'a.db'}") as ledger:
        seen: list[str] = []
        engine = ledger._core.db.engine

        @sa.event.listens_for(engine, "before_cursor_execute")
        def record(conn, cursor, statement, *args):
            if statement.startswith("BEGIN"):
                seen.append(statement)

        user = ledger.users.create()
        ledger.users.get(user.id)
    assert seen == ["BEGIN IMMEDIATE"]


def test_default_database_is_a_file_in_a_data_directory_created_on_first_use(tmp_path):
    target = tmp_path / "nested" / "dirs" / "chat.db"
    config = Config.load(environ={"DB_PATH": str(target)})
    with Ledger(config=config) as ledger:
        ledger.users.create()
    assert target.exists()


def test_default_url_without_configuration_is_sqlite_in_user_data_dir():
    config = Config.load(environ={})
    assert config.backend == "sqlite"
    assert str(config.url.database).endswith("chatledger.db")
    assert config.sources["url"] == "default"


def test_in_memory_database_is_shared_by_threads():
    with Ledger("sqlite://") as ledger:
        user = ledger.users.create()
        counted: list[int] = []
        thread = threading.Thread(target=lambda: counted.append(ledger.users.count()))
        thread.start()
        thread.join()
        assert counted == [1]
        assert ledger.users.get(user.id) == user


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ((3, 40, 1), True),
        ((3, 44, 5), True),
        ((3, 44, 6), False),
        ((3, 45, 0), True),
        ((3, 50, 6), True),
        ((3, 50, 7), False),
        ((3, 51, 0), True),
        ((3, 51, 2), True),
        ((3, 51, 3), False),
        ((3, 52, 0), False),
    ],
)
def test_wal_reset_bug_versions(version, affected):
    assert backends.has_wal_reset_bug(version) is affected


def test_opening_with_an_affected_sqlite_warns_once(monkeypatch, tmp_path):
    monkeypatch.setattr(backends, "_warned_versions", set())
    monkeypatch.setattr(backends.sqlite_library(), "sqlite_version_info", (3, 45, 1))
    with pytest.warns(SQLiteWALResetBugWarning, match=r"3\.45\.1"):
        Ledger(f"sqlite:///{tmp_path / 'a.db'}").close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Ledger(f"sqlite:///{tmp_path / 'b.db'}").close()


def test_a_fixed_sqlite_does_not_warn(monkeypatch, tmp_path):
    monkeypatch.setattr(backends, "_warned_versions", set())
    monkeypatch.setattr(backends.sqlite_library(), "sqlite_version_info", (3, 51, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Ledger(f"sqlite:///{tmp_path / 'a.db'}").close()


def test_adopting_an_existing_engine(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with Ledger(engine) as ledger:
        ledger.users.create()
        assert _pragmas(ledger)["journal_mode"] == "wal"
    assert dataclasses.is_dataclass(ledger.config)
