"""The error envelope for every kind of error, the limits (413, 422, nothing written) and CORS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chatledger import DatabaseError, Ledger, SchemaOutOfDateError, TransientError, migrate
from chatledger.server import ServerSettings, create_app

from .conftest import Api
from .test_routes import error, ok


def _failing_routes(app: FastAPI) -> None:
    @app.get("/v1/test/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals: /etc/passwd")

    @app.get("/v1/test/driver")
    async def driver() -> None:
        raise DatabaseError('relation "users" does not exist (driver said so, password=hunter2)')

    @app.get("/v1/test/transient")
    async def transient() -> None:
        raise TransientError("deadlock detected")

    @app.get("/v1/test/schema")
    async def schema() -> None:
        raise SchemaOutOfDateError("old", current="0001", head="0004")


def test_unexpected_errors_are_a_500_with_the_request_id_and_nothing_else(
    make_api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    api = make_api(routes=_failing_routes, raise_server_exceptions=False)
    for path in ("/v1/test/crash", "/v1/test/driver"):
        response = api.call(api.alice, "GET", path)
        assert response.status_code == 500
        body = response.json()["error"]
        assert body["type"] == "internal_error"
        assert body["message"] == "internal error"
        assert body["request_id"]
        assert "secret" not in response.text
        assert "hunter2" not in response.text
        assert "Traceback" not in response.text
        # The traceback is in the log, under the request id.
        logged = [r for r in caplog.records if body["request_id"] in r.getMessage()]
        assert logged
        assert logged[0].exc_info is not None
    busy = api.call(api.alice, "GET", "/v1/test/transient")
    error(busy, 503, "unavailable")
    assert busy.headers["retry-after"] == "1"
    assert "deadlock" not in busy.text
    error(api.call(api.alice, "GET", "/v1/test/schema"), 503, "unavailable")


def test_framework_errors_use_the_envelope(api: Api) -> None:
    error(api.call(api.alice, "GET", "/v1/nowhere"), 404, "not_found")
    not_allowed = api.call(api.alice, "PUT", "/v1/me")
    error(not_allowed, 405, "method_not_allowed")
    assert "GET" in not_allowed.headers["allow"]
    not_json = api.call(
        api.alice,
        "POST",
        "/v1/conversations",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert error(not_json, 400, "bad_request")["field"] == "body"
    unknown_field = api.call(api.alice, "POST", "/v1/conversations", json={"titel": "typo"})
    assert error(unknown_field, 422, "invalid_request")["field"] == "titel"
    typo = api.call(api.alice, "GET", "/v1/conversations", params={"limt": 5})
    body = error(typo, 422, "invalid_request")
    assert body["field"] == "limt"
    assert "limit" in body["limit"]
    bad_id = api.call(api.alice, "GET", "/v1/conversations/12")
    assert error(bad_id, 422, "invalid_request")["field"] == "conversation_id"


def _count_messages(api: Api) -> int:
    with Ledger(api.url) as ledger:
        return sum(
            ledger.messages.count(chat.id)
            for user in (api.alice.user_id, api.bob.user_id)
            for chat in ledger.conversations.list(user, limit=100)
        )


@pytest.fixture
def small(make_api: Callable[..., Api]) -> Api:
    return make_api(settings=ServerSettings(max_body_bytes=2048, purge_interval=0))


def test_an_oversized_body_is_a_413_naming_the_limit_and_writes_nothing(small: Api) -> None:
    chat = ok(small.call(small.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    path = f"/v1/conversations/{chat}/messages"
    big = {"role": "user", "content": "x" * 4000}
    body = error(small.call(small.alice, "POST", path, json=big), 413, "payload_too_large")
    assert (body["field"], body["limit"]) == ("body", 2048)
    assert "2,048 bytes" in body["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    streamed = small.call(
        small.alice, "POST", path, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert error(streamed, 413, "payload_too_large")["limit"] == 2048
    assert _count_messages(small) == 0
    # Just under the limit is fine.
    ok(small.call(small.alice, "POST", path, json={"role": "user", "content": "z" * 1900}), 201)
    assert _count_messages(small) == 1


def test_content_length_and_page_size_limits_are_422s_naming_the_limit(api: Api) -> None:
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    path = f"/v1/conversations/{chat}/messages"
    long_title = api.call(
        api.alice, "PATCH", f"/v1/conversations/{chat}", json={"title": "t" * 501}
    )
    assert (
        error(long_title, 422, "invalid_request")["field"],
        long_title.json()["error"]["limit"],
    ) == ("title", 500)
    with Ledger(api.url) as ledger:
        assert ledger.conversations.get(chat).title is None
    nul = api.call(api.alice, "POST", path, json={"role": "user", "content": "a\x00b"})
    assert error(nul, 422, "invalid_request")["field"] == "content"
    tokens = api.call(
        api.alice, "POST", path, json={"role": "user", "content": "a", "input_tokens": 2**31}
    )
    assert error(tokens, 422, "invalid_request")["limit"] == 2**31 - 1
    page = api.call(api.alice, "GET", path, params={"limit": 101})
    assert (error(page, 422, "invalid_request")["field"], page.json()["error"]["limit"]) == (
        "limit",
        100,
    )
    assert (
        error(api.call(api.alice, "GET", path, params={"limit": 0}), 422, "invalid_request")[
            "limit"
        ]
        == 1
    )
    assert _count_messages(api) == 0


def test_content_over_the_store_limit_is_a_422_naming_it(make_api: Callable[..., Api]) -> None:
    api = make_api(settings=ServerSettings(max_body_bytes=4 * 1_048_576, purge_interval=0))
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    huge = api.call(
        api.alice,
        "POST",
        f"/v1/conversations/{chat}/messages",
        json={"role": "user", "content": "x" * 1_000_001},
    )
    body = error(huge, 422, "invalid_request")
    assert (body["field"], body["limit"]) == ("content", 1_000_000)
    assert _count_messages(api) == 0


def test_cors_is_off_unless_configured(api: Api, make_api: Callable[..., Api]) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization",
    }
    response = api.call(None, "OPTIONS", "/v1/conversations", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    cors = make_api(
        settings=ServerSettings(cors_origins=("https://app.example.com",), purge_interval=0)
    )
    allowed = cors.call(None, "OPTIONS", "/v1/conversations", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    other = cors.call(
        None,
        "OPTIONS",
        "/v1/conversations",
        headers={**preflight, "Origin": "https://evil.example"},
    )
    assert "access-control-allow-origin" not in other.headers


# One backend is enough: the revision check is the same code on all three.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_readiness_is_a_503_when_the_schema_is_not_at_head(make_api: Callable[..., Api]) -> None:
    api = make_api()
    assert ok(api.call(None, "GET", "/readyz"))["status"] == "ready"
    previous = migrate.history()[1].revision
    migrate.downgrade(api.url, previous)
    body = error(api.call(None, "GET", "/readyz"), 503, "unavailable")
    assert previous in body["message"]
    assert ok(api.call(None, "GET", "/healthz")) == {"status": "ok"}  # alive all the same
    migrate.upgrade(api.url)
    assert ok(api.call(None, "GET", "/readyz"))["status"] == "ready"


def test_create_app_without_arguments_uses_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'configured.db'}"
    monkeypatch.setenv("CHATLEDGER_DATABASE_URL", url)
    with TestClient(create_app()) as client:
        assert client.get("/readyz").json()["status"] == "ready"
    assert migrate.current(url) == migrate.head()
