"""One contract for the library and the HTTP API: the same bad input is refused with the same
``field`` and ``limit`` by ``Ledger`` (a :class:`ValidationError`) and by the API (the 422
envelope); authentication comes before any input error; malformed requests are 400s in the
envelope, also those the HTTP server itself refuses (``chatledger serve``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chatledger import Ledger, ValidationError
from chatledger.server.protocol import envelope_400

from .conftest import Api

#: (name, library call, HTTP request) for one bad input each. The library call gets the ledger
#: and the ids of a user, a conversation and a message; the request is (method, path, json).
Ids = dict[str, Any]
CASES: list[tuple[str, Callable[[Ledger, Ids], Any], Callable[[Ids], tuple[str, str, Any]]]] = [
    (
        "nul-in-metadata",
        lambda lg, i: lg.conversations.create(i["user"], metadata={"k": "a\x00b"}),
        lambda i: ("POST", "/v1/conversations", {"metadata": {"k": "a\x00b"}}),
    ),
    (
        "nul-in-metadata-key",
        lambda lg, i: lg.conversations.create(i["user"], metadata={"k\x00": 1}),
        lambda i: ("POST", "/v1/conversations", {"metadata": {"k\x00": 1}}),
    ),
    (
        "title-too-long",
        lambda lg, i: lg.conversations.create(i["user"], title="t" * 501),
        lambda i: ("POST", "/v1/conversations", {"title": "t" * 501}),
    ),
    (
        "negative-tokens",
        lambda lg, i: lg.messages.append(i["chat"], "user", "x", input_tokens=-1),
        lambda i: (
            "POST",
            f"/v1/conversations/{i['chat']}/messages",
            {"role": "user", "content": "x", "input_tokens": -1},
        ),
    ),
    (
        "too-many-tokens",
        lambda lg, i: lg.messages.append(i["chat"], "user", "x", output_tokens=2**31),
        lambda i: (
            "POST",
            f"/v1/conversations/{i['chat']}/messages",
            {"role": "user", "content": "x", "output_tokens": 2**31},
        ),
    ),
    (
        "cost-digits",
        lambda lg, i: lg.messages.append(i["chat"], "user", "x", cost="0.0000000001"),
        lambda i: (
            "POST",
            f"/v1/conversations/{i['chat']}/messages",
            {"role": "user", "content": "x", "cost": "0.0000000001"},
        ),
    ),
    (
        "unknown-role",
        lambda lg, i: lg.messages.append(i["chat"], "robot", "x"),  # type: ignore[arg-type]
        lambda i: (
            "POST",
            f"/v1/conversations/{i['chat']}/messages",
            {"role": "robot", "content": "x"},
        ),
    ),
    (
        "tool-calls-on-a-user-message",
        lambda lg, i: lg.messages.append(
            i["chat"], "user", "x", tool_calls=[{"id": "c", "name": "n"}]
        ),
        lambda i: (
            "POST",
            f"/v1/conversations/{i['chat']}/messages",
            {"role": "user", "content": "x", "tool_calls": [{"id": "c", "name": "n"}]},
        ),
    ),
    (
        "tool-call-id-too-long",
        lambda lg, i: lg.messages.append(
            i["chat"], "assistant", "", tool_calls=[{"id": "c" * 201, "name": "n"}]
        ),
        lambda i: (
            "POST",
            f"/v1/conversations/{i['chat']}/messages",
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c" * 201, "name": "n"}]},
        ),
    ),
    (
        "too-many-tool-calls",
        lambda lg, i: lg.messages.append(
            i["chat"],
            "assistant",
            "",
            tool_calls=[{"id": f"c{n}", "name": "n"} for n in range(129)],
        ),
        lambda i: (
            "POST",
            f"/v1/conversations/{i['chat']}/messages",
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": f"c{n}", "name": "n"} for n in range(129)],
            },
        ),
    ),
    (
        "tool-status",
        lambda lg, i: lg.messages.append(
            i["chat"], "tool", "x", tool_call_id="c", tool_status="maybe"
        ),
        lambda i: (
            "POST",
            f"/v1/conversations/{i['chat']}/messages",
            {"role": "tool", "content": "x", "tool_call_id": "c", "tool_status": "maybe"},
        ),
    ),
    (
        "score-outside-scale",
        lambda lg, i: lg.feedback.rate(i["message"], rater_id=i["user"], score=7, scale=(1, 5)),
        lambda i: (
            "PUT",
            f"/v1/messages/{i['message']}/feedback/mine",
            {"score": 7, "scale": [1, 5]},
        ),
    ),
    (
        "thumb",
        lambda lg, i: lg.feedback.rate(i["message"], rater_id=i["user"], thumb="sideways"),  # type: ignore[arg-type]
        lambda i: ("PUT", f"/v1/messages/{i['message']}/feedback/mine", {"thumb": "sideways"}),
    ),
    (
        "delta-too-long",
        lambda lg, i: lg.streams.delta(i["stream"], 0, "x" * 100_001),
        lambda i: (
            "POST",
            f"/v1/messages/{i['stream']}/stream/deltas",
            {"index": 0, "text": "x" * 100_001},
        ),
    ),
    (
        "delta-with-nul",
        lambda lg, i: lg.streams.delta(i["stream"], 0, "a\x00"),
        lambda i: (
            "POST",
            f"/v1/messages/{i['stream']}/stream/deltas",
            {"index": 0, "text": "a\x00"},
        ),
    ),
    (
        "lease-too-long",
        lambda lg, i: lg.streams.begin(i["chat"], lease_seconds=86_401),
        lambda i: ("POST", f"/v1/conversations/{i['chat']}/streams", {"lease_seconds": 86_401}),
    ),
    (
        "unknown-ending",
        lambda lg, i: lg.streams.finish(i["stream"], status="done"),
        lambda i: ("POST", f"/v1/messages/{i['stream']}/stream/finish", {"status": "done"}),
    ),
    (
        "reason-for-a-completed-reply",
        lambda lg, i: lg.streams.finish(i["stream"], reason="why"),
        lambda i: ("POST", f"/v1/messages/{i['stream']}/stream/finish", {"reason": "why"}),
    ),
    (
        "status-reason-too-long",
        lambda lg, i: lg.streams.abort(i["stream"], "r" * 201),
        lambda i: ("POST", f"/v1/messages/{i['stream']}/stream/abort", {"reason": "r" * 201}),
    ),
    (
        "chunk-in-bulk",
        lambda lg, i: lg.knowledge.bulk_upsert(
            [
                {"source": "s", "external_id": "a", "content": "ok"},
                {"source": "s", "external_id": "b", "content": "no\x00"},
            ]
        ),
        lambda i: (
            "POST",
            "/v1/knowledge/bulk",
            {
                "chunks": [
                    {"source": "s", "external_id": "a", "content": "ok"},
                    {"source": "s", "external_id": "b", "content": "no\x00"},
                ]
            },
        ),
    ),
]


#: An id no object has (fixed: xdist workers must collect the same test ids).
_NOWHERE = "0192f0c4-0000-7000-8000-000000000000"


def _shape(limit: Any) -> Any:
    return sorted(limit) if isinstance(limit, tuple | list) else limit


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_library_and_http_refuse_alike(api: Api, case: Any) -> None:
    _, library, http = case
    with Ledger(api.url) as ledger:
        chat = ledger.conversations.create(api.alice.user_id, title="contract")
        message = ledger.messages.append(chat.id, "assistant", "hello")
        stream = ledger.streams.begin(chat.id)
        ids = {"user": api.alice.user_id, "chat": chat.id, "message": message.id}
        ids["stream"] = stream.id
        with pytest.raises(ValidationError) as refused:
            library(ledger, ids)
    method, path, body = http(ids)
    who = api.admin if "knowledge" in path else api.alice
    response = api.call(who, method, path, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert (error["field"], error["limit"]) == (
        refused.value.field,
        _shape(refused.value.limit),
    ), error["message"]


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        ("GET", "/v1/conversations?limit=abc", {}),
        ("GET", "/v1/conversations?bogus=1", {}),
        ("GET", "/v1/conversations?after=x&before=y", {}),
        ("POST", "/v1/conversations", {"content": b"{not json"}),
        ("POST", "/v1/conversations", {"json": {"title": "t" * 501}}),
        ("GET", "/v1/users?limit=1000", {}),
        ("POST", f"/v1/conversations/{_NOWHERE}/streams", {"json": {"lease_seconds": 0}}),
        ("POST", f"/v1/messages/{_NOWHERE}/stream/deltas", {"json": {"index": -1}}),
        ("POST", f"/v1/messages/{_NOWHERE}/stream/finish", {"json": {"status": "x"}}),
        ("POST", f"/v1/messages/{_NOWHERE}/stream/abort", {"json": {}}),
        ("GET", f"/v1/messages/{_NOWHERE}/stream", {}),
        ("GET", f"/v1/messages/{_NOWHERE}/stream/text?offset=-1", {}),
        ("GET", f"/v1/messages/{_NOWHERE}/stream/events?offset=x", {}),
        ("POST", "/v1/streams/sweep", {}),
    ],
)
def test_authentication_comes_before_input_errors(
    api: Api, method: str, path: str, options: dict[str, Any]
) -> None:
    headers = {"Content-Type": "application/json"}
    for who in (None, "Bearer clk_nope"):
        sent = headers if who is None else {**headers, "Authorization": who}
        response = api.client.request(method, path, headers=sent, **options)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_envelope_of_requests_the_http_server_refuses() -> None:
    status, headers, body = envelope_400("Invalid HTTP request received.")
    assert status.startswith(b"HTTP/1.1 400")
    assert (b"content-type", b"application/json") in headers
    error = json.loads(body)["error"]
    assert error["type"] == "bad_request"
    assert error["field"] is None
    assert error["limit"] is None
    assert error["request_id"]


def test_the_document_states_bounds_in_json_schema_words(api: Api) -> None:
    """Every bound is ``minimum``/``maximum``/... in the document: a pydantic keyword
    (``ge``, ``le``) left in it would be ignored by clients and generators alike."""
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            found.extend(f"{where}.{key}" for key in ("ge", "le", "gt", "lt") if key in node)
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")

    walk(api.app.openapi(), "openapi")
    assert found == []


def test_no_parameter_is_documented_as_null(api: Api) -> None:
    """A query or header parameter is a string or absent: ``null`` in its schema would have a
    client send the text ``null`` (``Last-Event-ID: null`` breaks the header's pattern)."""
    nullable = [
        f"{method.upper()} {path} {parameter['name']}"
        for path, operations in api.app.openapi()["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if "null" in json.dumps(parameter["schema"])
    ]
    assert nullable == []
