"""``Idempotency-Key`` on message appends: replay, mismatch, in-flight conflict (across
processes, and two requests at once), expiry of a dead process's claim, release on failure;
and the library's claims (``_ops/idempotency.py``) on every backend and surface."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatledger import Ledger, ValidationError
from chatledger._async._idempotency import AsyncIdempotentRequests
from chatledger._schema import idempotent_requests
from chatledger._sync._idempotency import IdempotentRequests
from chatledger.server import ServerSettings
from chatledger.server.idempotency import canonical_hash

from ..conftest import Blocking
from .conftest import Api
from .test_routes import error, ok


def _chat(api: Api) -> str:
    chat: str = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    return chat


def _rows(url: URL) -> list[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(idempotent_requests)))
    engine.dispose()
    return rows


def _age(url: URL, by: timedelta) -> None:
    """Move every claim's creation time back by ``by`` (as if that much time had passed)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    c = idempotent_requests.c
    with engine.begin() as conn:
        for row in conn.execute(sa.select(c.api_key_id, c.key, c.created_at)).all():
            conn.execute(
                sa.update(idempotent_requests)
                .where(c.api_key_id == row.api_key_id, c.key == row.key)
                .values(created_at=row.created_at - by)
            )
    engine.dispose()


def _message_count(api: Api, chat: str) -> int:
    count: int = ok(api.call(api.alice, "GET", f"/v1/conversations/{chat}"))["message_count"]
    return count


def test_same_key_and_body_replays_the_first_response(api: Api) -> None:
    chat = _chat(api)
    path = f"/v1/conversations/{chat}/messages"
    key = {"Idempotency-Key": "req-1"}
    body = {"role": "assistant", "content": "hello", "cost": "0.25", "input_tokens": 3}
    first = api.call(api.alice, "POST", path, json=body, headers=key)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # The same body with its keys in another order and other spacing is the same request.
    reordered = json.dumps(dict(reversed(body.items())), indent=2).encode()
    again = api.call(
        api.alice,
        "POST",
        path,
        content=reordered,
        headers={**key, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert _message_count(api, chat) == 1
    (row,) = _rows(api.url)
    assert (row.state, row.response_status, row.api_key_id.hex) == (
        "done",
        201,
        api.alice.key_id.replace("-", ""),
    )


def test_same_key_with_another_body_or_path_is_a_422(api: Api) -> None:
    chat, other = _chat(api), _chat(api)
    key = {"Idempotency-Key": "req-2"}
    ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/conversations/{chat}/messages",
            json={"role": "user", "content": "a"},
            headers=key,
        ),
        201,
    )
    changed = api.call(
        api.alice,
        "POST",
        f"/v1/conversations/{chat}/messages",
        json={"role": "user", "content": "b"},
        headers=key,
    )
    assert error(changed, 422, "idempotency_key_mismatch")["field"] == "Idempotency-Key"
    elsewhere = api.call(
        api.alice,
        "POST",
        f"/v1/conversations/{other}/messages",
        json={"role": "user", "content": "a"},
        headers=key,
    )
    error(elsewhere, 422, "idempotency_key_mismatch")
    assert (_message_count(api, chat), _message_count(api, other)) == (1, 0)
    blank = api.call(
        api.alice,
        "POST",
        f"/v1/conversations/{chat}/messages",
        json={"role": "user", "content": "a"},
        headers={"Idempotency-Key": "  "},
    )
    assert error(blank, 422, "invalid_request")["field"] == "Idempotency-Key"


def test_keys_are_per_api_key(api: Api) -> None:
    """Another API key's claim of the same key string is its own (the conversation still keeps
    one message per key: the library's idempotency_key)."""
    chat = _chat(api)
    path = f"/v1/conversations/{chat}/messages"
    key = {"Idempotency-Key": "shared"}
    first = ok(
        api.call(api.alice, "POST", path, json={"role": "user", "content": "a"}, headers=key), 201
    )
    other = ok(
        api.call(api.admin, "POST", path, json={"role": "user", "content": "a"}, headers=key), 201
    )
    assert other["id"] == first["id"]
    assert len(_rows(api.url)) == 2
    assert _message_count(api, chat) == 1


def _bodies(url: URL) -> list[str]:
    return [row.response_body or "" for row in _rows(url)]


def test_a_stored_response_goes_with_its_message(api: Api) -> None:
    """No copy of a message's text outlives it in the replay store: erasing the message
    deletes the responses that carry it (a retry then gets the erased message, and writes
    nothing), and a hard delete or a user's erasure deletes them through the foreign key,
    whichever API key wrote them."""
    chat = _chat(api)
    path = f"/v1/conversations/{chat}/messages"
    first = ok(
        api.call(
            api.alice,
            "POST",
            path,
            json={"role": "user", "content": "my card is 4111"},
            headers={"Idempotency-Key": "erase-me"},
        ),
        201,
    )
    kept = ok(
        api.call(
            api.admin,
            "POST",
            path,
            json={"role": "assistant", "content": "noted, alice"},
            headers={"Idempotency-Key": "keep-me"},
        ),
        201,
    )
    assert {row.message_id.hex for row in _rows(api.url)} == {
        first["id"].replace("-", ""),
        kept["id"].replace("-", ""),
    }
    ok(api.call(api.admin, "POST", f"/v1/messages/{first['id']}/erase"))
    assert not any("4111" in body for body in _bodies(api.url))
    assert [row.key for row in _rows(api.url)] == ["keep-me"]
    retried = api.call(
        api.alice,
        "POST",
        path,
        json={"role": "user", "content": "my card is 4111"},
        headers={"Idempotency-Key": "erase-me"},
    )
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert (retried.json()["id"], retried.json()["content"]) == (first["id"], "")
    assert retried.json()["erased_at"] is not None
    assert _message_count(api, chat) == 2
    # The retry's own response carries an erased message: it is not stored.
    assert [row.key for row in _rows(api.url)] == ["keep-me"]
    # A hard delete takes the admin key's stored response with the conversation.
    assert api.call(api.alice, "DELETE", f"/v1/conversations/{chat}").status_code == 204
    assert _rows(api.url) == []
    # So does a user's erasure, for a response another API key stored.
    bobs = ok(api.call(api.bob, "POST", "/v1/conversations", json={}), 201)["id"]
    ok(
        api.call(
            api.admin,
            "POST",
            f"/v1/conversations/{bobs}/messages",
            json={"role": "assistant", "content": "bob's secret"},
            headers={"Idempotency-Key": "bobs"},
        ),
        201,
    )
    assert len(_rows(api.url)) == 1
    ok(api.call(api.admin, "POST", f"/v1/users/{api.bob.user_id}/erase"))
    assert _rows(api.url) == []


def test_a_failed_request_releases_its_claim(api: Api) -> None:
    chat = _chat(api)
    path = f"/v1/conversations/{chat}/messages"
    key = {"Idempotency-Key": "pay-1"}
    body = {"role": "assistant", "content": "costly", "charge": 10}
    error(api.call(api.alice, "POST", path, json=body, headers=key), 409, "insufficient_balance")
    assert _rows(api.url) == []
    ok(
        api.call(
            api.admin,
            "POST",
            "/v1/tokens/credit",
            json={"user_id": api.alice.user_id, "amount": 10, "reason": "top-up"},
        ),
        201,
    )
    retried = api.call(api.alice, "POST", path, json=body, headers=key)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert ok(api.call(api.alice, "GET", "/v1/tokens/balance"))["balance"] == 0


_HOLD_CLAIM = """
import sys
from chatledger import Ledger
from chatledger._sync._idempotency import IdempotentRequests
url, key_id, key, digest = sys.argv[1:]
with Ledger(url) as ledger:
    claim = IdempotentRequests(ledger).claim(key_id, key, digest)
print(claim.outcome)
"""


def test_a_claim_of_another_process_is_a_409_until_it_expires(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(settings=ServerSettings(purge_interval=0))
    chat = _chat(api)
    path = f"/v1/conversations/{chat}/messages"
    body = {"role": "user", "content": "in flight"}
    raw = json.dumps(body).encode()
    digest = canonical_hash("POST", path, raw)
    # Another process claims the key and dies before finishing the request.
    claimed = subprocess.run(
        [
            sys.executable,
            "-c",
            _HOLD_CLAIM,
            api.url.render_as_string(hide_password=False),
            api.alice.key_id,
            "k-9",
            digest,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert claimed.stdout.strip() == "claimed"
    headers = {"Idempotency-Key": "k-9", "Content-Type": "application/json"}
    busy = api.call(api.alice, "POST", path, content=raw, headers=headers)
    assert error(busy, 409, "idempotency_key_in_use")["field"] == "Idempotency-Key"
    assert busy.headers["retry-after"] == "1"
    assert _message_count(api, chat) == 0
    # 61 seconds later (the claim's clock moved back), the claim is stale and taken over.
    _age(api.url, timedelta(seconds=61))
    taken = api.call(api.alice, "POST", path, content=raw, headers=headers)
    assert taken.status_code == 201, taken.text
    assert _message_count(api, chat) == 1


# SQLite has no row lock to hold an append open with; the test above covers it.
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_two_requests_at_once_one_runs_the_other_gets_a_409(api: Api) -> None:
    """The first request claims the key, then waits on a row lock held by the test (a slow
    append); the second, sent meanwhile, is a 409; then the first completes and is replayed."""
    chat = _chat(api)
    path = f"/v1/conversations/{chat}/messages"
    body = {"role": "user", "content": "once"}
    headers = {"Idempotency-Key": "same"}
    engine = sa.create_engine(api.url, poolclass=sa.pool.NullPool)
    results: dict[str, Any] = {}
    with engine.connect() as blocker:
        blocker.begin()
        blocker.execute(sa.text("SELECT id FROM conversations FOR UPDATE"))
        first = threading.Thread(
            target=lambda: results.setdefault(
                "first", api.call(api.alice, "POST", path, json=body, headers=headers)
            )
        )
        first.start()
        deadline = time.monotonic() + 30
        while not _rows(api.url):  # the claim is committed before the append starts
            assert time.monotonic() < deadline, "the first request never claimed its key"
            time.sleep(0.02)
        second = api.call(api.alice, "POST", path, json=body, headers=headers)
        error(second, 409, "idempotency_key_in_use")
        blocker.rollback()
    first.join(30)
    engine.dispose()
    assert results["first"].status_code == 201, results["first"].text
    third = api.call(api.alice, "POST", path, json=body, headers=headers)
    assert third.headers["idempotent-replayed"] == "true"
    assert third.json() == results["first"].json()
    assert _message_count(api, chat) == 1


# The library's claims, on every backend and both surfaces.


def _claims(store: Any) -> Any:
    if isinstance(store, Ledger):
        return IdempotentRequests(store)
    return Blocking(AsyncIdempotentRequests(store._target), store._portal)


def test_claim_outcomes_and_purge(store: Any, database_url: URL) -> None:
    user = store.users.create(external_id="claimer")
    key = store.api_keys.create(user.id).key
    claims = _claims(store)
    digest, other = "a" * 64, "b" * 64
    assert claims.claim(key.id, "k", digest).outcome == "claimed"
    assert claims.claim(key.id, "k", digest).outcome == "running"
    assert claims.claim(key.id, "k", other).outcome == "mismatch"
    assert claims.complete(key.id, "k", digest, 201, '{"x":1}') is True
    # A response carrying a message that is gone is not kept: the claim is released.
    assert claims.claim(key.id, "lost", digest).outcome == "claimed"
    assert claims.complete(key.id, "lost", digest, 201, "{}", message_id=uuid.uuid4()) is False
    assert claims.claim(key.id, "lost", other).outcome == "claimed"
    assert claims.release(key.id, "lost", other) is True
    replay = claims.claim(key.id, "k", digest)
    assert (replay.outcome, replay.status, replay.body) == ("replay", 201, '{"x":1}')
    assert claims.complete(key.id, "k", digest, 201, "{}") is False  # done already
    assert claims.claim(key.id, "gone", digest).outcome == "claimed"
    assert claims.release(key.id, "gone", digest) is True
    assert claims.claim(key.id, "gone", other).outcome == "claimed"  # free again
    assert claims.purge() == 0
    # A day later everything has expired: a claim takes the key over, and purge deletes.
    _age(database_url, timedelta(hours=24, seconds=1))
    assert claims.claim(key.id, "k", other).outcome == "claimed"
    assert claims.purge() == 1  # "gone"; "k" was just claimed again
    assert claims.purge(running_timeout=timedelta(microseconds=1)) == 1
    with pytest.raises(ValidationError) as invalid:
        claims.claim(key.id, "x" * 201, digest)
    assert invalid.value.field == "Idempotency-Key"
    with pytest.raises(ValidationError):
        claims.claim(key.id, "k", "not a hash")


def test_racing_first_claims_make_one_winner(ledger: Ledger) -> None:
    user = ledger.users.create(external_id="racer")
    key = ledger.api_keys.create(user.id).key
    claims = IdempotentRequests(ledger)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def race() -> None:
        try:
            barrier.wait()
            outcomes.append(claims.claim(key.id, "race", "c" * 64).outcome)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(outcomes) == ["claimed"] + ["running"] * 5


def test_the_server_purges_expired_claims_in_the_background(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(settings=ServerSettings(purge_interval=0.05))
    chat = _chat(api)
    path = f"/v1/conversations/{chat}/messages"
    for key in ("old", "new"):
        body = {"role": "user", "content": key}
        ok(api.call(api.alice, "POST", path, json=body, headers={"Idempotency-Key": key}), 201)
    engine = sa.create_engine(api.url, poolclass=sa.pool.NullPool)
    c = idempotent_requests.c
    with engine.begin() as conn:
        created = conn.execute(sa.select(c.created_at).where(c.key == "old")).scalar_one()
        conn.execute(
            sa.update(idempotent_requests)
            .where(c.key == "old")
            .values(created_at=created - timedelta(hours=25))
        )
    engine.dispose()
    deadline = time.monotonic() + 30
    while {row.key for row in _rows(api.url)} != {"new"}:
        assert time.monotonic() < deadline, "the expired claim was not purged"
        time.sleep(0.05)
