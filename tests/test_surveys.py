"""Surveys: users' answers to named surveys, and token grants at most once per user and
survey, in the same transaction as the answers."""

from __future__ import annotations

import threading
import traceback
import uuid
from typing import Any

import pytest

from chatledger import Limits, NotFoundError, ValidationError
from chatledger._ops.tokens import AMOUNT_MAX

THREADS = 8


def test_submit_stores_the_answers(store, user):
    surveys = store.surveys
    answers = {"score": 9, "comment": "Ünïcødé 🙂", "tags": ["a", "b"], "nested": {"x": None}}
    response = surveys.submit("  nps  ", answers, user_id=user.id)

    assert (response.survey, response.user_id, response.tokens_granted) == ("nps", user.id, 0)
    assert response.answers == answers
    assert surveys.get(response.id) == response
    assert surveys.get(str(response.id)) == response
    assert surveys.list(user_id=user.id).items == [response]
    assert store.tokens.history(user_id=user.id).items == []


def test_a_grant_is_credited_with_the_first_submission_only(store, user):
    surveys, tokens = store.surveys, store.tokens
    first = surveys.submit("onboarding", {"role": "dev"}, user_id=user.id, grant=100)
    second = surveys.submit("onboarding", {"role": "ops"}, user_id=user.id, grant=100)

    assert first.tokens_granted == 100
    assert second.tokens_granted == 0
    assert surveys.get(second.id).answers == {"role": "ops"}
    assert tokens.balance(user.id) == 100
    (entry,) = tokens.history(user_id=user.id).items
    assert (entry.delta, entry.balance_after) == (100, 100)
    assert (entry.grant_key, entry.survey_response_id) == ("survey:onboarding", first.id)
    assert tokens.verify(user.id)
    assert [r.id for r in surveys.list(user_id=user.id).items] == [second.id, first.id]


def test_grants_are_per_survey_and_per_user(store, user):
    surveys, tokens = store.surveys, store.tokens
    other = store.users.create(username="other")
    surveys.submit("a", {}, user_id=user.id, grant=10)
    surveys.submit("b", {}, user_id=user.id, grant=20)
    surveys.submit("a", {}, user_id=other.id, grant=10)
    surveys.submit("A", {}, user_id=other.id, grant=1)  # names are case-sensitive
    assert tokens.balance(user.id) == 30
    assert tokens.balance(other.id) == 11


def test_a_submission_without_grant_does_not_use_up_the_grant(store, user):
    surveys, tokens = store.surveys, store.tokens
    surveys.submit("nps", {"score": 1}, user_id=user.id)
    later = surveys.submit("nps", {"score": 2}, user_id=user.id, grant=5)
    assert later.tokens_granted == 5
    assert tokens.balance(user.id) == 5


def test_a_grant_goes_on_top_of_an_existing_balance(store, user):
    surveys, tokens = store.surveys, store.tokens
    tokens.credit(7, user_id=user.id, reason="purchase")
    surveys.submit("nps", {"score": 1}, user_id=user.id, grant=AMOUNT_MAX)
    assert tokens.balance(user.id) == 7 + AMOUNT_MAX
    assert tokens.verify(user.id)


def test_the_grant_rolls_back_with_the_answers(store, user):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.surveys.submit("nps", {"score": 3}, user_id=user.id, grant=10)
        raise RuntimeError("abandon")
    assert store.surveys.list(user_id=user.id).items == []
    assert store.tokens.balance(user.id) == 0
    # ...so the grant is still available.
    again = store.surveys.submit("nps", {"score": 3}, user_id=user.id, grant=10)
    assert again.tokens_granted == 10


def test_survey_name_limits(store, user):
    surveys = store.surveys
    assert surveys.submit("s" * 100, {}, user_id=user.id).survey == "s" * 100
    for bad, limit in (("s" * 101, 100), ("   ", None), ("a\x00", None), (7, None)):
        with pytest.raises(ValidationError) as caught:
            surveys.submit(bad, {}, user_id=user.id, grant=1)
        assert (caught.value.field, caught.value.limit) == ("survey", limit)
    assert len(surveys.list(user_id=user.id).items) == 1
    assert store.tokens.balance(user.id) == 0


def test_answers_must_be_a_json_object(store, user):
    surveys = store.surveys
    for bad in (None, [1, 2], "text", {"x": float("nan")}, {"x": object()}, {"x": "a\x00"}):
        with pytest.raises(ValidationError) as caught:
            surveys.submit("nps", bad, user_id=user.id, grant=1)
        assert caught.value.field == "answers"
    assert surveys.list(user_id=user.id).items == []


def test_answers_size_limit(database_url, open_store):
    store = open_store(database_url, limits=Limits(max_metadata_bytes=20))
    user = store.users.create(username="u")
    surveys = store.surveys
    at_limit = {"k": "x" * 12}  # {"k":"xxxxxxxxxxxx"} is 20 bytes
    assert surveys.submit("nps", at_limit, user_id=user.id).answers == at_limit
    with pytest.raises(ValidationError) as caught:
        surveys.submit("nps", {"k": "x" * 13}, user_id=user.id)
    assert (caught.value.field, caught.value.limit) == ("answers", 20)
    assert len(surveys.list(user_id=user.id).items) == 1


def test_grant_limits(store, user):
    surveys = store.surveys
    assert surveys.submit("max", {}, user_id=user.id, grant=AMOUNT_MAX).tokens_granted == AMOUNT_MAX
    assert surveys.submit("zero", {}, user_id=user.id, grant=0).tokens_granted == 0
    for bad, limit in ((AMOUNT_MAX + 1, AMOUNT_MAX), (-1, 0), (True, None), (1.5, None)):
        with pytest.raises(ValidationError) as caught:
            surveys.submit("other", {}, user_id=user.id, grant=bad)
        assert (caught.value.field, caught.value.limit) == ("grant", limit)
    assert len(surveys.list(user_id=user.id).items) == 2
    assert store.tokens.balance(user.id) == AMOUNT_MAX


def test_list_filters_and_orders_newest_first(store, user):
    surveys = store.surveys
    other = store.users.create(username="other")
    made = [
        surveys.submit(name, {"i": i}, user_id=who.id)
        for i, (name, who) in enumerate(
            [("a", user), ("b", user), ("a", other), ("a", user), ("b", other)]
        )
    ]
    assert surveys.list(user_id=user.id, survey="a").items == [made[3], made[0]]
    assert surveys.list(survey="b").items == [made[4], made[1]]
    assert surveys.list().items == made[::-1]
    first = surveys.list(limit=2)
    assert (first.items, first.has_more) == (made[::-1][:2], True)
    rest = surveys.list(limit=2, after=first.last_cursor)
    assert rest.items == made[::-1][2:4]
    assert surveys.list(limit=2, before=rest.first_cursor).items == first.items
    assert surveys.list(order="asc").items == made
    assert surveys.list(survey="missing").items == []
    for bad, limit in ((0, 1000), (1001, 1000)):
        with pytest.raises(ValidationError) as caught:
            surveys.list(limit=bad)
        assert (caught.value.field, caught.value.limit) == ("limit", limit)


def test_unknown_users_and_responses_are_not_found(store, user):
    surveys = store.surveys
    ghost = uuid.uuid4()
    for grant in (0, 5):
        with pytest.raises(NotFoundError) as caught:
            surveys.submit("nps", {}, user_id=ghost, grant=grant)
        assert caught.value.kind == "user"
    with pytest.raises(NotFoundError) as missing:
        surveys.get(uuid.uuid4())
    assert missing.value.kind == "survey_response"
    with pytest.raises(ValidationError) as bad:
        surveys.get("nope")
    assert bad.value.field == "response_id"
    with pytest.raises(ValidationError) as needs_user:
        surveys.submit("nps", {})
    assert needs_user.value.field == "user_id"
    assert surveys.list().items == []


def test_a_user_scope_sees_only_its_own_responses(store):
    alice = store.users.create(username="alice")
    bob = store.users.create(username="bob")
    bobs = store.surveys.submit("nps", {"score": 1}, user_id=bob.id, grant=3)
    scope = store.as_user(alice.id)
    mine = scope.surveys

    own = mine.submit("nps", {"score": 10}, grant=3)
    assert own.user_id == alice.id
    assert own.tokens_granted == 3  # bob's grant does not count against alice
    assert mine.get(own.id) == own
    assert mine.list().items == [own]
    assert mine.list(user_id=alice.id).items == [own]
    assert scope.tokens.balance() == 3

    calls = {
        "get": lambda: mine.get(bobs.id),
        "list": lambda: mine.list(user_id=bob.id),
        "submit": lambda: mine.submit("nps", {}, user_id=bob.id, grant=3),
    }
    for name, call in calls.items():
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.kind in ("user", "survey_response"), name
    assert len(store.surveys.list(user_id=bob.id).items) == 1
    assert store.tokens.balance(bob.id) == 3


def test_racing_submissions_grant_exactly_once(ledger):
    user = ledger.users.create(username="racer")  # no balance row yet
    barrier = threading.Barrier(THREADS, timeout=30)
    results: list[Any] = [None] * THREADS
    errors: list[str] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            results[index] = ledger.surveys.submit(
                "launch", {"thread": index}, user_id=user.id, grant=40
            )
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [], "\n".join(errors)

    assert sorted(r.tokens_granted for r in results) == [0] * (THREADS - 1) + [40]
    assert ledger.tokens.balance(user.id) == 40
    assert len(ledger.tokens.history(user_id=user.id).items) == 1
    assert ledger.tokens.verify(user.id)
    stored = ledger.surveys.list(user_id=user.id).items
    assert sorted(r.answers["thread"] for r in stored) == list(range(THREADS))
