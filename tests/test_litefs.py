"""SQLite on LiteFS, against a simulation of the files LiteFS documents (LiteFS itself needs
FUSE and is not installable here; docs/scale-out.md says so).

What is simulated, as https://fly.io/docs/litefs/ describes it:

- each node's mount directory holds the database file and ``<db>-pos``, its replication
  position: ``%016x/%016x`` (TXID / rolling checksum) and a newline; the TXID grows by one
  for every transaction that changed the database;
- a replica node's mount holds ``.primary``, the primary's host name and a newline; the
  primary's has none;
- replication copies the primary's pages to a replica and its position with them.

The primary's TXID is counted on every commit that changed rows (a SQLAlchemy ``commit``
listener on every engine, looking at SQLite's ``total_changes``); ``replicate()`` copies
the database with SQLite's backup API and writes the replica's ``-pos``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from chatledger import Config, Ledger, NotPrimaryError, ValidationError
from chatledger._backends import sqlite_library
from chatledger._run.replicas import litefs_for
from chatledger.server import ServerSettings, create_app
from chatledger.server.bootstrap import ensure_admin_key

pytestmark = pytest.mark.sqlite

PRIMARY_HOST = "primary-node.internal"
WAIT = 0.3


class LiteFSSim:
    """A primary node and a replica node, each a mount directory with ``app.db``."""

    def __init__(self, root: Path) -> None:
        self.primary_mount = root / "primary"
        self.replica_mount = root / "replica"
        for mount in (self.primary_mount, self.replica_mount):
            mount.mkdir()
        self.primary_db = self.primary_mount / "app.db"
        self.replica_db = self.replica_mount / "app.db"
        (self.replica_mount / ".primary").write_text(f"{PRIMARY_HOST}\n")
        self.txid = 0
        self._changes: dict[int, tuple[Any, int]] = {}  # id(connection): (it, total)
        self._lock = threading.Lock()
        self._write_pos(self.primary_db, 0)
        self._write_pos(self.replica_db, 0)

    @staticmethod
    def _write_pos(database: Path, txid: int) -> None:
        Path(f"{database}-pos").write_text(f"{txid:016x}/{txid * 7919:016x}\n")

    def on_commit(self, conn: sa.Connection) -> None:
        """Count a transaction of the primary's database that changed it."""
        if conn.engine.url.database != str(self.primary_db):
            return
        dbapi = conn.connection.dbapi_connection
        with self._lock:
            total = dbapi.total_changes  # type: ignore[union-attr]
            if total != self._changes.get(id(dbapi), (dbapi, 0))[1]:
                self._changes[id(dbapi)] = (dbapi, total)
                self.txid += 1
                self._write_pos(self.primary_db, self.txid)

    def replicate(self) -> None:
        """Ship the primary's state (pages and position) to the replica."""
        library = sqlite_library()
        with self._lock:
            source = library.connect(str(self.primary_db))
            target = library.connect(str(self.replica_db))
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
            self._write_pos(self.replica_db, self.txid)

    def promote_replica(self) -> None:
        """The replica becomes the primary: LiteFS removes its ``.primary``."""
        (self.replica_mount / ".primary").unlink()


@pytest.fixture
def litefs(tmp_path: Path) -> Iterator[LiteFSSim]:
    sim = LiteFSSim(tmp_path)
    sa.event.listen(sa.Engine, "commit", sim.on_commit)
    try:
        with Ledger(f"sqlite:///{sim.primary_db}") as ledger:
            ledger.open()  # the schema, on the primary
        sim.replicate()
        yield sim
    finally:
        sa.event.remove(sa.Engine, "commit", sim.on_commit)


def _ledger(path: Path) -> Ledger:
    return Ledger(config=Config.load(f"sqlite:///{path}", replica_wait=WAIT))


def test_a_mount_is_found_the_way_litefs_documents_it(tmp_path: Path) -> None:
    database = tmp_path / "db"
    assert litefs_for(str(database), {}) is None
    Path(f"{database}-pos").write_text("0000000000000003/00000000000000aa\n")
    found = litefs_for(str(database), {})
    assert found is not None
    assert found.primary() == (True, None)  # no .primary: this node is the primary
    assert found.position() == "litefs:0000000000000003"
    (tmp_path / ".primary").write_text("other-host\n")
    assert found.primary() == (False, "other-host")
    # The seed's variables: LITEFS_DB_PATH names the file, LITEFS_PRIMARY the role.
    plain = tmp_path / "elsewhere.db"
    env = {"LITEFS_DB_PATH": str(plain), "LITEFS_PRIMARY": "false", "LITEFS_MOUNTED": "true"}
    declared = litefs_for(str(plain), env)
    assert declared is not None
    (tmp_path / ".primary").unlink()
    assert declared.primary() == (False, None)
    assert litefs_for(str(tmp_path / "not-it.db"), {"LITEFS_DB_PATH": str(plain)}) is None


def test_a_write_on_a_replica_fails_before_touching_the_file(litefs: LiteFSSim) -> None:
    with _ledger(litefs.replica_db) as replica:
        users = replica.users.list().items
        assert users == []  # reads work on the replica
        before = litefs.replica_db.read_bytes()
        files = sorted(p.name for p in litefs.replica_mount.iterdir())
        with pytest.raises(NotPrimaryError) as raised:
            replica.users.create(external_id="nope")
        assert raised.value.primary == PRIMARY_HOST
        assert PRIMARY_HOST in str(raised.value)
        with pytest.raises(NotPrimaryError), replica.transaction():
            pass
        with pytest.raises(NotPrimaryError):
            replica.run_in_transaction(lambda store: store.users.create(external_id="x"))
        assert litefs.replica_db.read_bytes() == before
        assert sorted(p.name for p in litefs.replica_mount.iterdir()) == files


def test_read_your_writes_across_nodes_by_txid(litefs: LiteFSSim) -> None:
    with _ledger(litefs.primary_db) as primary, _ledger(litefs.replica_db) as replica:
        user = primary.users.create(external_id="alice")
        token = primary.consistency_token()
        assert token == f"litefs:{litefs.txid:016x}"
        assert replica.users.list().items == []  # no token: the replica's own copy
        with replica.consistent_with(token), pytest.raises(NotPrimaryError) as raised:
            replica.users.get(user.id)  # not replicated within the wait: go to the primary
        assert raised.value.primary == PRIMARY_HOST
        # Replicated while the read waits: it is served by the replica.
        timer = threading.Timer(0.1, litefs.replicate)
        timer.start()
        with replica.consistent_with(token):
            assert replica.users.get(user.id).external_id == "alice"
        timer.join()
        with pytest.raises(ValidationError) as wrong, replica.consistent_with("pg:0/1"):
            replica.users.list()
        assert wrong.value.field == "consistency_token"


def test_a_promoted_replica_takes_writes(litefs: LiteFSSim) -> None:
    with _ledger(litefs.replica_db) as node:
        with pytest.raises(NotPrimaryError):
            node.users.create(external_id="before")
        litefs.promote_replica()
        assert node.users.create(external_id="after").external_id == "after"


def _api_key(path: Path) -> str:
    with Ledger(f"sqlite:///{path}") as ledger:
        created = ensure_admin_key(ledger)
        assert created is not None
        return created.secret


def test_http_answers_writes_on_a_replica_with_fly_replay_and_carries_tokens(
    litefs: LiteFSSim,
) -> None:
    secret = _api_key(litefs.primary_db)
    auth = {"Authorization": f"Bearer {secret}"}
    settings = ServerSettings(purge_interval=0)
    primary_app = create_app(Config.load(f"sqlite:///{litefs.primary_db}"), settings=settings)
    replica_app = create_app(
        Config.load(f"sqlite:///{litefs.replica_db}", replica_wait=WAIT), settings=settings
    )
    with TestClient(primary_app) as primary:
        assert primary.get("/v1/users", headers=auth).status_code == 200  # touches the key
        litefs.replicate()
        with TestClient(replica_app) as replica:
            refused = replica.post("/v1/users", headers=auth, json={"external_id": "bob"})
            assert refused.status_code == 409, refused.text
            assert refused.headers["fly-replay"] == f"instance={PRIMARY_HOST}"
            assert refused.json()["error"]["type"] == "not_primary"
            created = primary.post("/v1/users", headers=auth, json={"external_id": "bob"})
            assert created.status_code == 201, created.text
            token = created.headers["Chatledger-Consistency"]
            assert token == f"litefs:{litefs.txid:016x}"
            user = created.json()["id"]
            path = f"/v1/users/{user}"
            sent = {**auth, "Chatledger-Consistency": token}
            assert replica.get(path, headers=auth).status_code == 404  # not replicated yet
            behind = replica.get(path, headers=sent)
            assert behind.status_code == 409  # replay the read on the primary
            assert behind.headers["fly-replay"] == f"instance={PRIMARY_HOST}"
            litefs.replicate()
            assert replica.get(path, headers=sent).status_code == 200
            bad = replica.get(path, headers={**auth, "Chatledger-Consistency": "junk"})
            assert bad.status_code == 400
            assert bad.json()["error"]["field"] == "Chatledger-Consistency"


def test_plain_sqlite_has_no_token(tmp_path: Path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'plain.db'}") as ledger:
        ledger.users.create(external_id=f"u{uuid.uuid4().hex[:6]}")
        assert ledger.consistency_token() is None
        with ledger.consistent_with(None):
            assert len(ledger.users.list().items) == 1
