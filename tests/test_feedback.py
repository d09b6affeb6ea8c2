"""Feedback: ratings of messages (replace, limits, scoping, races, aggregates), a message read
back with its feedback, and product-feedback forms."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from chatledger import NotFoundError, ValidationError
from chatledger._schema import message_feedback


@pytest.fixture
def feedback(store):
    return store.feedback


@pytest.fixture
def forms(store):
    return store.product_feedback


@pytest.fixture
def answer(store, chat):
    store.messages.append(chat.id, "user", "question")
    return store.messages.append(chat.id, "assistant", "answer", model="gpt-x")


def _rows(url) -> int:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(message_feedback)).scalar()
    engine.dispose()
    return int(count or 0)


# --- rating -----------------------------------------------------------------------------------


def test_rate_stores_a_rating_that_reads_back(feedback, user, chat, answer):
    rated = feedback.rate(
        answer.id,
        rater_id=user.id,
        thumb="up",
        score=4,
        categories=["helpful", "accurate"],
        comment="nice",
    )

    assert (rated.message_id, rated.conversation_id, rated.rater_id) == (
        answer.id,
        chat.id,
        user.id,
    )
    assert (rated.thumb, rated.score, rated.scale_min, rated.scale_max) == ("up", 4.0, 1.0, 5.0)
    assert rated.categories == ["helpful", "accurate"]
    assert rated.created_at == rated.updated_at
    assert feedback.get(answer.id, user.id) == rated
    assert feedback.get(str(answer.id), str(user.id)) == rated
    assert feedback.for_message(answer.id) == [rated]


def test_a_thumb_alone_stores_no_scale(feedback, user, answer):
    rated = feedback.rate(answer.id, rater_id=user.id, thumb="down", scale=(0, 10))
    assert (rated.score, rated.scale_min, rated.scale_max) == (None, None, None)
    assert rated.categories is None
    assert rated.comment is None
    assert feedback.get(answer.id, user.id) == rated


def test_rating_again_replaces_the_rating_in_place(feedback, user, answer):
    first = feedback.rate(answer.id, rater_id=user.id, thumb="up", comment="good")
    again = feedback.rate(answer.id, rater_id=user.id, score=2.5, scale=(0, 10))

    assert again.id == first.id
    assert again.created_at == first.created_at
    assert again.updated_at > first.updated_at
    # A replacement, not a merge: the thumb and comment are gone.
    assert (again.thumb, again.score, again.comment) == (None, 2.5, None)
    assert (again.scale_min, again.scale_max) == (0.0, 10.0)
    assert feedback.for_message(answer.id) == [again]


def test_several_raters_each_have_one_current_rating(store, feedback, user, answer):
    other = store.users.create(username="second-rater")
    a = feedback.rate(answer.id, rater_id=user.id, thumb="up")
    b = feedback.rate(answer.id, rater_id=other.id, thumb="down")
    feedback.rate(answer.id, rater_id=user.id, thumb="down")

    listed = feedback.for_message(answer.id)
    assert [f.id for f in listed] == [a.id, b.id]
    assert [f.thumb for f in listed] == ["down", "down"]


def test_remove_deletes_only_that_raters_rating(store, feedback, user, answer):
    other = store.users.create(username="second-rater")
    feedback.rate(answer.id, rater_id=user.id, thumb="up")
    kept = feedback.rate(answer.id, rater_id=other.id, thumb="down")

    assert feedback.remove(answer.id, user.id) is None
    assert feedback.for_message(answer.id) == [kept]
    with pytest.raises(NotFoundError):
        feedback.get(answer.id, user.id)
    with pytest.raises(NotFoundError):
        feedback.remove(answer.id, user.id)


def test_missing_message_or_rater_is_not_found(feedback, user, answer):
    with pytest.raises(NotFoundError) as caught:
        feedback.rate(uuid.uuid4(), rater_id=user.id, thumb="up")
    assert caught.value.kind == "message"
    with pytest.raises(NotFoundError) as caught:
        feedback.rate(answer.id, rater_id=uuid.uuid4(), thumb="up")
    assert caught.value.kind == "user"
    with pytest.raises(NotFoundError):
        feedback.for_message(uuid.uuid4())
    with pytest.raises(NotFoundError):
        feedback.get(uuid.uuid4(), user.id)
    assert feedback.for_message(answer.id) == []


def test_rater_is_required_outside_a_user_scope(feedback, answer):
    with pytest.raises(ValidationError) as caught:
        feedback.rate(answer.id, thumb="up")
    assert caught.value.field == "rater_id"


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "scale"),
    [(1, (1, 5)), (5, (1, 5)), (0, (0, 10)), (10, (0, 10)), (-2.5, (-5, 5)), (0.75, (0, 1))],
)
def test_scores_at_the_ends_of_the_scale_are_accepted(feedback, user, answer, score, scale):
    rated = feedback.rate(answer.id, rater_id=user.id, score=score, scale=scale)
    assert rated.score == score
    assert feedback.get(answer.id, user.id).score == score


@pytest.mark.parametrize(
    ("score", "scale"),
    [(0.999, (1, 5)), (5.001, (1, 5)), (6, (1, 5)), (-0.5, (0, 10)), (11, (0, 10))],
)
def test_a_score_outside_its_scale_is_rejected_naming_the_scale(
    feedback, user, answer, score, scale
):
    with pytest.raises(ValidationError) as caught:
        feedback.rate(answer.id, rater_id=user.id, score=score, scale=scale)
    assert caught.value.field == "score"
    assert caught.value.limit == (scale[0] if score < scale[0] else scale[1])  # the bound crossed
    assert feedback.for_message(answer.id) == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"score": math.nan}, "score"),
        ({"score": math.inf}, "score"),
        ({"score": True}, "score"),
        ({"score": "4"}, "score"),
        ({"score": 3, "scale": (5, 1)}, "scale"),
        ({"score": 3, "scale": (3, 3)}, "scale"),
        ({"score": 3, "scale": (1, math.inf)}, "scale"),
        ({"score": 3, "scale": (1, 5, 9)}, "scale"),
        ({"thumb": "sideways"}, "thumb"),
        ({}, "thumb"),
        ({"thumb": None, "score": None, "comment": "no rating"}, "thumb"),
        ({"thumb": "up", "categories": "helpful"}, "categories"),
        ({"thumb": "up", "categories": ["a", "a"]}, "categories"),
        ({"thumb": "up", "categories": ["a", " "]}, "categories"),
        ({"thumb": "up", "categories": ["a", 3]}, "categories"),
        ({"thumb": "up", "categories": ["nul\x00"]}, "categories"),
        ({"thumb": "up", "comment": "nul\x00"}, "comment"),
    ],
)
def test_bad_ratings_are_rejected_and_write_nothing(feedback, user, answer, arguments, field):
    with pytest.raises(ValidationError) as caught:
        feedback.rate(answer.id, rater_id=user.id, **arguments)
    assert caught.value.field == field
    assert feedback.for_message(answer.id) == []


def test_category_limits(feedback, user, answer):
    twenty = [f"c{i}" for i in range(20)]
    assert feedback.rate(answer.id, rater_id=user.id, thumb="up", categories=twenty).categories == (
        twenty
    )
    with pytest.raises(ValidationError) as caught:
        feedback.rate(answer.id, rater_id=user.id, thumb="up", categories=[*twenty, "c20"])
    assert (caught.value.field, caught.value.limit) == ("categories", 20)

    longest = "x" * 100
    rated = feedback.rate(answer.id, rater_id=user.id, thumb="up", categories=[longest])
    assert rated.categories == [longest]
    with pytest.raises(ValidationError) as caught:
        feedback.rate(answer.id, rater_id=user.id, thumb="up", categories=["x" * 101])
    assert (caught.value.field, caught.value.limit) == ("categories", 100)
    assert feedback.get(answer.id, user.id).categories == [longest]


def test_comment_limit(feedback, user, answer):
    comment = "é" * 10_000
    assert feedback.rate(answer.id, rater_id=user.id, thumb="up", comment=comment).comment == (
        comment
    )
    with pytest.raises(ValidationError) as caught:
        feedback.rate(answer.id, rater_id=user.id, thumb="down", comment="é" * 10_001)
    assert (caught.value.field, caught.value.limit) == ("comment", 10_000)
    stored = feedback.get(answer.id, user.id)
    assert (stored.thumb, stored.comment) == ("up", comment)


# --- scoping ----------------------------------------------------------------------------------


@pytest.fixture
def alice_and_bob(store):
    alice = store.users.create(username="alice")
    bob = store.users.create(username="bob")
    chat = store.conversations.create(alice.id, title="alice's")
    message = store.messages.append(chat.id, "assistant", "secret answer")
    return alice, bob, chat, message


def test_in_a_user_scope_the_rater_is_the_acting_user(store, alice_and_bob):
    alice, bob, _, message = alice_and_bob
    mine = store.as_user(alice.id).feedback
    rated = mine.rate(message.id, thumb="up")
    assert rated.rater_id == alice.id
    assert mine.get(message.id) == rated
    assert mine.for_message(message.id) == [rated]
    with pytest.raises(NotFoundError) as caught:
        mine.rate(message.id, rater_id=bob.id, thumb="down")
    assert caught.value.kind == "user"
    with pytest.raises(NotFoundError):
        mine.remove(message.id, bob.id)
    mine.remove(message.id)
    assert mine.for_message(message.id) == []


def test_a_scope_sees_others_ratings_of_its_own_messages(store, feedback, alice_and_bob):
    alice, bob, _, message = alice_and_bob
    by_bob = feedback.rate(message.id, rater_id=bob.id, score=3)
    mine = store.as_user(alice.id).feedback
    assert mine.for_message(message.id) == [by_bob]
    assert mine.get(message.id, bob.id) == by_bob


EVERY_OPERATION = {
    "rate": lambda f, c, m: f.rate(m.id, thumb="up"),
    "for_message": lambda f, c, m: f.for_message(m.id),
    "get": lambda f, c, m: f.get(m.id),
    "remove": lambda f, c, m: f.remove(m.id),
    "summary": lambda f, c, m: f.summary("model", conversation_id=c.id),
}


@pytest.mark.parametrize("operation", sorted(EVERY_OPERATION))
def test_another_users_messages_are_not_found(store, feedback, alice_and_bob, operation):
    alice, bob, chat, message = alice_and_bob
    feedback.rate(message.id, rater_id=alice.id, thumb="up")
    theirs = store.as_user(bob.id).feedback
    with pytest.raises(NotFoundError):
        EVERY_OPERATION[operation](theirs, chat, message)
    assert [f.thumb for f in feedback.for_message(message.id)] == ["up"]


def test_a_scopes_summary_covers_only_its_conversations(store, feedback, alice_and_bob):
    alice, bob, _chat, message = alice_and_bob
    bobs_chat = store.conversations.create(bob.id)
    bobs_message = store.messages.append(bobs_chat.id, "assistant", "x")
    feedback.rate(message.id, rater_id=alice.id, thumb="up")
    feedback.rate(bobs_message.id, rater_id=alice.id, thumb="down")

    summaries = store.as_user(bob.id).feedback.summary("conversation")
    assert [(s.key, s.thumbs_up, s.thumbs_down) for s in summaries] == [(str(bobs_chat.id), 0, 1)]
    assert len(feedback.summary("conversation")) == 2


# --- aggregates -------------------------------------------------------------------------------


def test_summary_normalises_scores_on_different_scales(store, feedback, user, chat, answer):
    raters = [store.users.create(username=f"rater{i}") for i in range(4)]
    feedback.rate(answer.id, rater_id=raters[0].id, score=5, scale=(1, 5), thumb="up")  # 1.0
    feedback.rate(answer.id, rater_id=raters[1].id, score=0, scale=(0, 10), thumb="down")  # 0.0
    feedback.rate(answer.id, rater_id=raters[2].id, score=7.5, scale=(0, 10))  # 0.75
    feedback.rate(answer.id, rater_id=raters[3].id, thumb="up")  # no score

    (summary,) = feedback.summary("conversation")
    assert summary.key == str(chat.id)
    assert (summary.ratings, summary.thumbs_up, summary.thumbs_down) == (4, 2, 1)
    assert summary.average_score == pytest.approx((1.0 + 0.0 + 0.75) / 3)


def test_summary_by_model_and_day(store, feedback, user, chat):
    with_model = store.messages.append(chat.id, "assistant", "a", model="model-b")
    other_model = store.messages.append(chat.id, "assistant", "b", model="model-a")
    without_model = store.messages.append(chat.id, "assistant", "c")
    before = datetime.now(UTC)
    feedback.rate(with_model.id, rater_id=user.id, thumb="up")
    feedback.rate(other_model.id, rater_id=user.id, thumb="down", score=2, scale=(1, 3))
    feedback.rate(without_model.id, rater_id=user.id, thumb="up")
    after = datetime.now(UTC)

    by_model = feedback.summary("model")
    assert [(s.key, s.ratings, s.thumbs_up, s.thumbs_down) for s in by_model] == [
        ("", 1, 1, 0),
        ("model-a", 1, 0, 1),
        ("model-b", 1, 1, 0),
    ]
    assert by_model[1].average_score == pytest.approx(0.5)
    assert by_model[0].average_score is None

    by_day = feedback.summary("day")
    days = {before.strftime("%Y-%m-%d"), after.strftime("%Y-%m-%d")}
    assert sum(s.ratings for s in by_day) == 3
    assert {s.key for s in by_day} <= days

    assert feedback.summary("day", since=after + timedelta(seconds=1)) == []
    assert feedback.summary("day", until=before - timedelta(seconds=1)) == []
    window = feedback.summary("model", since=before, until=after + timedelta(seconds=1))
    assert sum(s.ratings for s in window) == 3


def test_summary_of_one_conversation(store, feedback, user, chat, answer):
    other = store.conversations.create(user.id)
    elsewhere = store.messages.append(other.id, "assistant", "x")
    feedback.rate(answer.id, rater_id=user.id, thumb="up")
    feedback.rate(elsewhere.id, rater_id=user.id, thumb="down")

    assert [s.key for s in feedback.summary("conversation", conversation_id=chat.id)] == [
        str(chat.id)
    ]
    assert feedback.summary("conversation", conversation_id=str(other.id))[0].thumbs_down == 1
    with pytest.raises(NotFoundError):
        feedback.summary("model", conversation_id=uuid.uuid4())


def test_summary_rejects_bad_arguments(feedback):
    with pytest.raises(ValidationError) as caught:
        feedback.summary("rater")
    assert caught.value.field == "by"
    with pytest.raises(ValidationError) as caught:
        feedback.summary("day", since=datetime(2024, 1, 1))
    assert caught.value.field == "since"
    with pytest.raises(ValidationError) as caught:
        feedback.summary(
            "day", since=datetime(2024, 1, 2, tzinfo=UTC), until=datetime(2024, 1, 1, tzinfo=UTC)
        )
    assert caught.value.field == "until"
    assert feedback.summary("conversation") == []


# --- cascades, transactions, races ------------------------------------------------------------


def test_deleting_the_conversation_deletes_its_ratings(
    store, feedback, user, chat, answer, database_url
):
    feedback.rate(answer.id, rater_id=user.id, thumb="up")
    assert _rows(database_url) == 1
    store.conversations.delete(chat.id, hard=True)
    assert _rows(database_url) == 0
    with pytest.raises(NotFoundError):
        feedback.for_message(answer.id)


def test_a_rating_rolls_back_with_the_callers_transaction(store, user, answer):
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.feedback.rate(answer.id, rater_id=user.id, thumb="up")
        raise RuntimeError("boom")
    assert store.feedback.for_message(answer.id) == []


def test_rating_twice_inside_one_transaction_replaces(store, user, answer):
    with store.transaction() as tx:
        inside = tx.feedback
        first = inside.rate(answer.id, rater_id=user.id, thumb="up")
        second = inside.rate(answer.id, rater_id=user.id, thumb="down")
    assert second.id == first.id
    assert store.feedback.for_message(answer.id) == [second]


def test_concurrent_first_ratings_by_one_rater_leave_one_row(ledger, database_url):
    from tests._threads import run_threads as _run_threads
    from tests.test_concurrency import THREADS

    rater = ledger.users.create(username="racer")
    chat = ledger.conversations.create(rater.id)
    message = ledger.messages.append(chat.id, "assistant", "rate me")

    def work(index: int) -> Any:
        return ledger.feedback.rate(message.id, rater_id=rater.id, score=index % 5 + 1)

    results = _run_threads(THREADS, work)

    assert len({r.id for r in results}) == 1
    assert len({r.created_at for r in results}) == 1
    (stored,) = ledger.feedback.for_message(message.id)
    assert stored.score in {r.score for r in results}
    assert _rows(database_url) == 1


# --- read back with the message ---------------------------------------------------------------


def test_get_detail_returns_the_message_with_its_feedback(store, feedback, user, chat, answer):
    other = store.users.create(username="second-rater")
    a = feedback.rate(answer.id, rater_id=user.id, thumb="up")
    b = feedback.rate(answer.id, rater_id=other.id, score=2)

    detail = store.messages.get_detail(answer.id)
    assert detail.message == answer
    assert detail.feedback == [a, b]
    assert detail.citations == []

    alone = store.messages.get_detail(str(store.messages.last(chat.id, 2)[0].id))
    assert (alone.feedback, alone.citations) == ([], [])
    with pytest.raises(NotFoundError):
        store.messages.get_detail(uuid.uuid4())


def test_get_detail_is_scoped(store, feedback, alice_and_bob):
    alice, bob, _, message = alice_and_bob
    rated = feedback.rate(message.id, rater_id=bob.id, thumb="down")
    assert store.as_user(alice.id).messages.get_detail(message.id).feedback == [rated]
    with pytest.raises(NotFoundError):
        store.as_user(bob.id).messages.get_detail(message.id)


# --- product-feedback forms -------------------------------------------------------------------


def test_submit_and_get_a_form(forms):
    form = forms.submit(
        "  claude  ",
        agent_type="assistant",
        issues="slow",
        feature_requests="dark mode",
        additional_comments="thanks",
        usability_rating=8,
    )
    assert form.agent_name == "claude"
    assert (form.agent_type, form.issues, form.feature_requests) == (
        "assistant",
        "slow",
        "dark mode",
    )
    assert (form.additional_comments, form.usability_rating) == ("thanks", 8)
    assert forms.get(form.id) == form
    assert forms.get(str(form.id)) == form
    minimal = forms.submit("agent")
    assert (minimal.agent_type, minimal.usability_rating, minimal.issues) == (None, None, None)
    with pytest.raises(NotFoundError):
        forms.get(uuid.uuid4())


FORM_LIMITS = [
    ("agent_name", 100),
    ("agent_type", 500),
    ("issues", 2_000),
    ("feature_requests", 2_000),
    ("additional_comments", 2_000),
]


@pytest.mark.parametrize(("field", "limit"), FORM_LIMITS)
def test_form_text_limits(forms, field, limit):
    fields = {"agent_name": "agent", field: "ü" * limit}
    agent_name = fields.pop("agent_name")
    stored = forms.submit(agent_name, **fields)
    assert forms.get(stored.id) == stored
    assert getattr(stored, field) == "ü" * limit

    fields = {"agent_name": "agent", field: "ü" * (limit + 1)}
    agent_name = fields.pop("agent_name")
    with pytest.raises(ValidationError) as caught:
        forms.submit(agent_name, **fields)
    assert (caught.value.field, caught.value.limit) == (field, limit)
    assert len(forms.list()) == 1


@pytest.mark.parametrize("rating", [1, 10])
def test_usability_rating_at_its_limits_is_accepted(forms, rating):
    assert forms.get(forms.submit("agent", usability_rating=rating).id).usability_rating == rating


@pytest.mark.parametrize("rating", [0, 11, -1, 5.0, True, "7"])
def test_usability_rating_outside_1_to_10_is_rejected(forms, rating):
    with pytest.raises(ValidationError) as caught:
        forms.submit("agent", usability_rating=rating)
    assert (caught.value.field, caught.value.limit) == ("usability_rating", (1, 10))
    assert forms.list() == []


@pytest.mark.parametrize("name", ["", "   ", None, "nul\x00"])
def test_agent_name_is_required(forms, name):
    with pytest.raises(ValidationError) as caught:
        forms.submit(name)
    assert caught.value.field == "agent_name"
    assert forms.list() == []


def test_forms_list_newest_first_and_page(forms):
    submitted = [forms.submit(f"agent{i}") for i in range(7)]
    newest_first = list(reversed(submitted))
    assert forms.list() == newest_first
    assert forms.list(limit=3) == newest_first[:3]

    first = forms.page(limit=3)
    second = forms.page(limit=3, after=first.last_cursor)
    third = forms.page(limit=3, after=second.last_cursor)
    assert [*first, *second, *third] == newest_first
    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)
    back = forms.page(limit=3, before=second.first_cursor)
    assert back.items == first.items
    oldest = forms.page(limit=2, order="asc")
    assert oldest.items == submitted[:2]

    with pytest.raises(ValidationError) as caught:
        forms.list(limit=0)
    assert caught.value.field == "limit"
    with pytest.raises(ValidationError) as caught:
        forms.page(after="garbage")
    assert caught.value.field == "after"


def test_conflicting_cursor_arguments(forms):
    page = forms.page()
    with pytest.raises(ValidationError):
        forms.page(after=page.last_cursor or "x", before=page.first_cursor or "x")
    with pytest.raises(ValidationError) as caught:
        forms.page(order="sideways")
    assert caught.value.field == "order"
