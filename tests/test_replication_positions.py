"""Replication positions (consistency tokens) and what a ledger remembers of its writes: pure
logic, no database (the routing itself is tested on real replicas in tests/clusters/)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatledger import ValidationError
from chatledger._replication import covers, later, parse_token
from chatledger._run.replicas import Remembered

lsns = st.integers(0, 2**64 - 1).map(lambda n: f"pg:{n >> 32:X}/{n & 0xFFFFFFFF:X}")
gtids = st.dictionaries(st.integers(0, 3), st.integers(1, 10**6), min_size=1).map(
    lambda d: "gtid:" + ",".join(f"{k}-{k + 1}-{v}" for k, v in sorted(d.items()))
)
txids = st.integers(1, 2**63).map(lambda n: f"litefs:{n:016x}")


@settings(max_examples=60)
@given(st.one_of(st.tuples(lsns, lsns), st.tuples(gtids, gtids), st.tuples(txids, txids)))
def test_the_later_position_covers_both(pair: tuple[str, str]) -> None:
    a, b = pair
    both = later(a, b)
    assert both is not None
    assert covers(both, a)
    assert covers(both, b)
    assert later(b, a) == both or parse_token(later(b, a) or "")[1] == parse_token(both)[1]


def test_positions_compare_within_their_kind() -> None:
    assert covers("pg:1/0", "pg:0/FFFFFFFF")
    assert not covers("pg:0/10", "pg:0/11")
    assert covers("gtid:0-1-5,1-2-3", "gtid:0-1-5")
    assert not covers("gtid:0-1-5", "gtid:0-1-5,1-2-3")  # a domain it has not seen
    assert not covers("litefs:0000000000000002", "pg:0/1")
    assert not covers(None, "pg:0/1")
    assert later("gtid:0-1-5,1-2-3", "gtid:0-2-7") == "gtid:0-2-7,1-2-3"


@pytest.mark.parametrize("token", ["", "pg:", "pg:xyz", "gtid:1-2", "litefs:zz", "x" * 3000, "0/1"])
def test_a_malformed_token_is_a_validation_error(token: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_token(token)
    assert raised.value.field == "consistency_token"


def test_a_scope_waits_for_its_user_and_the_ledger_not_other_users() -> None:
    remembered = Remembered(capacity=2)
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    remembered.wrote(alice, "pg:0/10")
    remembered.wrote(bob, "pg:0/20")
    assert remembered.needed(alice) == "pg:0/10"
    assert remembered.needed(carol) is None
    assert remembered.needed(None) == "pg:0/20"  # the ledger sees everything it wrote
    remembered.wrote(None, "pg:0/15")  # the ledger's own, unscoped write
    assert remembered.needed(alice) == "pg:0/15"
    assert remembered.needed(bob) == "pg:0/20"
    remembered.wrote(carol, "pg:0/30")  # alice is forgotten to make room: the floor covers her
    assert remembered.needed(alice) == "pg:0/15"
    assert remembered.needed(uuid.uuid4()) == "pg:0/15"
    remembered.wrote(uuid.uuid4(), "pg:0/40")  # bob forgotten: the floor rises to his position
    assert remembered.needed(alice) == "pg:0/20"
