"""Copy of a generated 100,000-message SQLite database into PostgreSQL and MariaDB, killed half
way (SIGKILL) and resumed, then verified table by table."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import transfer

from ._transfer_data import generate_database

logger = logging.getLogger(__name__)

MESSAGES = 100_000

#: Runs a copy and prints each progress call as a JSON line (flushed), for the parent to watch.
_COPY_SCRIPT = """
import json, sys
from chatledger import transfer

def report(task, done, total):
    print(json.dumps([task, done, total]), flush=True)

transfer.copy_database(sys.argv[1], sys.argv[2], batch_size=int(sys.argv[3]), backup=False,
                       progress=report)
"""


@pytest.fixture(scope="session")
def big_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 100,000-message SQLite database, generated once per session (treated read-only)."""
    path = tmp_path_factory.mktemp("big") / "big.db"
    started = time.perf_counter()
    generate_database(f"sqlite:///{path}", messages=MESSAGES)
    logger.info("generated %s in %.1f s", path, time.perf_counter() - started)
    return path


def _kill_after(source: str, target: str, messages: int) -> None:
    """Start a copy in a subprocess and SIGKILL it once it reported ``messages`` copied."""
    process = subprocess.Popen(
        [sys.executable, "-c", _COPY_SCRIPT, source, target, "5000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            task, done, _ = json.loads(line)
            if task == "messages" and done >= messages:
                process.send_signal(signal.SIGKILL)
                break
        else:
            pytest.fail(f"the copy ended before {messages} messages: {process.stderr.read()}")  # type: ignore[union-attr]
    finally:
        process.wait(timeout=60)
        process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_copy_100k_messages_killed_and_resumed(
    server: str,
    big_sqlite: Path,
    make_database: Callable[[str, str], URL],
    tmp_path: Path,
) -> None:
    source_path = tmp_path / "source.db"
    shutil.copyfile(big_sqlite, source_path)
    source = f"sqlite:///{source_path}"
    target_url = make_database(server, "copy100k")
    target = target_url.render_as_string(hide_password=False)

    _kill_after(source, target, 30_000)
    engine = sa.create_engine(target_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        held = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
    engine.dispose()
    assert 30_000 <= held < MESSAGES

    report = transfer.copy_database(source, target, batch_size=5000)
    assert report.ok, [check for check in report.tables if not check.ok]
    assert report.backup is not None
    assert report.backup.exists()
    checks = {check.table: check for check in report.tables}
    assert checks["messages"].target_rows == MESSAGES
    assert report.copied["messages"] == MESSAGES - held  # nothing copied twice
    assert checks["conversations"].target_rows == MESSAGES // 50
    logger.info(
        "%s: resumed %d messages in %.1f s (%.0f messages/s)",
        server,
        report.copied["messages"],
        report.seconds,
        report.messages_per_second,
    )
