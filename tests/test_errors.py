"""The exception tree, and that nothing from the driver or a password leaks out."""

from __future__ import annotations

import logging
import pickle

import pytest

import chatledger
from chatledger import (
    ChatledgerError,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    Ledger,
    MissingDependencyError,
    NotFoundError,
    RetryPolicy,
    SchemaOutOfDateError,
    TransientError,
    ValidationError,
    errors,
)


def test_the_tree_is_shallow_and_only_transient_errors_are_retriable():
    leaves: list[type[ChatledgerError]] = [
        NotFoundError,
        ConflictError,
        ValidationError,
        ConfigurationError,
        SchemaOutOfDateError,
        TransientError,
        MissingDependencyError,
        DatabaseError,
    ]
    for leaf in leaves:
        assert leaf.__mro__[1] is ChatledgerError or ChatledgerError in leaf.__bases__
        assert leaf.retriable is (leaf is TransientError)
    assert issubclass(ValidationError, ValueError)
    assert issubclass(MissingDependencyError, ImportError)


def test_errors_are_documented_in_the_module_docstring():
    for name in chatledger.errors.__all__:
        if name.endswith("Error") and name != "ChatledgerError":
            assert name in chatledger.errors.__doc__


def test_driver_errors_are_translated_and_chained(store, user):
    store.users.create(email="dup@example.com")
    with pytest.raises(ConflictError) as caught:
        store.users.create(email="dup@example.com")
    assert caught.value.field == "email"
    assert caught.value.__cause__ is not None
    assert "dup@example.com" not in str(caught.value)


def test_a_password_never_appears_in_reprs_errors_or_logs(caplog):
    secret = "s3cr3t-P4ssw0rd"
    url = f"postgresql+psycopg://someone:{secret}@127.0.0.1:1/nowhere"
    ledger = Ledger(url, retry=RetryPolicy(attempts=2, base_delay=0.001))
    with caplog.at_level(logging.DEBUG), pytest.raises(TransientError) as caught:
        ledger.open()
    ledger.close()
    assert secret not in repr(ledger)
    assert secret not in repr(ledger.config)
    assert secret not in str(caught.value)
    chain: BaseException | None = caught.value
    messages = []
    while chain is not None:
        messages.append(str(chain))
        chain = chain.__cause__
    assert all(secret not in message for message in messages)
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_missing_driver_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pymysql" else real(name, *a),
    )
    with pytest.raises(MissingDependencyError) as caught:
        Ledger("mysql://root@127.0.0.1/test")
    assert "chatledger[mariadb]" in str(caught.value)


def test_unsupported_database_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        Ledger("oracle://scott:tiger@localhost/orcl")


def test_a_closed_store_refuses_work(database_url):
    ledger = Ledger(database_url)
    ledger.open()
    ledger.close()
    with pytest.raises(ConfigurationError):
        ledger.users.count()


@pytest.mark.parametrize(
    "error",
    [
        errors.NotFoundError("conversation", "c1"),
        errors.ConflictError("taken", field="email", code="23505"),
        errors.InsufficientBalanceError(balance=3, requested=5),
        errors.AuthenticationError(),
        errors.ValidationError("title", "too long", limit=500),
        errors.SchemaOutOfDateError("old", current="0002", head="0004"),
        errors.MissingDependencyError("psycopg", "postgres"),
        errors.TransientError("busy", code="5"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling(error):
    """Errors cross process boundaries (multiprocessing pools re-raise them in the parent)."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)
