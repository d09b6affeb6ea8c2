"""Streamed replies over HTTP: begin (idempotent with Idempotency-Key), deltas (retried
safely), finish and abort (holds settled), the stream's state, one read from an offset, the
admin sweep, and the Server-Sent Events of a finished reply (the live ones are in
test_sse.py, against a real server). Other users' streams: tests/server/test_tenancy.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import sqlalchemy as sa

from chatledger import Ledger
from chatledger._ops.streams import SWEPT
from chatledger._schema import message_streams

from .conftest import Account, Api
from .test_routes import ok


def _chat(api: Api, who: Account) -> str:
    chat: str = ok(api.call(who, "POST", "/v1/conversations", json={"title": "s"}), 201)["id"]
    return chat


def _begin(api: Api, who: Account, chat: str, **body: Any) -> dict[str, Any]:
    begun: dict[str, Any] = ok(
        api.call(who, "POST", f"/v1/conversations/{chat}/streams", json=body), 201
    )
    return begun


def _delta(api: Api, who: Account, message: str, index: int, text: str) -> Any:
    return api.call(
        who, "POST", f"/v1/messages/{message}/stream/deltas", json={"index": index, "text": text}
    )


def events_of(body: str) -> list[dict[str, str]]:
    """The events of a Server-Sent Events body (comments and ``retry:`` dropped)."""
    found = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "event" in fields:
            found.append(fields)
    return found


def assert_documented(api: Api, events: list[dict[str, str]]) -> None:
    """Each event is one the OpenAPI document describes: its name and id, and its data valid
    against the component the document names for that event."""
    document = api.app.openapi()
    operation = document["paths"]["/v1/messages/{message_id}/stream/events"]["get"]
    schema = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    shapes = {shape["properties"]["event"]["const"]: shape for shape in schema["oneOf"]}
    for event in events:
        jsonschema_rs.validate(schema, event)
        content = shapes[event["event"]]["properties"]["data"]["contentSchema"]
        payload = json.loads(event["data"])
        jsonschema_rs.validate({**content, "components": document["components"]}, payload)


def test_a_reply_streams_over_http(api: Api) -> None:
    alice = api.alice
    chat = _chat(api, alice)
    question = {"role": "user", "content": "hi"}
    ok(api.call(alice, "POST", f"/v1/conversations/{chat}/messages", json=question), 201)
    begun = _begin(api, alice, chat, model="m-1", metadata={"k": 1})
    assert (begun["status"], begun["content"], begun["seq"], begun["parent_seq"]) == (
        "streaming",
        "",
        2,
        1,
    )
    m = begun["id"]
    assert ok(_delta(api, alice, m, 0, "Hello, "))["chunk_count"] == 1
    stream = ok(_delta(api, alice, m, 1, "wor"))
    assert (stream["chunk_count"], stream["char_count"]) == (2, 10)
    # A retried chunk (same text) writes nothing; a gap or another text is a 409 naming index.
    assert ok(_delta(api, alice, m, 1, "wor"))["chunk_count"] == 2
    for index, text in ((3, "x"), (1, "WOR")):
        refused = _delta(api, alice, m, index, text)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["field"] == "index"
    read = ok(api.call(alice, "GET", f"/v1/messages/{m}/stream/text", params={"offset": 7}))
    assert (read["start"], read["end"], read["text"], read["status"]) == (7, 10, "wor", "streaming")
    assert ok(api.call(alice, "GET", f"/v1/messages/{m}/stream"))["finished_at"] is None

    usage: dict[str, Any] = {"text": "ld", "input_tokens": 3, "output_tokens": 4}
    usage |= {"cached_input_tokens": 1, "reasoning_tokens": 2, "cost": "0.0012"}
    done = ok(api.call(alice, "POST", f"/v1/messages/{m}/stream/finish", json=usage))
    assert (done["status"], done["content"], done["model"]) == ("completed", "Hello, world", "m-1")
    assert (done["cached_input_tokens"], done["reasoning_tokens"], done["cost"]) == (1, 2, "0.0012")
    # A retried finish returns the message; a delta or another ending afterwards is a 409.
    assert ok(api.call(alice, "POST", f"/v1/messages/{m}/stream/finish", json=usage)) == done
    late = _delta(api, alice, m, 2, "!")
    assert (late.status_code, late.json()["error"]["field"]) == (409, "status")
    abort = api.call(alice, "POST", f"/v1/messages/{m}/stream/abort", json={"reason": "r"})
    assert abort.status_code == 409, abort.text
    assert ok(api.call(alice, "GET", f"/v1/messages/{m}")) == done

    # A finished reply is sent whole as Server-Sent Events; resuming after `done` is a 204.
    response = api.call(alice, "GET", f"/v1/messages/{m}/stream/events", params={"offset": 7})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    events = events_of(response.text)
    assert [(e["event"], e.get("id")) for e in events] == [("delta", "12"), ("done", "done")]
    assert json.loads(events[0]["data"])["text"] == "world"
    assert json.loads(events[1]["data"]) == done
    assert_documented(api, events)
    resumed = api.call(
        alice, "GET", f"/v1/messages/{m}/stream/events", headers={"Last-Event-ID": "10"}
    )
    assert [json.loads(e["data"]).get("text") for e in events_of(resumed.text)] == ["ld", None]
    finished = api.call(
        alice, "GET", f"/v1/messages/{m}/stream/events", headers={"Last-Event-ID": "done"}
    )
    assert (finished.status_code, finished.content) == (204, b"")


def test_begin_replays_with_an_idempotency_key_and_holds_tokens(api: Api) -> None:
    alice = api.alice
    chat = _chat(api, alice)
    credit = {"user_id": alice.user_id, "amount": 100, "reason": "plan"}
    ok(api.call(api.admin, "POST", "/v1/tokens/credit", json=credit), 201)
    path = f"/v1/conversations/{chat}/streams"
    sent = {"json": {"charge": 60}, "headers": {"Idempotency-Key": "reply-1"}}
    first = api.call(alice, "POST", path, **sent)
    again = api.call(alice, "POST", path, **sent)
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = api.call(alice, "POST", path, json={"charge": 61}, headers=sent["headers"])
    assert other.status_code == 422, other.text
    # 60 of 100 are held: a second reply reserving 60 is refused, writing nothing.
    refused = api.call(alice, "POST", path, json={"charge": 60})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["type"] == "insufficient_balance"
    m = first.json()["id"]
    ok(_delta(api, alice, m, 0, "partial"))
    aborted = ok(
        api.call(
            alice,
            "POST",
            f"/v1/messages/{m}/stream/abort",
            json={"reason": "user pressed stop", "failed": False},
        )
    )
    assert (aborted["status"], aborted["status_reason"], aborted["content"]) == (
        "incomplete",
        "user pressed stop",
        "partial",
    )
    assert ok(api.call(alice, "GET", "/v1/tokens/balance"))["balance"] == 100
    with Ledger(api.url) as ledger:
        assert ledger.tokens.held(uuid.UUID(alice.user_id)) == 0
        assert len(ledger.messages.list(chat).items) == 1


def test_the_sweep_route_is_for_admins_and_closes_dead_writers(api: Api) -> None:
    chat = _chat(api, api.alice)
    m = _begin(api, api.alice, chat, lease_seconds=1)["id"]
    ok(_delta(api, api.alice, m, 0, "half a tho"))
    assert api.call(api.alice, "POST", "/v1/streams/sweep").status_code == 403
    assert ok(api.call(api.admin, "POST", "/v1/streams/sweep")) == []  # the lease runs
    engine = sa.create_engine(api.url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            sa.update(message_streams)
            .where(message_streams.c.message_id == uuid.UUID(m))
            .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    engine.dispose()
    assert ok(api.call(api.admin, "POST", "/v1/streams/sweep")) == [m]
    swept = ok(api.call(api.alice, "GET", f"/v1/messages/{m}"))
    assert (swept["status"], swept["status_reason"], swept["content"]) == (
        "incomplete",
        SWEPT,
        "half a tho",
    )


def test_a_message_that_was_not_streamed(api: Api) -> None:
    """Its stream state is a 409; reading and following it give its whole text at once."""
    chat = _chat(api, api.alice)
    plain = ok(
        api.call(
            api.alice,
            "POST",
            f"/v1/conversations/{chat}/messages",
            json={"role": "assistant", "content": "whole"},
        ),
        201,
    )
    m = plain["id"]
    assert api.call(api.alice, "GET", f"/v1/messages/{m}/stream").status_code == 409
    assert _delta(api, api.alice, m, 0, "x").status_code == 409
    response = api.call(api.alice, "GET", f"/v1/messages/{m}/stream/events")
    assert [e["event"] for e in events_of(response.text)] == ["delta", "done"]
    assert json.loads(events_of(response.text)[1]["data"]) == plain


def test_a_streamed_reply_finishes_with_its_tool_calls(api: Api) -> None:
    """The finish carries the calls the reply asks for (as an append does); an incomplete
    reply carrying calls is a 422 naming ``tool_calls`` and stays streaming."""
    alice = api.alice
    chat = _chat(api, alice)
    ok(
        api.call(
            alice,
            "POST",
            f"/v1/conversations/{chat}/messages",
            json={"role": "user", "content": "weather?"},
        ),
        201,
    )
    m = _begin(api, alice, chat)["id"]
    call = {"id": "call_1", "name": "weather", "arguments": {"city": "Lisbon"}}
    refused = api.call(
        alice,
        "POST",
        f"/v1/messages/{m}/stream/finish",
        json={"status": "incomplete", "reason": "cut", "tool_calls": [call]},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "tool_calls"
    done = ok(
        api.call(
            alice,
            "POST",
            f"/v1/messages/{m}/stream/finish",
            json={"text": "let me look", "tool_calls": [call]},
        )
    )
    assert done["status"] == "completed"
    calls = ok(api.call(alice, "GET", f"/v1/messages/{m}/tool-calls"))
    listed = calls["data"] if isinstance(calls, dict) else calls
    assert [(c["call_id"], c["name"], c["status"]) for c in listed] == [
        ("call_1", "weather", "pending")
    ]
