"""The Citus plan in docs/scale-out.md holds the schema: every table placed, every change the
schema still needs before it distributes listed exactly (so the plan and the schema cannot
drift apart: a new table, constraint or foreign key that breaks co-location fails here until
the plan says what to do about it, and a change made to the schema must be struck from it).

Citus' rules checked (docs.citusdata.com, "Table Management", "Creating and Modifying
Distributed Objects"): a distributed table's primary key and unique constraints include its
distribution column; a foreign key between distributed tables joins co-located tables and
includes the distribution column; a distributed table may reference a reference table; a
reference table or a (coordinator) local table may not reference a distributed table.
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from chatledger._schema import Base

PLAN = Path(__file__).resolve().parent.parent / "docs" / "scale-out.md"
PLACEMENTS = ("distributed", "reference", "local")
_ROW = re.compile(r"^\| `(\w+)` \| (\w+) \| (?:`(\w+)`|—) \| (.+) \|$")


def _plan() -> dict[str, tuple[str, str | None, str]]:
    """table -> (placement, distribution column, changes) from the plan's table."""
    rows: dict[str, tuple[str, str | None, str]] = {}
    for line in PLAN.read_text(encoding="utf-8").splitlines():
        if match := _ROW.match(line.strip()):
            table, placement, column, changes = match.groups()
            assert table not in rows, f"{table} is placed twice"
            rows[table] = (placement, column, changes.strip())
    return rows


def _changes(table: sa.Table, plan: dict[str, tuple[str, str | None, str]]) -> list[str]:
    """What ``table`` must change before it distributes as planned, in a fixed wording."""
    placement, key, _ = plan[table.name]
    found: list[str] = []
    if placement == "distributed":
        assert key is not None, f"{table.name}: a distributed table needs a column"
        if key not in table.columns:
            found.append(f"add {key}")
        if key not in {c.name for c in table.primary_key}:
            found.append(f"primary key + {key}")
        for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
            if isinstance(constraint, sa.UniqueConstraint) and key not in constraint.columns:
                found.append(f"unique {constraint.name} + {key}")
    for fk in sorted(table.foreign_key_constraints, key=lambda c: str(c.name)):
        target = fk.referred_table.name
        target_placement, target_key, _ = plan[target]
        columns = [c.name for c in fk.columns]
        where = f"fk {','.join(columns)} -> {target}"
        if target_placement == "distributed":
            if placement != "distributed" or _tenant(table.name, key) != _tenant(
                target, target_key
            ):
                found.append(f"drop {where}")  # not co-located: another shard group
            else:
                pairs = {(e.parent.name, e.column.name) for e in fk.elements}
                if any(ref == target_key and col != key for col, ref in pairs):
                    found.append(f"drop {where}")  # another user's row: another shard
                elif (key, target_key) not in pairs:
                    found.append(f"{where} + {key}")
    return found


def _tenant(table: str, key: str | None) -> str:
    """What a distribution column's values are: user ids (``owner_id``, ``user_id``,
    ``users.id``: one shard group), or the column's own kind (another group)."""
    if key in ("owner_id", "user_id") or (table, key) == ("users", "id"):
        return "user"
    return f"{table}.{key}"


def test_every_table_is_placed_once():
    plan = _plan()
    assert set(plan) == set(Base.metadata.tables)
    for table, (placement, column, _) in plan.items():
        assert placement in PLACEMENTS, table
        assert (column is not None) == (placement == "distributed"), table


def test_the_plan_lists_exactly_the_changes_the_schema_still_needs():
    plan = _plan()
    for table in Base.metadata.sorted_tables:
        needed = "; ".join(_changes(table, plan)) or "none"
        assert plan[table.name][2] == needed, table.name


def test_the_tenant_key_colocates_a_users_data():
    # What the plan promises: a user's conversations, messages, feedback and usage share one
    # distribution column, so every hot query by owner is single-shard.
    plan = _plan()
    owner = {name for name, (placement, column, _) in plan.items() if column == "owner_id"}
    assert {"conversations", "messages", "message_feedback", "citations"} <= owner
    assert plan["users"][:2] == ("distributed", "id")
    for name in ("token_balances", "token_ledger"):
        assert plan[name][:2] == ("distributed", "user_id")
