"""schemathesis against the app's own OpenAPI document, every check on, on SQLite.

Two runs, bounded for CI: every operation with generated valid and invalid requests (checks:
status codes, content types, headers and bodies conform to the document, valid data is
accepted, invalid data rejected, auth enforced: ``ignored_auth``), and a stateful run that
chains operations through the links schemathesis infers (create, then read, update and delete
what was created: ``use_after_free``, ``ensure_resource_availability``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.config import SchemathesisConfig
from schemathesis.config._auth import AuthConfig
from sqlalchemy.engine import make_url

from chatledger import Ledger, migrate
from chatledger.server import ServerSettings, create_app

from .conftest import seed

#: Generated examples per operation (each phase), and the stateful run's size.
EXAMPLES = 5
STATEFUL_EXAMPLES = 100
STEPS = 10
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


#: The app under test, over an SQLite file seeded (by ``accounts``) before the first request.
#: Creating it does no I/O; the document is the app's own, read without a request.
_DIRECTORY = Path(tempfile.mkdtemp(prefix="chatledger-schemathesis-"))
_URL = make_url(f"sqlite:///{_DIRECTORY / 'schemathesis.db'}")
app = create_app(_URL, settings=ServerSettings(purge_interval=0))
#: Every check on, with their default settings but one: valid-by-schema data may also get a
#: 422 when it breaks a rule JSON Schema cannot state (and the document says in words): an
#: opaque cursor this API did not issue, ``after`` and ``before`` together, a score outside
#: its own scale, one end of a character span, a rating with neither thumb nor score, a
#: JSON key holding NUL (schemathesis does not honour ``propertyNames``). Each such 422
#: names the field; everything the schema can state, it states.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"],
            },
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
        }
    }
)
schema = schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)
schema.app = app


@pytest.fixture(scope="module")
def accounts() -> Iterator[dict[str, str]]:
    """The admin's headers, once the database is migrated and seeded."""
    migrate.upgrade(_URL)
    admin, _, _ = seed(_URL)
    # Through the security scheme (not forced headers), so that schemathesis can leave the key
    # out of the requests that test auth.
    schema.config.auth = AuthConfig(openapi={"ApiKey": {"bearer": admin.secret}})
    yield admin.headers
    shutil.rmtree(_DIRECTORY, ignore_errors=True)


@schema.parametrize()
@_SETTINGS
def test_every_operation_conforms(case: Any, accounts: dict[str, str]) -> None:
    case.call_and_validate()


def test_stateful_workflows_conform(accounts: dict[str, str]) -> None:
    assert accounts
    run_state_machine_as_test(
        schema.as_state_machine(),
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    # The runs were authenticated (a run whose every request got a 401 would pass too).
    with Ledger(_URL) as ledger:
        assert ledger.users.count() > 3, "no user was created: were the requests authenticated?"
        events = ledger.audit.list(event_type="auth.failed", limit=1)
        assert events.items, "schemathesis's auth checks sent no bad key"
