"""Tool calls over HTTP (docs/tools.md): created with the assistant message, answered by a
result route or a ``tool`` message, listed, counted and read, in the one error envelope."""

from __future__ import annotations

from typing import Any

from .conftest import Api

CALLS = [
    {"id": "call_1", "name": "weather", "arguments": {"city": "Oslo"}},
    {"id": "call_2", "name": "clock"},
]


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_tool_calls_over_http(api: Api) -> None:
    chat = api.call(api.alice, "POST", "/v1/conversations", json={"title": "t"}).json()
    messages = f"/v1/conversations/{chat['id']}/messages"
    asked = api.call(
        api.alice, "POST", messages, json={"role": "assistant", "content": "", "tool_calls": CALLS}
    )
    assert asked.status_code == 201, asked.text
    calls = api.call(api.alice, "GET", f"/v1/messages/{asked.json()['id']}/tool-calls").json()
    assert [(c["call_id"], c["name"], c["arguments"], c["status"]) for c in calls] == [
        ("call_1", "weather", {"city": "Oslo"}, "pending"),
        ("call_2", "clock", {}, "pending"),
    ]
    pending = f"/v1/conversations/{chat['id']}/tool-calls/pending"
    assert [c["call_id"] for c in api.call(api.alice, "GET", pending).json()] == [
        "call_1",
        "call_2",
    ]

    # Answered through the result route (idempotent with a key) and as a tool message.
    result = f"/v1/conversations/{chat['id']}/tool-calls/call_1/result"
    body = {"content": "12 C", "latency_ms": 40}
    first = api.call(api.alice, "POST", result, json=body, headers={"Idempotency-Key": "r1"})
    again = api.call(api.alice, "POST", result, json=body, headers={"Idempotency-Key": "r1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["role"] == "tool"
    failed = api.call(
        api.alice,
        "POST",
        messages,
        json={"role": "tool", "content": "down", "tool_call_id": "call_2", "tool_status": "error"},
    )
    assert failed.status_code == 201, failed.text
    call = api.call(api.alice, "GET", f"/v1/conversations/{chat['id']}/tool-calls/call_1").json()
    assert (call["status"], call["latency_ms"], call["result_message_id"]) == (
        "success",
        40,
        first.json()["id"],
    )
    assert api.call(api.alice, "GET", pending).json() == []

    # Refusals: the envelope names the field; nothing is written.
    error = _error(api.call(api.alice, "POST", result, json={"content": "again"}), 409)
    assert error["field"] == "tool_call_id"
    unknown = f"/v1/conversations/{chat['id']}/tool-calls/call_9/result"
    assert _error(api.call(api.alice, "POST", unknown, json={"content": "?"}), 404)
    wrong_role = {"role": "user", "content": "x", "tool_calls": CALLS}
    assert _error(api.call(api.alice, "POST", messages, json=wrong_role), 422)["field"] == (
        "tool_calls"
    )
    taken = {"role": "assistant", "content": "", "tool_calls": [CALLS[0]]}
    assert _error(api.call(api.alice, "POST", messages, json=taken), 409)["field"] == (
        "tool_calls[0].id"
    )
    assert (
        api.call(api.alice, "GET", f"/v1/conversations/{chat['id']}").json()["message_count"] == 3
    )

    # Listings and statistics, paged.
    failures = api.call(api.alice, "GET", "/v1/tool-calls", params={"status": "error"}).json()
    assert [c["call_id"] for c in failures["data"]] == ["call_2"]
    page = api.call(api.alice, "GET", "/v1/tool-calls", params={"limit": 1}).json()
    assert page["has_more"]
    rest = api.call(
        api.alice, "GET", "/v1/tool-calls", params={"limit": 1, "after": page["last_cursor"]}
    ).json()
    assert [c["call_id"] for c in page["data"] + rest["data"]] == ["call_1", "call_2"]
    stats = api.call(api.alice, "GET", "/v1/tool-calls/stats").json()["data"]
    assert [(s["name"], s["calls"], s["succeeded"], s["failed"]) for s in stats] == [
        ("clock", 1, 0, 1),
        ("weather", 1, 1, 0),
    ]
    bad = api.call(api.alice, "GET", "/v1/tool-calls", params={"status": "lost"})
    assert _error(bad, 422)["field"] == "status"

    # Another user sees none of it.
    assert api.call(api.bob, "GET", "/v1/tool-calls").json()["data"] == []
    assert api.call(api.bob, "GET", pending).status_code == 404
    assert api.call(api.bob, "POST", result, json={"content": "x"}).status_code == 404
    # An admin key sees everyone's.
    assert len(api.call(api.admin, "GET", "/v1/tool-calls").json()["data"]) == 2
