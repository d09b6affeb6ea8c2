"""Replication positions and how each backend reports them: what a committed write's position
is on the primary, and how far a replica has replayed.

A position is carried as a *consistency token*, a short string that names its kind, so a token
from one backend is never compared with another's:

- ``pg:0/16B3748``: a PostgreSQL WAL LSN (``pg_current_wal_insert_lsn()`` on the primary after the
  commit; a replica has it once ``pg_last_wal_replay_lsn()`` is at or past it);
- ``gtid:0-1-42,1-2-7``: a MariaDB GTID position (``@@gtid_binlog_pos`` on the primary, one
  ``domain-server-seq`` per replication domain; a replica has it once its ``@@gtid_current_pos``
  reaches every domain's sequence number; ``MASTER_GTID_WAIT`` waits for it);
- ``litefs:000000000000002a``: a LiteFS transaction id (the ``<database>-pos`` file).

Positions only grow; :func:`later` keeps the larger of two (per domain for GTIDs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Connection, text

from .errors import ValidationError

__all__ = [
    "MariaDBReplication",
    "PostgresReplication",
    "ReplicaStatus",
    "Replication",
    "covers",
    "later",
    "parse_token",
]

_MAX_TOKEN = 2000


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What one look at a replica found: its lag in seconds (``math.inf`` when it does not
    replicate at all) and its replayed position (a token, ``None`` when it has none)."""

    lag: float
    position: str | None


def _lsn(value: str) -> int:
    high, _, low = value.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def _gtids(value: str) -> dict[int, int]:
    """``{domain: seq}`` of a GTID position (``domain-server-seq``, comma-separated)."""
    found: dict[int, int] = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        domain, server, seq = part.split("-")
        int(server)
        found[int(domain)] = max(found.get(int(domain), 0), int(seq))
    return found


def parse_token(token: str, field: str = "consistency_token") -> tuple[str, Any]:
    """``(kind, comparable value)`` of a token; :class:`ValidationError` naming ``field`` when
    it is not one chatledger made."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        raise ValidationError(field, "must be a consistency token string", limit=_MAX_TOKEN)
    kind, sep, body = token.partition(":")
    try:
        if sep and kind == "pg":
            return kind, _lsn(body)
        if sep and kind == "gtid":
            return kind, _gtids(body)
        if sep and kind == "litefs":
            return kind, int(body.split("/")[0], 16)
    except ValueError:
        pass
    raise ValidationError(
        field, "is not a consistency token (expected pg:<lsn>, gtid:<positions> or litefs:<txid>)"
    )


def covers(have: str | None, need: str) -> bool:
    """Whether position ``have`` is at or past ``need`` (of the same kind)."""
    if have is None:
        return False
    have_kind, have_value = parse_token(have)
    need_kind, need_value = parse_token(need)
    if have_kind != need_kind:
        return False
    if isinstance(need_value, dict):
        return all(have_value.get(domain, -1) >= seq for domain, seq in need_value.items())
    return bool(have_value >= need_value)


def later(a: str | None, b: str | None) -> str | None:
    """The later of two positions (for GTIDs, each domain's largest sequence number)."""
    if a is None or b is None:
        return b if a is None else a
    kind_a, value_a = parse_token(a)
    kind_b, value_b = parse_token(b)
    if kind_a != kind_b:
        return b  # a new kind of position (another backend): the newest one counts
    if isinstance(value_a, dict):
        return _merge_gtids(a, b)
    return a if value_a >= value_b else b


def _merge_gtids(a: str, b: str) -> str:
    parts: dict[int, tuple[int, int]] = {}  # domain: (seq, server)
    for token in (a, b):
        for part in token.partition(":")[2].split(","):
            if part.strip():
                domain, server, seq = (int(x) for x in part.strip().split("-"))
                if domain not in parts or parts[domain][0] < seq:
                    parts[domain] = (seq, server)
    body = ",".join(f"{d}-{server}-{seq}" for d, (seq, server) in sorted(parts.items()))
    return f"gtid:{body}"


class Replication:
    """How one backend reports replication positions."""

    #: Whether the server can wait for a position itself (MariaDB ``MASTER_GTID_WAIT``);
    #: otherwise chatledger polls :meth:`replica_status`.
    server_wait: ClassVar[bool] = False
    #: The kind of its tokens (``pg``, ``gtid``; ``None``: it has no positions).
    kind: ClassVar[str | None] = None

    def primary_position(self, conn: Connection) -> str | None:
        """The position of everything committed so far, read on the primary."""
        return None

    def replica_status(self, conn: Connection) -> ReplicaStatus:
        """The replica's lag and replayed position."""
        return ReplicaStatus(0.0, None)

    def replica_position(self, conn: Connection) -> str | None:
        """The replica's replayed position alone (one cheap statement)."""
        return None

    def wait(self, conn: Connection, need: str, timeout: float) -> bool:
        """Wait on the server until the replica has ``need`` (``server_wait`` backends)."""
        raise NotImplementedError


class PostgresReplication(Replication):
    """WAL LSNs: ``pg_current_wal_lsn()`` on the primary, ``pg_last_wal_replay_lsn()`` on a
    standby. Lag: 0 when the standby has replayed all it received, else the age of the last
    transaction it replayed, or, when it replayed none since it started (a restarted standby
    receiving a checkpoint record from an idle primary), the time since it started: it grows
    past ``replica_max_lag`` if the standby stays behind, where "infinitely behind" skipped a
    healthy standby until the primary's next commit. A server not in recovery (a promoted
    standby) has no lag and its own current position. (Read-your-writes never rests on the
    lag: it compares positions.)"""

    kind = "pg"
    _STATUS = text(
        "SELECT pg_is_in_recovery(),"
        " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text"
        " ELSE pg_current_wal_lsn()::text END,"
        " CASE WHEN NOT pg_is_in_recovery()"
        " OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
        " ELSE EXTRACT(EPOCH FROM clock_timestamp()"
        " - COALESCE(pg_last_xact_replay_timestamp(), pg_postmaster_start_time())) END::float8"
    )

    def primary_position(self, conn: Connection) -> str | None:
        # The insert position: with synchronous_commit off, a commit's record can be past
        # the write position when COMMIT returns.
        lsn = conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()
        return f"pg:{lsn}"

    _POSITION = text(
        "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text"
        " ELSE pg_current_wal_lsn()::text END"
    )

    def replica_position(self, conn: Connection) -> str | None:
        lsn = conn.execute(self._POSITION).scalar_one()
        return None if lsn is None else f"pg:{lsn}"

    def replica_status(self, conn: Connection) -> ReplicaStatus:
        _, lsn, lag = conn.execute(self._STATUS).one()
        return ReplicaStatus(
            float(lag) if lag is not None else math.inf, None if lsn is None else f"pg:{lsn}"
        )


class MariaDBReplication(Replication):
    """GTIDs: ``@@gtid_binlog_pos`` on the primary (every domain's last GTID, this session's
    commit included once it returned), ``@@gtid_current_pos`` on a replica, lag from
    ``SHOW SLAVE STATUS`` (``Seconds_Behind_Master``: NULL when replication is stopped, so
    the replica counts as infinitely far behind). A server with no replication configured
    (a promoted replica, the primary itself) has no lag."""

    server_wait = True
    kind = "gtid"

    def primary_position(self, conn: Connection) -> str | None:
        pos = conn.execute(text("SELECT @@gtid_binlog_pos")).scalar_one()
        return f"gtid:{pos}" if pos else None

    def replica_status(self, conn: Connection) -> ReplicaStatus:
        rows = conn.exec_driver_sql("SHOW SLAVE STATUS").mappings().all()
        pos = self.replica_position(conn)
        if not rows:
            return ReplicaStatus(0.0, pos)
        behind = rows[0].get("Seconds_Behind_Master")
        lag = math.inf if behind is None else float(behind)
        return ReplicaStatus(lag, pos)

    def replica_position(self, conn: Connection) -> str | None:
        # gtid_current_pos: what the replica threads applied, or the server wrote itself
        # (a promoted replica's own commits).
        pos = conn.execute(text("SELECT @@gtid_current_pos")).scalar_one()
        return f"gtid:{pos}" if pos else None

    def wait(self, conn: Connection, need: str, timeout: float) -> bool:
        body = need.partition(":")[2]
        waited = conn.execute(
            text("SELECT MASTER_GTID_WAIT(:pos, :timeout)"), {"pos": body, "timeout": timeout}
        ).scalar_one()
        return bool(waited == 0)
