"""Every route of the HTTP API, in-process, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from chatledger import Ledger, migrate

from .conftest import Api


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message", "field", "limit", "request_id"}
    assert body["error"]["type"] == kind, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


def test_health_and_readiness(api: Api) -> None:
    assert ok(api.call(None, "GET", "/healthz")) == {"status": "ok"}
    assert ok(api.call(None, "GET", "/readyz")) == {"status": "ready", "revision": migrate.head()}


def test_every_authenticated_route_needs_a_valid_key(api: Api) -> None:
    with Ledger(api.url) as ledger:
        revoked = ledger.api_keys.create(api.alice.user_id)
        ledger.api_keys.revoke(revoked.key.id)
        expiring = ledger.api_keys.create(
            api.alice.user_id, expires_at=datetime.now(UTC) + timedelta(seconds=1)
        )
    bodies = []
    for value in (
        None,
        "Bearer clk_unknownprefix_" + "a" * 43,
        "Bearer not-a-key",
        f"Bearer {revoked.secret}",
        f"Basic {api.alice.secret}",
    ):
        headers = {} if value is None else {"Authorization": value}
        response = api.call(None, "GET", "/v1/me", headers=headers)
        body = error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        bodies.append((body["message"], body["field"]))
    # Unknown, malformed and revoked keys get one answer; no key at all says a key is needed.
    assert len(set(bodies[1:4])) == 1
    assert ok(
        api.call(None, "GET", "/v1/me", headers={"Authorization": f"Bearer {expiring.secret}"})
    )
    # Every /v1 route of the OpenAPI document asks for the key.
    for path, operations in api.app.openapi()["paths"].items():
        for operation in operations.values():
            assert ("security" in operation) == path.startswith("/v1/"), path


def test_failed_authentication_is_audited_without_the_secret(api: Api) -> None:
    secret = "clk_abcdefghijkl_" + "s" * 43
    error(
        api.call(None, "GET", "/v1/me", headers={"Authorization": f"Bearer {secret}"}),
        401,
        "unauthorized",
    )
    events = ok(
        api.call(api.admin, "GET", "/v1/audit/events", params={"event_type": "auth.failed"})
    )["data"]
    assert len(events) == 1
    assert events[0]["category"] == "security"
    assert events[0]["metadata"]["key_prefix"] == "abcdefghijkl"
    assert "s" * 43 not in str(events[0])
    # A NUL in the path (which the store cannot hold) does not stop the event being recorded.
    nul = api.call(None, "GET", "/v1/messages/a%00b", headers={"Authorization": f"Bearer {secret}"})
    error(nul, 401, "unauthorized")
    page = ok(api.call(api.admin, "GET", "/v1/audit/events", params={"event_type": "auth.failed"}))
    assert page["data"][0]["metadata"]["path"] == "/v1/messages/ab"


def test_users(api: Api) -> None:
    me = ok(api.call(api.alice, "GET", "/v1/me"))
    assert me["id"] == api.alice.user_id
    assert me["role"] == "user"
    created = ok(
        api.call(
            api.admin, "POST", "/v1/users", json={"external_id": "carol", "email": "C@Example.com"}
        ),
        201,
    )
    assert created["email"] == "c@example.com"
    conflict = error(
        api.call(api.admin, "POST", "/v1/users", json={"external_id": "carol"}), 409, "conflict"
    )
    assert conflict["field"] == "external_id"
    page = ok(api.call(api.admin, "GET", "/v1/users", params={"limit": 2}))
    assert len(page["data"]) == 2
    assert page["has_more"] is True
    rest = ok(api.call(api.admin, "GET", "/v1/users", params={"after": page["last_cursor"]}))
    ids = [u["id"] for u in page["data"] + rest["data"]]
    assert len(ids) == len(set(ids)) == 4
    assert ok(api.call(api.admin, "GET", f"/v1/users/{created['id']}"))["external_id"] == "carol"
    updated = ok(
        api.call(api.admin, "PATCH", f"/v1/users/{created['id']}", json={"display_name": "Carol"})
    )
    assert (updated["display_name"], updated["email"]) == ("Carol", "c@example.com")
    # Admin routes: 403 for a non-admin key, checked on every call.
    error(api.call(api.alice, "GET", "/v1/users"), 403, "forbidden")
    error(api.call(api.alice, "GET", f"/v1/users/{api.bob.user_id}"), 403, "forbidden")
    ok(api.call(api.admin, "PATCH", f"/v1/users/{api.alice.user_id}", json={"role": "admin"}))
    assert ok(api.call(api.alice, "GET", "/v1/users"))["data"]
    ok(api.call(api.admin, "PATCH", f"/v1/users/{api.alice.user_id}", json={"role": "user"}))
    error(api.call(api.alice, "GET", "/v1/users"), 403, "forbidden")
    ok(api.call(api.admin, "DELETE", f"/v1/users/{created['id']}"), 204)
    error(api.call(api.admin, "GET", f"/v1/users/{created['id']}"), 404, "not_found")


def test_conversations(api: Api) -> None:
    ids = []
    for n in range(5):
        chat = ok(
            api.call(api.alice, "POST", "/v1/conversations", json={"title": f"chat {n}"}), 201
        )
        assert chat["owner_id"] == api.alice.user_id
        ids.append(chat["id"])
    first = ok(api.call(api.alice, "GET", "/v1/conversations", params={"limit": 2}))
    assert [c["id"] for c in first["data"]] == [ids[4], ids[3]]  # newest first
    assert (first["first_id"], first["last_id"], first["has_more"]) == (ids[4], ids[3], True)
    second = ok(
        api.call(
            api.alice,
            "GET",
            "/v1/conversations",
            params={"limit": 2, "after": first["last_cursor"]},
        )
    )
    assert [c["id"] for c in second["data"]] == [ids[2], ids[1]]
    back = ok(
        api.call(
            api.alice,
            "GET",
            "/v1/conversations",
            params={"limit": 2, "before": second["first_cursor"]},
        )
    )
    assert [c["id"] for c in back["data"]] == [ids[4], ids[3]]
    oldest = ok(
        api.call(api.alice, "GET", "/v1/conversations", params={"order": "asc", "limit": 1})
    )
    assert oldest["data"][0]["id"] == ids[0]
    both = api.call(
        api.alice,
        "GET",
        "/v1/conversations",
        params={"after": first["last_cursor"], "before": first["last_cursor"]},
    )
    assert error(both, 422, "invalid_request")["field"] == "before"
    bad_cursor = error(
        api.call(api.alice, "GET", "/v1/conversations", params={"after": "garbage"}),
        422,
        "invalid_request",
    )
    assert bad_cursor["field"] == "after"

    chat = ids[0]
    patched = ok(
        api.call(
            api.alice,
            "PATCH",
            f"/v1/conversations/{chat}",
            json={"title": "renamed", "metadata": {"k": [1, "v"]}},
        )
    )
    assert (patched["title"], patched["metadata"]) == ("renamed", {"k": [1, "v"]})
    cleared = ok(api.call(api.alice, "PATCH", f"/v1/conversations/{chat}", json={"title": None}))
    assert (cleared["title"], cleared["metadata"]) == (None, {"k": [1, "v"]})
    assert (
        ok(api.call(api.alice, "POST", f"/v1/conversations/{chat}/archive"))["status"] == "archived"
    )
    assert (
        ok(api.call(api.alice, "POST", f"/v1/conversations/{chat}/unarchive"))["status"] == "active"
    )
    assert ok(api.call(api.alice, "POST", f"/v1/conversations/{chat}/close"))["status"] == "closed"
    closed = api.call(
        api.alice,
        "POST",
        f"/v1/conversations/{chat}/messages",
        json={"role": "user", "content": "hi"},
    )
    error(closed, 409, "conflict")
    error(api.call(api.alice, "POST", f"/v1/conversations/{chat}/unarchive"), 409, "conflict")
    soft = ok(api.call(api.alice, "POST", f"/v1/conversations/{chat}/soft-delete"))
    assert soft["status"] == "deleted"
    assert ok(api.call(api.alice, "GET", f"/v1/conversations/{chat}"))["status"] == "deleted"
    listed = ok(
        api.call(api.alice, "GET", "/v1/conversations", params={"status": ["deleted", "closed"]})
    )
    assert [c["id"] for c in listed["data"]] == [chat]
    assert (
        ok(api.call(api.alice, "POST", f"/v1/conversations/{chat}/restore"))["status"] == "active"
    )
    ok(api.call(api.alice, "DELETE", f"/v1/conversations/{chat}"), 204)
    error(api.call(api.alice, "GET", f"/v1/conversations/{chat}"), 404, "not_found")
    error(api.call(api.alice, "GET", f"/v1/conversations/{chat}/messages"), 404, "not_found")
    # An admin key lists and creates for any user.
    theirs = ok(
        api.call(api.admin, "GET", "/v1/conversations", params={"user_id": api.alice.user_id})
    )
    assert len(theirs["data"]) == 4
    made = ok(
        api.call(api.admin, "POST", "/v1/conversations", json={"user_id": api.bob.user_id}), 201
    )
    assert made["owner_id"] == api.bob.user_id


def test_messages(api: Api) -> None:
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    sent = []
    for n, role in enumerate(["system", "user", "assistant", "user", "assistant"]):
        body: dict[str, Any] = {"role": role, "content": f"message {n}"}
        if role == "assistant":
            body.update(
                model="gpt-4o-mini",
                input_tokens=10,
                output_tokens=5,
                cost="0.000123",
                latency_ms=900,
            )
        sent.append(
            ok(api.call(api.alice, "POST", f"/v1/conversations/{chat}/messages", json=body), 201)
        )
    assert [m["seq"] for m in sent] == [1, 2, 3, 4, 5]
    assert sent[2]["cost"] == "0.000123"
    page = ok(api.call(api.alice, "GET", f"/v1/conversations/{chat}/messages", params={"limit": 2}))
    assert [m["seq"] for m in page["data"]] == [1, 2]
    assert page["first_id"] == sent[0]["id"]
    nxt = ok(
        api.call(
            api.alice,
            "GET",
            f"/v1/conversations/{chat}/messages",
            params={"limit": 2, "after": page["last_cursor"]},
        )
    )
    assert [m["seq"] for m in nxt["data"]] == [3, 4]
    newest = ok(
        api.call(
            api.alice,
            "GET",
            f"/v1/conversations/{chat}/messages",
            params={"order": "desc", "limit": 2},
        )
    )
    assert [m["seq"] for m in newest["data"]] == [5, 4]
    replies = ok(
        api.call(
            api.alice, "GET", f"/v1/conversations/{chat}/messages", params={"role": "assistant"}
        )
    )
    assert [m["seq"] for m in replies["data"]] == [3, 5]
    assert ok(api.call(api.alice, "GET", f"/v1/messages/{sent[2]['id']}")) == sent[2]
    last = ok(
        api.call(api.alice, "GET", f"/v1/conversations/{chat}/messages/last", params={"n": 3})
    )
    assert [m["seq"] for m in last] == [3, 4, 5]
    replies_last = api.call(
        api.alice, "GET", f"/v1/conversations/{chat}/messages/last", params={"role": "user"}
    )
    assert [m["seq"] for m in ok(replies_last)] == [2, 4]
    assert ok(api.call(api.alice, "GET", f"/v1/conversations/{chat}"))["message_count"] == 5
    error(api.call(api.alice, "GET", f"/v1/messages/{uuid.uuid4()}"), 404, "not_found")
    error(api.call(api.alice, "GET", "/v1/messages/not-a-uuid"), 422, "invalid_request")


def test_feedback_and_citations(api: Api) -> None:
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    question = ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/conversations/{chat}/messages",
            json={"role": "user", "content": "q"},
        ),
        201,
    )
    answer = ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/conversations/{chat}/messages",
            json={"role": "assistant", "content": "a"},
        ),
        201,
    )
    rating = ok(
        api.call(
            api.alice,
            "PUT",
            f"/v1/messages/{answer['id']}/feedback/mine",
            json={"thumb": "up", "score": 4, "categories": ["helpful"]},
        )
    )
    assert (rating["rater_id"], rating["thumb"], rating["score"]) == (api.alice.user_id, "up", 4)
    again = ok(
        api.call(
            api.alice, "PUT", f"/v1/messages/{answer['id']}/feedback/mine", json={"thumb": "down"}
        )
    )
    assert again["id"] == rating["id"]
    admin_rating = ok(
        api.call(
            api.admin,
            "PUT",
            f"/v1/messages/{answer['id']}/feedback/mine",
            json={"score": 2, "scale": [0, 10]},
        )
    )
    assert admin_rating["rater_id"] == api.admin.user_id
    assert len(ok(api.call(api.alice, "GET", f"/v1/messages/{answer['id']}/feedback"))) == 2
    bad = error(
        api.call(api.alice, "PUT", f"/v1/messages/{answer['id']}/feedback/mine", json={"score": 9}),
        422,
        "invalid_request",
    )
    assert bad["field"] == "score"
    mine = ok(api.call(api.alice, "GET", f"/v1/messages/{answer['id']}/feedback/mine"))
    assert mine["thumb"] == "down"
    ok(api.call(api.alice, "DELETE", f"/v1/messages/{answer['id']}/feedback/mine"), 204)
    error(
        api.call(api.alice, "GET", f"/v1/messages/{answer['id']}/feedback/mine"), 404, "not_found"
    )
    error(
        api.call(api.alice, "DELETE", f"/v1/messages/{answer['id']}/feedback/mine"),
        404,
        "not_found",
    )

    with Ledger(api.url) as ledger:
        chunk = ledger.knowledge.upsert("docs", "intro", "Some text.")
    cited = ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/messages/{answer['id']}/citations",
            json={"chunk_id": str(chunk.id), "rank": 0, "score": 0.9},
        ),
        201,
    )
    ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/messages/{answer['id']}/citations",
            json={"url": "https://example.com/a", "rank": 1},
        ),
        201,
    )
    wrong_role = api.call(
        api.alice,
        "POST",
        f"/v1/messages/{question['id']}/citations",
        json={"url": "https://example.com/"},
    )
    assert error(wrong_role, 409, "conflict")["field"] == "role"
    listed = ok(api.call(api.alice, "GET", f"/v1/messages/{answer['id']}/citations"))
    assert listed[0]["id"] == cited["id"]
    summary = ok(api.call(api.alice, "GET", "/v1/feedback/summary", params={"by": "conversation"}))
    assert [(g["key"], g["ratings"]) for g in summary] == [(chat, 1)]  # the admin's
    assert ok(api.call(api.bob, "GET", "/v1/feedback/summary", params={"by": "model"})) == []
    detail = ok(api.call(api.alice, "GET", f"/v1/messages/{answer['id']}/detail"))
    assert (detail["message"]["id"], len(detail["feedback"]), len(detail["citations"])) == (
        answer["id"],
        1,
        2,
    )


def test_tokens_usage_and_surveys(api: Api) -> None:
    change = {"user_id": api.alice.user_id, "amount": 100, "reason": "welcome"}
    error(api.call(api.alice, "POST", "/v1/tokens/credit", json=change), 403, "forbidden")
    entry = ok(api.call(api.admin, "POST", "/v1/tokens/credit", json=change), 201)
    assert entry["balance_after"] == 100
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    paid = {
        "role": "assistant",
        "content": "a",
        "model": "m1",
        "input_tokens": 3,
        "output_tokens": 4,
        "cost": "0.5",
        "charge": 30,
    }
    ok(api.call(api.alice, "POST", f"/v1/conversations/{chat}/messages", json=paid), 201)
    poor = api.call(
        api.alice, "POST", f"/v1/conversations/{chat}/messages", json={**paid, "charge": 1000}
    )
    assert error(poor, 409, "insufficient_balance")["field"] == "amount"
    assert ok(api.call(api.alice, "GET", "/v1/tokens/balance")) == {
        "user_id": api.alice.user_id,
        "balance": 70,
    }
    assert (
        ok(api.call(api.admin, "GET", "/v1/tokens/balance", params={"user_id": api.alice.user_id}))[
            "balance"
        ]
        == 70
    )
    ledger_page = ok(api.call(api.alice, "GET", "/v1/tokens/ledger"))
    assert [e["delta"] for e in ledger_page["data"]] == [-30, 100]
    ok(api.call(api.admin, "POST", "/v1/tokens/debit", json={**change, "amount": 20}), 201)
    assert ok(api.call(api.alice, "GET", "/v1/tokens/balance"))["balance"] == 50

    usage = ok(api.call(api.alice, "GET", "/v1/usage"))
    assert (usage["messages"], usage["input_tokens"], usage["output_tokens"], usage["cost"]) == (
        1,
        3,
        4,
        "0.5",
    )
    totals = ok(api.call(api.alice, "GET", "/v1/usage/totals", params={"by": "model"}))
    assert [(t["key"], t["messages"]) for t in totals] == [("m1", 1)]
    assert ok(api.call(api.bob, "GET", "/v1/usage"))["messages"] == 0
    assert ok(api.call(api.admin, "GET", "/v1/usage"))["messages"] == 1

    response = ok(
        api.call(
            api.alice, "POST", "/v1/surveys/beta/responses", json={"answers": {"role": "dev"}}
        ),
        201,
    )
    assert (response["user_id"], response["tokens_granted"]) == (api.alice.user_id, 0)
    denied = api.call(
        api.alice, "POST", "/v1/surveys/beta/responses", json={"answers": {}, "grant": 5}
    )
    assert error(denied, 403, "forbidden")["field"] == "grant"
    granted = ok(
        api.call(
            api.admin,
            "POST",
            "/v1/surveys/beta/responses",
            json={"answers": {"x": 1}, "user_id": api.bob.user_id, "grant": 5},
        ),
        201,
    )
    assert granted["tokens_granted"] == 5
    mine = ok(api.call(api.alice, "GET", "/v1/survey-responses"))
    assert [r["id"] for r in mine["data"]] == [response["id"]]
    assert ok(api.call(api.alice, "GET", f"/v1/survey-responses/{response['id']}"))["answers"] == {
        "role": "dev"
    }
    beta = ok(api.call(api.admin, "GET", "/v1/survey-responses", params={"survey": "beta"}))
    assert len(beta["data"]) == 2
    first = ok(
        api.call(api.admin, "GET", "/v1/survey-responses", params={"survey": "beta", "limit": 1})
    )
    assert first["has_more"]
    rest = ok(
        api.call(
            api.admin,
            "GET",
            "/v1/survey-responses",
            params={"survey": "beta", "limit": 1, "after": first["last_cursor"]},
        )
    )
    assert [r["id"] for r in first["data"] + rest["data"]] == [r["id"] for r in beta["data"]]
    assert not rest["has_more"]


def test_visitors_and_product_feedback(api: Api) -> None:
    visitor = ok(
        api.call(
            api.admin,
            "POST",
            "/v1/visitors",
            json={"name": "Crawler", "agent_type": "bot", "answers": {"goal": "index"}},
        )
    )
    again = ok(
        api.call(api.admin, "POST", "/v1/visitors", json={"name": "crawler", "agent_type": "BOT"})
    )
    # A user's key cannot record visits: it could merge answers into anyone's visitor.
    error(api.call(api.bob, "POST", "/v1/visitors", json={"name": "crawler"}), 403, "forbidden")
    assert (again["id"], again["visit_count"], again["answers"]) == (
        visitor["id"],
        2,
        {"goal": "index"},
    )
    error(api.call(api.alice, "GET", "/v1/visitors"), 403, "forbidden")
    assert [v["id"] for v in ok(api.call(api.admin, "GET", "/v1/visitors"))["data"]] == [
        visitor["id"]
    ]
    updated = ok(
        api.call(
            api.admin,
            "PUT",
            f"/v1/visitors/{visitor['id']}/answers",
            json={"answers": {"lang": "en"}, "replace": True},
        )
    )
    assert updated["answers"] == {"lang": "en"}
    assert ok(api.call(api.admin, "GET", f"/v1/visitors/{visitor['id']}"))["visit_count"] == 2
    ok(api.call(api.admin, "DELETE", f"/v1/visitors/{visitor['id']}"), 204)
    error(api.call(api.admin, "GET", f"/v1/visitors/{visitor['id']}"), 404, "not_found")

    form = ok(
        api.call(
            api.alice,
            "POST",
            "/v1/product-feedback",
            json={"agent_name": "helper", "usability_rating": 9},
        ),
        201,
    )
    error(api.call(api.alice, "GET", "/v1/product-feedback"), 403, "forbidden")
    assert ok(api.call(api.admin, "GET", "/v1/product-feedback"))["data"][0]["id"] == form["id"]
    assert (
        ok(api.call(api.admin, "GET", f"/v1/product-feedback/{form['id']}"))["usability_rating"]
        == 9
    )
    too_high = api.call(
        api.alice, "POST", "/v1/product-feedback", json={"agent_name": "x", "usability_rating": 11}
    )
    assert error(too_high, 422, "invalid_request")["limit"] == 10


def test_knowledge(api: Api) -> None:
    chunk = {"source": "docs", "external_id": "a", "content": "alpha"}
    error(api.call(api.alice, "PUT", "/v1/knowledge/chunks", json=chunk), 403, "forbidden")
    stored = ok(api.call(api.admin, "PUT", "/v1/knowledge/chunks", json=chunk))
    report = ok(
        api.call(
            api.admin,
            "POST",
            "/v1/knowledge/bulk",
            json={"chunks": [chunk, {**chunk, "external_id": "b"}]},
        )
    )
    assert (report["inserted"], report["unchanged"]) == (1, 1)
    page = ok(
        api.call(api.alice, "GET", "/v1/knowledge/chunks", params={"source": "docs", "limit": 1})
    )
    assert page["data"][0]["id"] == stored["id"]
    rest = ok(
        api.call(
            api.alice,
            "GET",
            "/v1/knowledge/chunks",
            params={"source": "docs", "after": page["last_cursor"]},
        )
    )
    assert [c["external_id"] for c in rest["data"]] == ["b"]
    assert (
        ok(api.call(api.bob, "GET", f"/v1/knowledge/chunks/{stored['id']}"))["content"] == "alpha"
    )
    error(api.call(api.bob, "DELETE", f"/v1/knowledge/chunks/{stored['id']}"), 403, "forbidden")
    ok(api.call(api.admin, "DELETE", f"/v1/knowledge/chunks/{stored['id']}"), 204)
    error(api.call(api.bob, "GET", f"/v1/knowledge/chunks/{stored['id']}"), 404, "not_found")


def test_api_keys(api: Api) -> None:
    created = ok(api.call(api.alice, "POST", "/v1/api-keys", json={"name": "laptop"}), 201)
    assert created["secret"].startswith("clk_")
    assert created["key"]["user_id"] == api.alice.user_id
    new = {"Authorization": f"Bearer {created['secret']}"}
    assert ok(api.call(None, "GET", "/v1/me", headers=new))["id"] == api.alice.user_id
    listed = ok(api.call(api.alice, "GET", "/v1/api-keys"))["data"]
    assert {k["id"] for k in listed} == {api.alice.key_id, created["key"]["id"]}
    assert all("secret" not in k and "secret_hash" not in k for k in listed)
    paged = ok(api.call(api.alice, "GET", "/v1/api-keys", params={"limit": 1}))
    assert (len(paged["data"]), paged["has_more"]) == (1, True)
    rest = ok(
        api.call(
            api.alice, "GET", "/v1/api-keys", params={"limit": 1, "after": paged["last_cursor"]}
        )
    )
    assert [k["id"] for k in paged["data"] + rest["data"]] == [k["id"] for k in listed]
    assert rest["has_more"] is False
    assert (
        ok(api.call(api.alice, "GET", f"/v1/api-keys/{created['key']['id']}"))["name"] == "laptop"
    )
    revoked = ok(api.call(api.alice, "POST", f"/v1/api-keys/{created['key']['id']}/revoke"))
    assert revoked["revoked_at"] is not None
    error(api.call(None, "GET", "/v1/me", headers=new), 401, "unauthorized")
    assert (
        len(
            ok(api.call(api.alice, "GET", "/v1/api-keys", params={"include_revoked": "true"}))[
                "data"
            ]
        )
        == 2
    )
    for_bob = ok(
        api.call(api.admin, "POST", "/v1/api-keys", json={"user_id": api.bob.user_id}), 201
    )
    assert for_bob["key"]["user_id"] == api.bob.user_id
    error(
        api.call(api.alice, "POST", "/v1/api-keys", json={"user_id": api.bob.user_id}),
        404,
        "not_found",
    )
    past = api.call(api.alice, "POST", "/v1/api-keys", json={"expires_at": "2000-01-01T00:00:00Z"})
    assert error(past, 422, "invalid_request")["field"] == "expires_at"
    events = ok(api.call(api.admin, "GET", "/v1/audit/events", params={"category": "security"}))[
        "data"
    ]
    kinds = [e["event_type"] for e in events]
    assert kinds.count("api_key.created") == 3  # the bootstrap key, alice's, bob's
    assert kinds.count("api_key.revoked") == 1
    assert all(created["secret"] not in str(e) for e in events)


def test_audit_export_and_erase(api: Api) -> None:
    chat = ok(api.call(api.bob, "POST", "/v1/conversations", json={"title": "mine"}), 201)["id"]
    ok(
        api.call(
            api.bob,
            "POST",
            f"/v1/conversations/{chat}/messages",
            json={"role": "user", "content": "hi"},
        ),
        201,
    )
    event = ok(
        api.call(
            api.admin,
            "POST",
            "/v1/audit/events",
            json={"event_type": "app.deploy", "severity": "info"},
        ),
        201,
    )
    assert ok(api.call(api.admin, "GET", f"/v1/audit/events/{event['seq']}"))["id"] == event["id"]
    error(api.call(api.alice, "GET", "/v1/audit/events"), 403, "forbidden")
    error(api.call(api.alice, "GET", "/v1/audit/verify"), 403, "forbidden")
    error(api.call(api.alice, "GET", f"/v1/users/{api.alice.user_id}/export"), 403, "forbidden")
    error(api.call(api.alice, "POST", f"/v1/users/{api.alice.user_id}/erase"), 403, "forbidden")
    exported = ok(api.call(api.admin, "GET", f"/v1/users/{api.bob.user_id}/export"))
    assert len(exported["tables"]["messages"]) == 1
    report = ok(api.call(api.admin, "POST", f"/v1/users/{api.bob.user_id}/erase"))
    assert report["deleted"]["messages"] == 1
    error(api.call(api.bob, "GET", "/v1/me"), 401, "unauthorized")  # bob's key went too
    assert ok(api.call(api.admin, "GET", "/v1/audit/verify"))["ok"] is True
    kinds = [
        e["event_type"]
        for e in ok(api.call(api.admin, "GET", "/v1/audit/events", params={"limit": 100}))["data"]
    ]
    assert {"admin.user_exported", "admin.user_erased"} <= set(kinds)


def test_every_v1_operation_answers_401_without_a_key(api: Api) -> None:
    """A sweep of the OpenAPI document: each operation, called without a key (or with a
    revoked one), is a 401 before anything else is looked at."""
    with Ledger(api.url) as ledger:
        ledger.api_keys.revoke(api.bob.key_id)
    swept = 0
    for path, operations in api.app.openapi()["paths"].items():
        if not path.startswith("/v1/"):
            continue
        concrete = path.replace("{survey}", "s").replace("{seq}", "1")
        while "{" in concrete:
            start, end = concrete.index("{"), concrete.index("}")
            concrete = concrete[:start] + str(uuid.uuid4()) + concrete[end + 1 :]
        for method in operations:
            for who in (None, api.bob):
                response = api.call(who, method.upper(), concrete, json={})
                error(response, 401, "unauthorized")
            swept += 1
    assert swept >= 45


def test_deleted_objects_stay_gone(api: Api) -> None:
    """After a successful DELETE, every read of the object is a 404."""
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    message = ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/conversations/{chat}/messages",
            json={"role": "user", "content": "x"},
        ),
        201,
    )["id"]
    ok(api.call(api.alice, "PUT", f"/v1/messages/{message}/feedback/mine", json={"thumb": "up"}))
    ok(api.call(api.alice, "DELETE", f"/v1/messages/{message}/feedback/mine"), 204)
    error(api.call(api.alice, "GET", f"/v1/messages/{message}/feedback/mine"), 404, "not_found")
    ok(api.call(api.alice, "DELETE", f"/v1/conversations/{chat}"), 204)
    for path in (
        f"/v1/conversations/{chat}",
        f"/v1/conversations/{chat}/messages",
        f"/v1/messages/{message}",
        f"/v1/messages/{message}/detail",
        f"/v1/messages/{message}/feedback",
        f"/v1/messages/{message}/citations",
    ):
        error(api.call(api.alice, "GET", path), 404, "not_found")
    error(api.call(api.alice, "DELETE", f"/v1/conversations/{chat}"), 404, "not_found")
    chunk = ok(
        api.call(
            api.admin,
            "PUT",
            "/v1/knowledge/chunks",
            json={"source": "s", "external_id": "e", "content": "c"},
        )
    )["id"]
    ok(api.call(api.admin, "DELETE", f"/v1/knowledge/chunks/{chunk}"), 204)
    error(api.call(api.admin, "GET", f"/v1/knowledge/chunks/{chunk}"), 404, "not_found")
    visitor = ok(api.call(api.admin, "POST", "/v1/visitors", json={"name": "v"}))["id"]
    ok(api.call(api.admin, "DELETE", f"/v1/visitors/{visitor}"), 204)
    error(api.call(api.admin, "GET", f"/v1/visitors/{visitor}"), 404, "not_found")
    carol = ok(api.call(api.admin, "POST", "/v1/users", json={"external_id": "carol"}), 201)["id"]
    ok(api.call(api.admin, "DELETE", f"/v1/users/{carol}"), 204)
    error(api.call(api.admin, "GET", f"/v1/users/{carol}"), 404, "not_found")
    error(api.call(api.admin, "GET", f"/v1/users/{carol}/export"), 404, "not_found")
    # An admin cannot delete, erase or demote its own user.
    for method, path, body in (
        ("DELETE", f"/v1/users/{api.admin.user_id}", None),
        ("POST", f"/v1/users/{api.admin.user_id}/erase", None),
        ("PATCH", f"/v1/users/{api.admin.user_id}", {"role": "user"}),
    ):
        error(api.call(api.admin, method, path, json=body), 409, "conflict")
    assert ok(api.call(api.admin, "GET", "/v1/me"))["role"] == "admin"


def test_search_every_branch_or_the_active_path(api: Api) -> None:
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    messages = f"/v1/conversations/{chat}/messages"
    ok(api.call(api.alice, "POST", messages, json={"role": "user", "content": "zeppelin?"}), 201)
    answer = {"role": "assistant", "content": "zeppelin over Alfama"}
    first = ok(api.call(api.alice, "POST", messages, json=answer), 201)["id"]
    again = {"content": "zeppelin over Belém"}
    ok(api.call(api.alice, "POST", f"/v1/messages/{first}/regenerate", json=again), 201)

    def seqs(path: str, **params: Any) -> list[int]:
        found = ok(api.call(api.alice, "GET", path, params={"q": "zeppelin", **params}))
        return sorted(hit["message"]["seq"] for hit in found["data"])

    for path in ("/v1/search", f"/v1/conversations/{chat}/search"):
        assert seqs(path) == [1, 2, 3]
        assert seqs(path, branch="all") == [1, 2, 3]
        assert seqs(path, branch="active") == [1, 3]
        bad = api.call(api.alice, "GET", path, params={"q": "zeppelin", "branch": "sideways"})
        assert error(bad, 422, "invalid_request")["field"] == "branch"


def test_usage_details_on_append_edit_and_regenerate(api: Api) -> None:
    """``cached_input_tokens`` / ``reasoning_tokens`` over HTTP as in the library: on appends,
    edits and regenerates, 422 naming the field when invalid."""
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    post = f"/v1/conversations/{chat}/messages"
    question = ok(api.call(api.alice, "POST", post, json={"role": "user", "content": "q"}), 201)
    body = {"role": "assistant", "content": "a", "cached_input_tokens": 5, "reasoning_tokens": 2}
    answer = ok(api.call(api.alice, "POST", post, json=body), 201)
    assert (answer["cached_input_tokens"], answer["reasoning_tokens"]) == (5, 2)
    again = ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/messages/{answer['id']}/regenerate",
            json={
                "content": "a'",
                "input_tokens": 10,
                "cached_input_tokens": 4,
                "reasoning_tokens": 3,
            },
        ),
        201,
    )
    assert (again["cached_input_tokens"], again["reasoning_tokens"]) == (4, 3)
    edited = ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/messages/{question['id']}/edit",
            json={"content": "q'", "input_tokens": 2, "cached_input_tokens": 1},
        ),
        201,
    )
    assert (edited["input_tokens"], edited["cached_input_tokens"]) == (2, 1)
    refused = api.call(
        api.alice,
        "POST",
        f"/v1/messages/{answer['id']}/regenerate",
        json={"content": "x", "reasoning_tokens": -1},
    )
    assert error(refused, 422, "invalid_request")["field"] == "reasoning_tokens"
