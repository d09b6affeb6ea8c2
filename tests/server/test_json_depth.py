"""JSON nested past ``Limits.max_json_depth`` is the same 422 over HTTP on every backend."""

from __future__ import annotations

from typing import Any

from chatledger import Ledger, Limits

from .conftest import Api
from .test_routes import error, ok


def test_json_nested_too_deep_is_a_422_naming_the_limit(api: Api) -> None:
    depth = Limits().max_json_depth
    document: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        document = {"a": document}
    chat = ok(api.call(api.alice, "POST", "/v1/conversations", json={}), 201)["id"]
    deep = api.call(
        api.alice,
        "POST",
        f"/v1/conversations/{chat}/messages",
        json={"role": "user", "content": "deep", "metadata": document},
    )
    body = error(deep, 422, "invalid_request")
    assert body["field"].startswith("metadata")
    assert body["limit"] == depth
    with Ledger(api.url) as ledger:
        assert ledger.messages.count(chat) == 0
