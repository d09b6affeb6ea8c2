"""The tenant matrix: two users with objects of every kind. For every route that names an object
or a user, the other user's object gets exactly the answer a nonexistent one gets (a 404, or
for filters the same empty result), and nothing of theirs changes. Leaks counted: 0."""

from __future__ import annotations

import re
import uuid
from typing import Any

from chatledger import Ledger

from .conftest import Account, Api
from .test_routes import ok

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _objects(api: Api, who: Account) -> dict[str, str]:
    """One object of every kind owned by ``who``."""
    chat = ok(api.call(who, "POST", "/v1/conversations", json={"title": "private"}), 201)["id"]
    message = ok(
        api.call(
            who,
            "POST",
            f"/v1/conversations/{chat}/messages",
            json={"role": "assistant", "content": "secret"},
        ),
        201,
    )["id"]
    ok(api.call(who, "PUT", f"/v1/messages/{message}/feedback/mine", json={"thumb": "up"}))
    ok(
        api.call(
            who, "POST", f"/v1/messages/{message}/citations", json={"url": "https://example.com/"}
        ),
        201,
    )
    response = ok(
        api.call(who, "POST", "/v1/surveys/s/responses", json={"answers": {"a": 1}}), 201
    )["id"]
    ok(
        api.call(
            api.admin,
            "POST",
            "/v1/tokens/credit",
            json={"user_id": who.user_id, "amount": 5, "reason": "r"},
        ),
        201,
    )
    stream = ok(api.call(who, "POST", f"/v1/conversations/{chat}/streams", json={}), 201)["id"]
    flush = {"index": 0, "text": "s"}
    ok(api.call(who, "POST", f"/v1/messages/{stream}/stream/deltas", json=flush))
    return {
        "conversation": chat,
        "message": message,
        "stream": stream,
        "survey_response": response,
        "api_key": who.key_id,
        "user": who.user_id,
    }


def _requests(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request that names an object or a user, as (method, path, options)."""
    c, m, u, s = ids["conversation"], ids["message"], ids["user"], ids["stream"]
    text = {"role": "user", "content": "x"}
    return [
        ("GET", f"/v1/conversations/{c}", {}),
        ("PATCH", f"/v1/conversations/{c}", {"json": {"title": "taken"}}),
        ("DELETE", f"/v1/conversations/{c}", {}),
        ("POST", f"/v1/conversations/{c}/soft-delete", {}),
        ("POST", f"/v1/conversations/{c}/archive", {}),
        ("POST", f"/v1/conversations/{c}/unarchive", {}),
        ("POST", f"/v1/conversations/{c}/close", {}),
        ("POST", f"/v1/conversations/{c}/restore", {}),
        ("GET", f"/v1/conversations/{c}/messages", {}),
        ("GET", f"/v1/conversations/{c}/messages/last", {}),
        ("GET", f"/v1/conversations/{c}/search", {"params": {"q": "secret"}}),
        ("GET", "/v1/search", {"params": {"q": "secret", "conversation_id": c}}),
        ("GET", "/v1/feedback/summary", {"params": {"by": "day", "conversation_id": c}}),
        ("POST", f"/v1/conversations/{c}/messages", {"json": text}),
        (
            "POST",
            f"/v1/conversations/{c}/messages",
            {"json": text, "headers": {"Idempotency-Key": "t"}},
        ),
        ("POST", f"/v1/conversations/{c}/messages", {"json": {**text, "parent_id": m}}),
        ("GET", f"/v1/conversations/{c}/path", {}),
        ("GET", f"/v1/conversations/{c}/path", {"params": {"message_id": m}}),
        ("GET", f"/v1/conversations/{c}/tree", {}),
        ("GET", f"/v1/conversations/{c}/leaves", {}),
        ("POST", f"/v1/conversations/{c}/switch", {"json": {"message_id": m}}),
        ("POST", f"/v1/conversations/{c}/fork", {"json": {"message_id": m}}),
        ("GET", f"/v1/messages/{m}/siblings", {}),
        ("GET", f"/v1/messages/{m}/children", {}),
        ("POST", f"/v1/messages/{m}/edit", {"json": {"content": "x"}}),
        ("POST", f"/v1/messages/{m}/regenerate", {"json": {"content": "x"}}),
        ("GET", f"/v1/messages/{m}", {}),
        ("GET", f"/v1/messages/{m}/detail", {}),
        ("GET", f"/v1/messages/{m}/feedback", {}),
        ("PUT", f"/v1/messages/{m}/feedback/mine", {"json": {"thumb": "down"}}),
        ("GET", f"/v1/messages/{m}/feedback/mine", {}),
        ("DELETE", f"/v1/messages/{m}/feedback/mine", {}),
        ("GET", f"/v1/messages/{m}/citations", {}),
        ("POST", f"/v1/messages/{m}/citations", {"json": {"url": "https://evil.example/"}}),
        ("POST", f"/v1/conversations/{c}/streams", {"json": {}}),
        ("POST", f"/v1/conversations/{c}/streams", {"json": {"parent_id": m}}),
        ("POST", f"/v1/messages/{s}/stream/deltas", {"json": {"index": 1, "text": "x"}}),
        ("POST", f"/v1/messages/{s}/stream/finish", {"json": {"text": "x"}}),
        ("POST", f"/v1/messages/{s}/stream/abort", {"json": {"reason": "x"}}),
        ("GET", f"/v1/messages/{s}/stream", {}),
        ("GET", f"/v1/messages/{s}/stream/text", {}),
        ("GET", f"/v1/messages/{s}/stream/events", {}),
        ("GET", f"/v1/messages/{s}/stream/events", {"headers": {"Last-Event-ID": "done"}}),
        ("GET", f"/v1/survey-responses/{ids['survey_response']}", {}),
        ("GET", f"/v1/api-keys/{ids['api_key']}", {}),
        ("POST", f"/v1/api-keys/{ids['api_key']}/revoke", {}),
        ("GET", "/v1/conversations", {"params": {"user_id": u}}),
        ("POST", "/v1/conversations", {"json": {"user_id": u}}),
        ("POST", f"/v1/conversations/{c}/fork", {"json": {"message_id": m, "user_id": u}}),
        ("GET", "/v1/tokens/balance", {"params": {"user_id": u}}),
        ("GET", "/v1/tokens/ledger", {"params": {"user_id": u}}),
        ("GET", "/v1/usage", {"params": {"user_id": u}}),
        ("GET", "/v1/usage", {"params": {"conversation_id": c}}),
        ("GET", "/v1/usage/totals", {"params": {"by": "model", "user_id": u}}),
        ("GET", "/v1/usage/totals", {"params": {"by": "day", "conversation_id": c}}),
        ("POST", "/v1/surveys/s/responses", {"json": {"answers": {}, "user_id": u}}),
        ("GET", "/v1/survey-responses", {"params": {"user_id": u}}),
        ("POST", "/v1/api-keys", {"json": {"user_id": u}}),
        ("GET", "/v1/api-keys", {"params": {"user_id": u}}),
    ]


def _answer(response: Any) -> tuple[int, Any]:
    """A response with its request id removed and ids replaced by a placeholder."""
    body = response.json() if response.content else None
    if isinstance(body, dict) and "error" in body:
        body = {**body["error"], "request_id": None}
    return response.status_code, _UUID.sub("<id>", repr(body))


def _snapshot(api: Api, ids: dict[str, str]) -> Any:
    with Ledger(api.url) as ledger:
        chat = ledger.conversations.get(ids["conversation"])
        detail = ledger.messages.get_detail(ids["message"])
        key = ledger.api_keys.get(ids["api_key"])
        stream = ledger.streams.get(ids["stream"])
        return (
            (stream.chunk_count, stream.char_count, stream.finished_at),
            ledger.messages.get(ids["stream"]).status,
            chat.title,
            chat.status,
            chat.message_count,
            chat.active_leaf_seq,
            chat.path_length,
            [(f.rater_id, f.thumb) for f in detail.feedback],
            len(detail.citations),
            key.revoked_at,
            ledger.tokens.balance(ids["user"]),
            len(ledger.surveys.list(user_id=ids["user"]).items),
            ledger.conversations.count(ids["user"]),
        )


def test_another_users_objects_do_not_exist_for_a_key(api: Api) -> None:
    owners = {
        "alice": (api.alice, _objects(api, api.alice)),
        "bob": (api.bob, _objects(api, api.bob)),
    }
    missing = {kind: str(uuid.uuid4()) for kind in owners["alice"][1]}
    leaks = []
    checked = 0
    for caller, victim in (("alice", "bob"), ("bob", "alice")):
        who = owners[caller][0]
        theirs = owners[victim][1]
        before = _snapshot(api, theirs)
        for (method, path, options), (_, ghost_path, ghost_options) in zip(
            _requests(theirs), _requests(missing), strict=True
        ):
            real = api.call(who, method, path, **options)
            ghost = api.call(who, method, ghost_path, **ghost_options)
            checked += 1
            if _answer(real) != _answer(ghost) or real.status_code < 400 <= ghost.status_code:
                leaks.append((caller, method, path, _answer(real), _answer(ghost)))
        assert _snapshot(api, theirs) == before, f"{caller} changed {victim}'s data"
    assert checked == 2 * len(_requests(missing))
    assert leaks == [], f"{len(leaks)} leaks: {leaks}"


def test_every_object_route_answers_404_for_another_users_object(api: Api) -> None:
    """Where a route names an object in its path, the answer is a 404, with a body that does
    not depend on whether the object exists."""
    theirs = _objects(api, api.bob)
    _objects(api, api.alice)
    for method, path, options in _requests(theirs):
        if not any(value in path for value in theirs.values()):
            continue
        response = api.call(api.alice, method, path, **options)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["type"] == "not_found"


def test_search_finds_only_the_callers_messages_and_titles(api: Api) -> None:
    mine = _objects(api, api.alice)
    _objects(api, api.bob)
    found = ok(api.call(api.alice, "GET", "/v1/search", params={"q": "secret"}))
    assert [hit["message"]["id"] for hit in found["data"]] == [mine["message"]]
    assert found["data"][0]["highlights"] == [[0, 6]]
    titles = ok(api.call(api.alice, "GET", "/v1/search/conversations", params={"q": "private"}))
    assert [hit["conversation"]["id"] for hit in titles["data"]] == [mine["conversation"]]
    bad = api.call(api.alice, "GET", "/v1/search", params={"q": "-only -excluded"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "query"
