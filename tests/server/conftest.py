"""Fixtures of the HTTP API tests: an app over a fresh database of each backend, with an admin
and two users (alice, bob), each with an API key.

The app runs in-process under FastAPI's TestClient (its lifespan opens the ledger on one event
loop for the client's lifetime). The users and keys are seeded with a synchronous ledger on the
same database before the app starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import URL

from chatledger import Ledger
from chatledger.server import ServerSettings, create_app
from chatledger.server.bootstrap import ensure_admin_key


@dataclass
class Account:
    """A user and the headers that authenticate as them."""

    user_id: str
    key_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@dataclass
class Api:
    """An app under test, its client and its accounts."""

    app: FastAPI
    client: TestClient
    url: URL
    admin: Account
    alice: Account
    bob: Account

    def call(self, who: Account | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**(who.headers if who else {}), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


def seed(url: URL) -> tuple[Account, Account, Account]:
    """An admin (made like ``chatledger serve`` makes it) and two users with a key each."""
    with Ledger(url) as ledger:
        created = ensure_admin_key(ledger)
        assert created is not None
        admin = Account(str(created.key.user_id), str(created.key.id), created.secret)
        accounts = []
        for name in ("alice", "bob"):
            user = ledger.users.create(external_id=name, display_name=name.title())
            key = ledger.api_keys.create(user.id, name=f"{name}'s key")
            accounts.append(Account(str(user.id), str(key.key.id), key.secret))
    return admin, accounts[0], accounts[1]


@pytest.fixture
def make_api(database_url: URL) -> Iterator[Callable[..., Api]]:
    """``make_api(settings=..., routes=...)``: the app over the test's database, started.
    ``routes(app)`` may add routes before it starts (error-handling tests)."""
    started: list[TestClient] = []
    accounts = seed(database_url)

    def make(
        settings: ServerSettings | None = None,
        routes: Callable[[FastAPI], None] | None = None,
        raise_server_exceptions: bool = True,
    ) -> Api:
        app = create_app(database_url, settings=settings or ServerSettings(purge_interval=0))
        if routes is not None:
            routes(app)
        client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        started.append(client)
        return Api(app, client, database_url, *accounts)

    yield make
    for client in reversed(started):
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """The app with default settings, over a fresh database of each backend."""
    return make_api()
