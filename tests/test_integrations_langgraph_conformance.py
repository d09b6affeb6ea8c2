"""LangGraph's own checkpointer conformance suite (``langgraph-checkpoint-conformance``) run
against ChatledgerSaver on every backend, through the sync code paths (a ``Ledger``: the
suite's async calls run them on worker threads) and the async ones (an ``AsyncLedger``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatledger import AsyncLedger, Ledger
from tests.conftest import IN_CI

try:
    from langgraph.checkpoint.conformance import checkpointer_test, validate
except ImportError:  # pragma: no cover - the dev extra installs it
    if IN_CI:
        raise
    pytest.skip("langgraph-checkpoint-conformance is not installed", allow_module_level=True)

from chatledger.integrations.langgraph import ChatledgerSaver

#: The suite's tests that put several parentless checkpoints on one thread (or reuse the
#: thread names "thread-0".. across capability suites). A linear saver refuses the second
#: root of a thread: that is the conflict check, not a storage defect. Everything else passes.
LINEAR_REFUSES = {
    "list": {
        "test_list_metadata_filter_multiple_keys",
        "test_list_metadata_custom_keys",
    },
}


def run_suite(surface: str, url: Any, *, linear: bool) -> Any:
    async def main() -> Any:
        if surface == "sync":
            ledger: Any = Ledger(url)
            ledger.open()
        else:
            ledger = AsyncLedger(url)
            await ledger.open()
        user = (
            ledger.users.create(external_id="conformance")
            if surface == "sync"
            else await ledger.users.create(external_id="conformance")
        )

        @checkpointer_test(name=f"ChatledgerSaver-{surface}-{linear}")
        async def saver() -> AsyncIterator[ChatledgerSaver]:
            yield ChatledgerSaver(ledger, user_id=user.id, linear=linear)

        try:
            return await validate(saver)
        finally:
            if surface == "sync":
                ledger.close()
            else:
                await ledger.close()

    return asyncio.run(main())


def failures(report: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for capability, result in report.results.items():
        for failure in result.failures:
            name, _, why = failure.partition(":")
            found.setdefault(capability, set()).add(name)
            print(capability, name, why[:500])  # shown when the assertion fails
    return found


@pytest.mark.parametrize("surface", ["sync", "async"])
def test_passes_the_conformance_suite(database_url, surface):
    report = run_suite(surface, database_url, linear=False)
    assert failures(report) == {}
    assert report.passed_all_base()
    # The base capabilities ran (the extended ones are not implemented: skipped).
    for capability in ("put", "put_writes", "get_tuple", "list", "delete_thread"):
        assert report.results[capability].tests_passed > 0, capability


def test_linear_saver_refuses_only_second_roots(database_url):
    report = run_suite("async", database_url, linear=True)
    found = failures(report)
    assert found == LINEAR_REFUSES, found
