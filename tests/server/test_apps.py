"""What the apps asked of the HTTP API (issue 20): anonymous conversations, the admin listing
of every conversation, knowledge look-ups, hidden and erased messages."""

from __future__ import annotations

from chatledger import ANONYMOUS_USER_ID

from .conftest import Api
from .test_routes import error, ok

NIL = str(ANONYMOUS_USER_ID)


def test_anonymous_conversations_are_seen_by_admin_keys_only(api: Api) -> None:
    session = ok(
        api.call(api.admin, "POST", "/v1/conversations", json={"user_id": NIL, "title": "s"}), 201
    )
    assert session["owner_id"] == NIL
    ok(
        api.call(
            api.admin,
            "POST",
            f"/v1/conversations/{session['id']}/messages",
            json={"role": "user", "content": "hello"},
        ),
        201,
    )
    listed = ok(api.call(api.admin, "GET", "/v1/conversations", params={"user_id": NIL}))
    assert [c["id"] for c in listed["data"]] == [session["id"]]
    # A user's key: the conversation, its messages and its owner do not exist.
    for method, path, kwargs in [
        ("GET", f"/v1/conversations/{session['id']}", {}),
        ("GET", f"/v1/conversations/{session['id']}/messages", {}),
        (
            "POST",
            f"/v1/conversations/{session['id']}/messages",
            {"json": {"role": "user", "content": "x"}},
        ),
        ("PATCH", f"/v1/conversations/{session['id']}", {"json": {"title": "mine"}}),
        ("DELETE", f"/v1/conversations/{session['id']}", {}),
        ("GET", "/v1/conversations", {"params": {"user_id": NIL}}),
        ("POST", "/v1/conversations", {"json": {"user_id": NIL}}),
    ]:
        error(api.call(api.alice, method, path, **kwargs), 404, "not_found")
    # No key can act as the anonymous owner.
    refused = error(
        api.call(api.admin, "POST", "/v1/api-keys", json={"user_id": NIL}), 422, "invalid_request"
    )
    assert refused["field"] == "user_id"
    assert (
        ok(api.call(api.admin, "GET", f"/v1/conversations/{session['id']}"))["message_count"] == 1
    )


def test_admins_page_through_every_users_conversations(api: Api) -> None:
    made = [
        ok(api.call(who, "POST", "/v1/conversations", json={"title": f"c{i}"}), 201)
        for i, who in enumerate([api.alice, api.bob, api.alice])
    ]
    anonymous = ok(api.call(api.admin, "POST", "/v1/conversations", json={"user_id": NIL}), 201)
    ok(api.call(api.bob, "POST", f"/v1/conversations/{made[1]['id']}/archive"))
    newest_first = [anonymous["id"]] + [c["id"] for c in reversed(made)]

    first = ok(api.call(api.admin, "GET", "/v1/admin/conversations", params={"limit": 2}))
    assert [c["id"] for c in first["data"]] == newest_first[:2]
    assert first["has_more"]
    rest = ok(
        api.call(
            api.admin,
            "GET",
            "/v1/admin/conversations",
            params={"limit": 2, "after": first["last_cursor"]},
        )
    )
    assert [c["id"] for c in rest["data"]] == newest_first[2:]
    archived = ok(
        api.call(api.admin, "GET", "/v1/admin/conversations", params={"status": "archived"})
    )
    assert [c["id"] for c in archived["data"]] == [made[1]["id"]]
    error(api.call(api.alice, "GET", "/v1/admin/conversations"), 403, "forbidden")
    bad = error(
        api.call(api.admin, "GET", "/v1/admin/conversations", params={"after": "nonsense"}),
        422,
        "invalid_request",
    )
    assert bad["field"] == "after"


def test_knowledge_look_ups_across_sources(api: Api) -> None:
    plain = ok(
        api.call(
            api.admin, "POST", "/v1/knowledge/chunks", json={"source": "notes", "content": "hi"}
        ),
        201,
    )
    assert plain["external_id"] == plain["id"].replace("-", "")
    error(
        api.call(api.alice, "POST", "/v1/knowledge/chunks", json={"source": "n", "content": "x"}),
        403,
        "forbidden",
    )
    keyed = ok(
        api.call(
            api.admin,
            "PUT",
            "/v1/knowledge/chunks",
            json={"source": "docs", "external_id": "section_1", "content": "Install."},
        )
    )
    found = ok(
        api.call(api.alice, "GET", "/v1/knowledge/lookup", params={"external_id": "section_1"})
    )
    assert found["id"] == keyed["id"]
    error(
        api.call(api.alice, "GET", "/v1/knowledge/lookup", params={"external_id": "nope"}),
        404,
        "not_found",
    )
    ok(
        api.call(
            api.admin,
            "PUT",
            "/v1/knowledge/chunks",
            json={"source": "faq", "external_id": "section_1", "content": "Also."},
        )
    )
    ambiguous = error(
        api.call(api.alice, "GET", "/v1/knowledge/lookup", params={"external_id": "section_1"}),
        409,
        "conflict",
    )
    assert ambiguous["field"] == "external_id"
    first = ok(api.call(api.alice, "GET", "/v1/knowledge/all-chunks", params={"limit": 2}))
    assert [c["id"] for c in first["data"]] == [plain["id"], keyed["id"]]
    rest = ok(
        api.call(
            api.alice,
            "GET",
            "/v1/knowledge/all-chunks",
            params={"limit": 2, "after": first["last_cursor"]},
        )
    )
    assert [c["source"] for c in rest["data"]] == ["faq"]
    assert not rest["has_more"]


def test_users_hide_and_admins_erase_messages(api: Api) -> None:
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)
    base = f"/v1/conversations/{chat['id']}/messages"
    made = [
        ok(api.call(api.alice, "POST", base, json={"role": role, "content": text}), 201)
        for role, text in [("user", "my phone is 555"), ("assistant", "noted"), ("user", "ok")]
    ]
    hidden = ok(api.call(api.alice, "POST", f"/v1/messages/{made[0]['id']}/hide"))
    assert hidden["hidden_by"] == api.alice.user_id
    error(api.call(api.bob, "POST", f"/v1/messages/{made[0]['id']}/hide"), 404, "not_found")
    listed = ok(api.call(api.alice, "GET", base))
    assert [m["id"] for m in listed["data"]] == [made[1]["id"], made[2]["id"]]
    everything = ok(api.call(api.alice, "GET", base, params={"include_hidden": "true"}))
    assert [m["hidden_at"] is not None for m in everything["data"]] == [True, False, False]
    last = ok(api.call(api.alice, "GET", f"{base}/last"))
    assert [m["id"] for m in last] == [made[1]["id"], made[2]["id"]]
    path = ok(api.call(api.alice, "GET", f"/v1/conversations/{chat['id']}/path"))
    assert [m["seq"] for m in path] == [2, 3]
    full = ok(
        api.call(
            api.alice,
            "GET",
            f"/v1/conversations/{chat['id']}/path",
            params={"include_hidden": "true"},
        )
    )
    assert [m["seq"] for m in full] == [1, 2, 3]

    error(api.call(api.alice, "POST", f"/v1/messages/{made[0]['id']}/erase"), 403, "forbidden")
    erased = ok(api.call(api.admin, "POST", f"/v1/messages/{made[0]['id']}/erase"))
    assert erased["content"] == ""
    assert erased["erased_at"] is not None
    assert ok(api.call(api.alice, "GET", f"/v1/conversations/{chat['id']}"))["message_count"] == 3
    refused = error(
        api.call(api.alice, "POST", f"/v1/messages/{made[0]['id']}/unhide"), 409, "conflict"
    )
    assert refused["field"] == "message_id"
    events = ok(
        api.call(api.admin, "GET", "/v1/audit/events", params={"event_type": "message.erased"})
    )["data"]
    assert events[0]["metadata"]["message_id"] == made[0]["id"]
    shown = ok(api.call(api.alice, "POST", f"/v1/messages/{made[1]['id']}/hide"))
    assert shown["hidden_at"] is not None
    assert (
        ok(api.call(api.alice, "POST", f"/v1/messages/{made[1]['id']}/unhide"))["hidden_at"] is None
    )
