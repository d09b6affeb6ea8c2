"""Same input, same outcome on every backend (issue 12, section 2)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy.engine import URL

from chatledger import ConfigurationError, Ledger, Limits, ValidationError


def _nested(depth: int) -> dict[str, Any]:
    document: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        document = {"a": document}
    return document


def test_racing_first_logins_get_the_same_user(database_url: URL) -> None:
    barrier = threading.Barrier(4)
    found: list[Any] = []
    errors: list[BaseException] = []

    def login() -> None:
        try:
            with Ledger(database_url) as ledger:
                barrier.wait()
                found.append(ledger.users.get_or_create("ext", email="x@y"))
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=login) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({user.id for user in found}) == 1
    assert found[0].email == "x@y"


def test_json_nesting_has_one_limit_on_every_backend(store: Any) -> None:
    user = store.users.create()
    chat = store.conversations.create(user.id)
    depth = Limits().max_json_depth
    stored = store.messages.append(chat.id, "user", "deep", metadata=_nested(depth))
    assert stored.metadata == _nested(depth)
    with pytest.raises(ValidationError) as caught:
        store.messages.append(chat.id, "user", "deeper", metadata=_nested(depth + 1))
    assert caught.value.field == "metadata"
    assert caught.value.limit == depth
    assert store.messages.count(chat.id) == 1
    with pytest.raises(ValidationError):  # lists count as levels too
        store.users.create(metadata={"a": [[[[1]]]]} | _nested(depth + 1))


def test_internal_email_domains_are_accepted(store: Any) -> None:
    alice = store.users.create(email="Alice@Corp.Local")
    assert alice.email == "alice@corp.local"
    assert store.users.get_by_email("alice@corp.local").id == alice.id
    with pytest.raises(ValidationError):
        store.users.create(email="not an address@corp.local")


def test_strict_email_domains_refuse_special_use(database_url: URL) -> None:
    with Ledger(database_url, limits=Limits(strict_email_domains=True)) as ledger:
        with pytest.raises(ValidationError) as caught:
            ledger.users.create(email="alice@corp.local")
        assert caught.value.field == "email"


def test_an_sqlite_path_that_cannot_be_created_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Ledger("sqlite:////proc/x/app.db").open()
    assert "/proc/x" in str(caught.value)
