"""Visitors: a registry of a site's visitors (people or AI agents) and their answers. A
repeat visit updates the visitor instead of adding one, also when first visits race."""

from __future__ import annotations

import threading
import traceback
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from chatledger import NotFoundError, ValidationError
from chatledger._schema import visitor_answers

THREADS = 8


def answer_rows(database_url: Any) -> int:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(visitor_answers)).scalar()
    engine.dispose()
    return int(count or 0)


def test_a_first_visit_makes_a_visitor(store):
    visitors = store.visitors
    visitor = visitors.record_visit(
        "  Claude  ",
        agent_type="AI assistant",
        purpose="reading the docs",
        answers={"favourite": "tea", "empty": ""},
    )
    assert (visitor.name, visitor.agent_type, visitor.purpose) == (
        "Claude",
        "AI assistant",
        "reading the docs",
    )
    assert visitor.visit_count == 1
    assert visitor.visit_time == visitor.created_at
    assert visitor.answers == {"empty": "", "favourite": "tea"}
    assert visitors.get(visitor.id) == visitor
    assert visitors.get(str(visitor.id)) == visitor


def test_a_repeat_visit_counts_and_merges(store):
    visitors = store.visitors
    first = visitors.record_visit("bot", purpose="crawl", answers={"a": "1", "b": "2"})
    second = visitors.record_visit("bot", answers={"b": "two", "c": "3"})
    third = visitors.record_visit("bot", purpose="index")

    assert first.id == second.id == third.id
    assert [v.visit_count for v in (first, second, third)] == [1, 2, 3]
    assert second.purpose == "crawl"  # not given: kept
    assert third.purpose == "index"
    assert first.visit_time < second.visit_time <= third.visit_time
    assert third.created_at == first.created_at
    assert third.answers == {"a": "1", "b": "two", "c": "3"}
    assert visitors.get(first.id) == third
    assert len(visitors.list()) == 1


def test_identity_ignores_case_and_surrounding_space(store):
    visitors = store.visitors
    a = visitors.record_visit("GPTBot", agent_type="Crawler")
    b = visitors.record_visit("  gptbot ", agent_type=" CRAWLER")
    assert a.id == b.id
    assert b.visit_count == 2
    assert b.name == "GPTBot"  # the first spelling is kept

    no_type = visitors.record_visit("GPTBot")
    empty_type = visitors.record_visit("gptbot", agent_type="")
    other_type = visitors.record_visit("GPTBot", agent_type="Assistant")
    assert no_type.id == empty_type.id
    assert len({a.id, no_type.id, other_type.id}) == 3


def test_a_visitor_key_identifies_the_visitor(store):
    visitors = store.visitors
    a = visitors.record_visit("Alice", visitor_key="cookie-123")
    b = visitors.record_visit("Alice Smith", agent_type="browser", visitor_key="cookie-123")
    by_name = visitors.record_visit("Alice")
    other_key = visitors.record_visit("Alice", visitor_key="Cookie-123")  # exact compare

    assert a.id == b.id
    assert b.visit_count == 2
    assert b.name == "Alice"
    assert len({a.id, by_name.id, other_key.id}) == 3


def test_list_is_newest_visit_first_with_a_limit(store):
    visitors = store.visitors
    made = [visitors.record_visit(f"v{i}") for i in range(5)]
    assert [v.id for v in visitors.list()] == [v.id for v in made[::-1]]
    assert [v.id for v in visitors.list(limit=2)] == [made[4].id, made[3].id]

    again = visitors.record_visit("v0", answers={"k": "v"})
    listed = visitors.list(limit=1)
    assert listed == [again]
    assert listed[0].answers == {"k": "v"}
    for bad, limit in ((0, 1000), (1001, 1000)):
        with pytest.raises(ValidationError) as caught:
            visitors.list(limit=bad)
        assert (caught.value.field, caught.value.limit) == ("limit", limit)


def test_pages_follow_cursors(store):
    visitors = store.visitors
    made = [visitors.record_visit(f"v{i}", answers={"i": str(i)}) for i in range(5)]
    first = visitors.page(limit=2)
    second = visitors.page(limit=2, after=first.last_cursor)
    third = visitors.page(limit=2, after=second.last_cursor)
    assert [v.id for v in [*first, *second, *third]] == [v.id for v in made[::-1]]
    assert (first.has_more, third.has_more) == (True, False)
    assert [v.answers for v in second] == [{"i": "2"}, {"i": "1"}]
    assert visitors.page(limit=2, before=second.first_cursor).items == first.items
    assert visitors.page(limit=5, order="asc").items == made
    with pytest.raises(ValidationError) as caught:
        visitors.page(after="garbage")
    assert caught.value.field == "after"
    with pytest.raises(ValidationError):
        visitors.page(after=first.last_cursor, before=first.first_cursor)


def test_delete_removes_the_visitor_and_its_answers(store, database_url):
    visitors = store.visitors
    gone = visitors.record_visit("gone", answers={"a": "1", "b": "2"})
    kept = visitors.record_visit("kept", answers={"a": "1"})
    assert answer_rows(database_url) == 3

    visitors.delete(gone.id)

    assert answer_rows(database_url) == 1
    with pytest.raises(NotFoundError) as caught:
        visitors.get(gone.id)
    assert caught.value.kind == "visitor"
    with pytest.raises(NotFoundError):
        visitors.delete(gone.id)
    assert visitors.list() == [kept]
    fresh = visitors.record_visit("gone")
    assert (fresh.visit_count, fresh.answers) == (1, {})


def test_set_answers_merges_or_replaces(store):
    visitors = store.visitors
    visitor = visitors.record_visit("v", answers={"a": "1", "b": "2"})
    merged = visitors.set_answers(visitor.id, {"b": "B", "c": "3"})
    assert merged.answers == {"a": "1", "b": "B", "c": "3"}
    assert merged.visit_count == 1
    replaced = visitors.set_answers(visitor.id, {"z": "26"}, replace=True)
    assert replaced.answers == {"z": "26"}
    assert visitors.set_answers(visitor.id, {}, replace=True).answers == {}
    with pytest.raises(NotFoundError):
        visitors.set_answers(uuid.uuid4(), {"a": "1"})
    with pytest.raises(ValidationError):
        visitors.set_answers(visitor.id, {"": "x"})


def test_unknown_visitors_are_not_found(store):
    visitors = store.visitors
    for call in (visitors.get, visitors.delete):
        with pytest.raises(NotFoundError):
            call(uuid.uuid4())
        with pytest.raises(ValidationError) as caught:
            call("not-an-id")
        assert caught.value.field == "visitor_id"


FIELD_LIMITS = [
    # (argument, limit): the replaced app's CHECK constraints
    ("name", 100),
    ("agent_type", 500),
    ("purpose", 500),
]


@pytest.mark.parametrize(("field", "limit"), FIELD_LIMITS)
def test_text_field_limits(store, field, limit):
    visitors = store.visitors
    at_limit = "x" * limit
    kwargs = {"name": "n", field: at_limit}
    assert getattr(visitors.record_visit(**kwargs), field) == at_limit
    with pytest.raises(ValidationError) as caught:
        visitors.record_visit(**{**kwargs, field: "y" * (limit + 1)})
    assert (caught.value.field, caught.value.limit) == (field, limit)
    with pytest.raises(ValidationError) as nul:
        visitors.record_visit(**{**kwargs, field: "a\x00b"})
    assert nul.value.field == field
    assert len(visitors.list()) == 1
    assert visitors.list()[0].visit_count == 1


def test_name_must_not_be_blank(store):
    visitors = store.visitors
    for bad in ("", "   ", None, 5):
        with pytest.raises(ValidationError) as caught:
            visitors.record_visit(bad)
        assert caught.value.field == "name"
    assert visitors.list() == []


def test_answer_key_and_value_limits(store):
    visitors = store.visitors
    visitor = visitors.record_visit("v", answers={"k" * 50: "v" * 500})
    assert visitor.answers == {"k" * 50: "v" * 500}

    with pytest.raises(ValidationError) as long_key:
        visitors.record_visit("v", answers={"k" * 51: "v"})
    assert (long_key.value.field, long_key.value.limit) == ("answers", 50)
    with pytest.raises(ValidationError) as long_value:
        visitors.record_visit("v", answers={"k": "v" * 501})
    assert (long_value.value.field, long_value.value.limit) == ("answers['k']", 500)
    for bad in ({"": "v"}, {"  ": "v"}, {1: "v"}, {"k": 1}, {"k": None}, {"k\x00": "v"}, ["k"]):
        with pytest.raises(ValidationError) as caught:
            visitors.record_visit("v", answers=bad)
        assert caught.value.field.startswith("answers")
    assert visitors.get(visitor.id) == visitor  # nothing written, not even a visit


def test_at_most_100_answers(store):
    visitors = store.visitors
    hundred = {f"q{i}": str(i) for i in range(100)}
    visitor = visitors.record_visit("v", answers=hundred)
    assert len(visitor.answers) == 100

    with pytest.raises(ValidationError) as given:
        visitors.record_visit("w", answers={f"q{i}": "x" for i in range(101)})
    assert (given.value.field, given.value.limit) == ("answers", 100)

    # The visitor holds 100: a new key would be the 101st, so the visit is refused whole.
    with pytest.raises(ValidationError) as total:
        visitors.record_visit("v", answers={"new": "x"})
    assert (total.value.field, total.value.limit) == ("answers", 100)
    with pytest.raises(ValidationError):
        visitors.set_answers(visitor.id, {"new": "x"})
    assert visitors.get(visitor.id) == visitor

    updated = visitors.record_visit("v", answers={"q0": "changed"})
    assert (updated.visit_count, len(updated.answers), updated.answers["q0"]) == (2, 100, "changed")
    assert len(visitors.set_answers(visitor.id, {"only": "1"}, replace=True).answers) == 1
    assert [v.name for v in visitors.list()] == ["v"]


def test_visitor_key_limits(store):
    visitors = store.visitors
    assert visitors.record_visit("v", visitor_key="k" * 255).visit_count == 1
    for bad, limit in (("k" * 256, 255), ("  ", None), ("", None), ("a\x00", None)):
        with pytest.raises(ValidationError) as caught:
            visitors.record_visit("v", visitor_key=bad)
        assert (caught.value.field, caught.value.limit) == ("visitor_key", limit)
    assert len(visitors.list()) == 1


def test_visitors_are_ledger_only(store, user):
    assert not hasattr(store.as_user(user.id), "visitors")


def test_racing_first_visits_make_one_visitor(ledger):
    barrier = threading.Barrier(THREADS, timeout=30)
    results: list[Any] = [None] * THREADS
    errors: list[str] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            results[index] = ledger.visitors.record_visit(
                "Racer", agent_type="bot", answers={f"t{index}": str(index), "shared": "x"}
            )
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [], "\n".join(errors)

    (visitor,) = ledger.visitors.list()
    assert visitor.visit_count == THREADS
    assert len({r.id for r in results}) == 1
    assert sorted(r.visit_count for r in results) == list(range(1, THREADS + 1))
    assert visitor.answers == {"shared": "x", **{f"t{i}": str(i) for i in range(THREADS)}}
