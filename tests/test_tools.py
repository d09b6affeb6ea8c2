"""Tool calls (issue 15, docs/tools.md): calls stored with the assistant message that asked
for them, answered once by a ``tool`` message on the same path, queried by message,
conversation, tool name and state with pages and per-tool statistics; history windows that
never split a call from its result; bad input and misplaced answers writing nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatledger import ConflictError, NotFoundError, ValidationError
from chatledger._ops.tool_calls import pair_window
from chatledger._schema import TOOL_CALLS_PER_MESSAGE_MAX
from chatledger.records import Message

from .test_memory import memory_of

WEATHER = {"id": "call_1", "name": "weather", "arguments": {"city": "Oslo"}}
TIME = {"id": "call_2", "name": "clock", "arguments": {"tz": "UTC"}}


def _ask(store, chat, *calls, content=""):
    return store.messages.append(chat.id, "assistant", content, tool_calls=list(calls))


def test_calls_are_stored_with_their_message_and_answered_once(store, chat):
    store.messages.append(chat.id, "user", "Weather in Oslo, and the time?")
    asking = _ask(store, chat, WEATHER, TIME)
    calls = store.tools.of_message(asking.id)
    assert [(c.call_id, c.name, c.arguments, c.position, c.status) for c in calls] == [
        ("call_1", "weather", {"city": "Oslo"}, 0, "pending"),
        ("call_2", "clock", {"tz": "UTC"}, 1, "pending"),
    ]
    assert all(c.message_id == asking.id and c.message_seq == asking.seq for c in calls)
    assert [c.call_id for c in store.tools.pending(chat.id)] == ["call_1", "call_2"]

    answer = store.messages.append(
        chat.id, "tool", "12 C, rain", tool_call_id="call_1", tool_latency_ms=850
    )
    failed = store.messages.append(
        chat.id, "tool", "clock service down", tool_call_id="call_2", tool_status="error"
    )
    one = store.tools.get(chat.id, "call_1")
    assert (one.status, one.result_message_id, one.result_seq, one.latency_ms) == (
        "success",
        answer.id,
        answer.seq,
        850,
    )
    assert one.answered
    assert one.answered_at == answer.created_at
    two = store.tools.get(chat.id, "call_2")
    assert (two.status, two.result_message_id) == ("error", failed.id)
    assert two.latency_ms is not None
    assert two.latency_ms >= 0
    assert store.tools.pending(chat.id) == []

    # One result per call: a second answer is refused and writes nothing.
    count = store.messages.count(chat.id)
    with pytest.raises(ConflictError) as refused:
        store.messages.append(chat.id, "tool", "again", tool_call_id="call_1")
    assert refused.value.field == "tool_call_id"
    assert store.messages.count(chat.id) == count
    assert store.tools.get(chat.id, "call_1").result_message_id == answer.id


def test_bad_calls_and_unknown_answers_write_nothing(store, chat):
    _ask(store, chat, WEATHER)
    count = store.messages.count(chat.id)
    with pytest.raises(NotFoundError) as unknown:
        store.messages.append(chat.id, "tool", "?", tool_call_id="call_nope")
    assert unknown.value.field == "tool_call_id"
    cases: list[tuple[dict[str, Any], str, int | None]] = [
        ({"role": "user", "tool_calls": [WEATHER]}, "tool_calls", None),
        ({"role": "assistant", "tool_call_id": "call_1"}, "tool_call_id", None),
        ({"role": "tool", "tool_call_id": "call_1", "tool_status": "maybe"}, "tool_status", None),
        ({"role": "tool", "tool_status": "error"}, "tool_status", None),
        (
            {"role": "assistant", "tool_calls": [{"id": "x", "name": ""}]},
            "tool_calls[0].name",
            None,
        ),
        ({"role": "assistant", "tool_calls": [{"name": "n"}]}, "tool_calls[0].id", None),
        (
            {"role": "assistant", "tool_calls": [{"id": "x", "name": "n", "arguments": "[1]"}]},
            "tool_calls[0].arguments",
            None,
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "x", "name": "n", "colour": 1}]},
            "tool_calls[0]",
            None,
        ),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "x", "name": "a"}, {"id": "x", "name": "b"}],
            },
            "tool_calls[1].id",
            None,
        ),
        (
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": f"c{i}", "name": "n"} for i in range(TOOL_CALLS_PER_MESSAGE_MAX + 1)
                ],
            },
            "tool_calls",
            TOOL_CALLS_PER_MESSAGE_MAX,
        ),
        (
            {"role": "assistant", "tool_calls": [{"id": "x" * 201, "name": "n"}]},
            "tool_calls[0].id",
            200,
        ),
    ]
    for fields, field, limit in cases:
        role = fields.pop("role")
        with pytest.raises(ValidationError) as bad:
            store.messages.append(chat.id, role, "x", **fields)
        assert bad.value.field == field, fields
        if limit is not None:
            assert bad.value.limit == limit
    # A call id already asked in this conversation is a conflict naming the field.
    with pytest.raises(ConflictError) as taken:
        _ask(store, chat, TIME, WEATHER)
    assert taken.value.field == "tool_calls[1].id"
    assert store.messages.count(chat.id) == count


def test_the_provider_shapes_are_read_as_calls(store, chat):
    asking = _ask(
        store,
        chat,
        # OpenAI chat completions: arguments as JSON text under "function".
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        # Anthropic: a tool_use block.
        {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {"y": [1, 2]}},
        # LangChain: a ToolCall dict.
        {"type": "tool_call", "id": "c", "name": "h", "args": {}},
        # Something else: the type is kept in the call's metadata.
        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {"q": "x"}},
    )
    calls = store.tools.of_message(asking.id)
    assert [(c.call_id, c.name, c.arguments, c.metadata) for c in calls] == [
        ("call_a", "f", {"x": 1}, None),
        ("toolu_b", "g", {"y": [1, 2]}, None),
        ("c", "h", {}, None),
        ("s", "web_search", {"q": "x"}, {"type": "server_tool_use"}),
    ]


def test_an_answer_must_be_on_the_branch_of_its_call(store, chat):
    question = store.messages.append(chat.id, "user", "weather?")
    asking = _ask(store, chat, WEATHER)
    # The user edits the question: the call is now on another branch.
    store.trees.edit(question.id, "weather in Bergen?")
    count = store.messages.count(chat.id)
    with pytest.raises(ConflictError) as elsewhere:
        store.messages.append(chat.id, "tool", "12 C", tool_call_id="call_1")
    assert elsewhere.value.field == "tool_call_id"
    assert store.messages.count(chat.id) == count
    assert store.tools.pending(chat.id) == []  # the pending call is not on the active path
    # Back on its branch it is answered (with parent_id the answer hangs under the call).
    store.messages.append(chat.id, "tool", "12 C", tool_call_id="call_1", parent_id=asking.id)
    assert store.tools.get(chat.id, "call_1").status == "success"


def test_last_never_splits_a_call_from_its_result(store, chat):
    store.messages.append(chat.id, "user", "q")
    _ask(store, chat, WEATHER, TIME)
    store.messages.append(chat.id, "tool", "r1", tool_call_id="call_1")
    store.messages.append(chat.id, "user", "(interjection)")
    store.messages.append(chat.id, "tool", "r2", tool_call_id="call_2")
    store.messages.append(chat.id, "assistant", "done")
    roles = {n: [m.content or m.role for m in store.messages.last(chat.id, n)] for n in range(1, 7)}
    assert roles == {
        1: ["done"],
        2: ["done"],  # r2 dropped: its call is outside
        3: ["(interjection)", "done"],  # r2 dropped even in the middle
        4: ["(interjection)", "done"],
        5: ["assistant", "r1", "(interjection)", "r2", "done"],
        6: ["q", "assistant", "r1", "(interjection)", "r2", "done"],
    }
    # A role filter reads the rows as they are.
    assert [m.content for m in store.messages.last(chat.id, 1, role="tool")] == ["r2"]


def test_calls_listed_by_tool_and_state_with_paging_and_stats(store, user):
    chats = [store.conversations.create(user.id, title=f"c{i}") for i in range(2)]
    for index, chat in enumerate(chats):
        for turn in range(3):
            call = f"call_{index}_{turn}"
            name = "search" if turn < 2 else "calc"
            _ask(store, chat, {"id": call, "name": name, "arguments": {"turn": turn}})
            if turn == 0:
                store.messages.append(
                    chat.id, "tool", "boom", tool_call_id=call, tool_status="error"
                )
            elif turn == 1:
                store.messages.append(
                    chat.id, "tool", "ok", tool_call_id=call, tool_latency_ms=100 * (index + 1)
                )
    every = store.tools.list(limit=100)
    assert len(every.items) == 6
    assert not every.has_more
    first = store.tools.list(limit=4)
    rest = store.tools.list(limit=4, after=first.last_cursor)
    assert [c.call_id for c in first.items + rest.items] == [c.call_id for c in every.items]
    back = store.tools.list(limit=4, before=rest.first_cursor)
    assert [c.call_id for c in back.items] == [c.call_id for c in first.items]
    newest = store.tools.list(limit=2, order="desc")
    assert [c.call_id for c in newest.items] == [c.call_id for c in every.items][::-1][:2]

    failures = store.tools.list(status="error")
    assert sorted(c.call_id for c in failures.items) == ["call_0_0", "call_1_0"]
    assert {c.call_id for c in store.tools.list(name="calc").items} == {"call_0_2", "call_1_2"}
    assert {c.call_id for c in store.tools.list(conversation_id=chats[1].id).items} == {
        "call_1_0",
        "call_1_1",
        "call_1_2",
    }
    later = datetime.now(UTC) + timedelta(hours=1)
    assert store.tools.list(since=later).items == []

    stats = {row.name: row for row in store.tools.stats().items}
    assert set(stats) == {"calc", "search"}
    search = stats["search"]
    assert (search.calls, search.succeeded, search.failed, search.pending) == (4, 2, 2, 0)
    assert search.max_latency_ms is not None
    assert search.max_latency_ms >= 200
    assert search.error_rate == 0.5
    calc = stats["calc"]
    assert (calc.calls, calc.pending, calc.avg_latency_ms, calc.max_latency_ms) == (
        2,
        2,
        None,
        None,
    )
    paged = store.tools.stats(limit=1)
    assert [r.name for r in paged.items] == ["calc"]
    assert paged.has_more
    assert [r.name for r in store.tools.stats(limit=1, after=paged.last_cursor).items] == ["search"]
    one = store.tools.stats(conversation_id=chats[0].id, name="search").items
    assert [(r.name, r.calls) for r in one] == [("search", 2)]

    with pytest.raises(ValidationError) as bad:
        store.tools.list(status="lost")
    assert bad.value.field == "status"
    with pytest.raises(ValidationError) as cursor:
        store.tools.list(after=store.conversations.list(user.id, limit=1).last_cursor)
    assert cursor.value.field == "after"


def test_a_batch_holds_calls_and_their_answers_and_fails_whole(store, chat):
    written = store.messages.append_many(
        chat.id,
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [WEATHER]},
            {"role": "tool", "content": "sun", "tool_call_id": "call_1"},
        ],
    )
    assert store.tools.get(chat.id, "call_1").result_message_id == written[2].id
    count = store.messages.count(chat.id)
    with pytest.raises(NotFoundError) as missing:
        store.messages.append_many(
            chat.id,
            [
                {"role": "assistant", "content": "", "tool_calls": [TIME]},
                {"role": "tool", "content": "?", "tool_call_id": "call_9"},
            ],
        )
    assert missing.value.field == "tool_call_id"
    assert store.messages.count(chat.id) == count
    with pytest.raises(NotFoundError):
        store.tools.get(chat.id, "call_2")
    with pytest.raises(ValidationError) as bad:
        store.messages.append_many(
            chat.id, [{"role": "user", "content": "x", "tool_calls": [TIME]}]
        )
    assert bad.value.field == "messages[0].tool_calls"


def test_a_streamed_reply_finishes_with_its_calls(store, chat):
    store.messages.append(chat.id, "user", "q")
    begun = store.streams.begin(chat.id)
    store.streams.delta(begun.id, 0, "Let me check")
    with pytest.raises(ValidationError) as partial:
        store.streams.finish(begun.id, status="incomplete", reason="x", tool_calls=[WEATHER])
    assert partial.value.field == "tool_calls"
    finished = store.streams.finish(begun.id, tool_calls=[WEATHER])
    assert [c.call_id for c in store.tools.of_message(finished.id)] == ["call_1"]
    assert store.tools.pending(chat.id)[0].message_id == finished.id


def test_regenerate_and_fork_carry_calls(store, chat):
    store.messages.append(chat.id, "user", "q")
    asking = _ask(store, chat, WEATHER)
    answer = store.messages.append(chat.id, "tool", "sun", tool_call_id="call_1")
    final = store.messages.append(chat.id, "assistant", "It is sunny")
    again = store.trees.regenerate(asking.id, "", tool_calls=[TIME])
    assert [c.call_id for c in store.tools.pending(chat.id)] == ["call_2"]
    assert again.on_active_path

    fork = store.trees.fork(chat.id, final.id)
    copied = store.tools.get(fork.id, "call_1")
    path = store.trees.path(fork.id)
    assert (copied.status, copied.message_id, copied.result_message_id) == (
        "success",
        path[1].id,
        path[2].id,
    )
    assert copied.result_message_id != answer.id
    partial = store.trees.fork(chat.id, asking.id)  # the answer stays behind: pending
    assert store.tools.get(partial.id, "call_1").status == "pending"


def test_a_user_scope_sees_only_its_own_calls(store, user, chat):
    _ask(store, chat, WEATHER)
    other = store.users.create(email=f"{uuid.uuid4().hex}@example.com")
    theirs = store.conversations.create(other.id)
    _ask(store, theirs, TIME)
    scope = store.as_user(other.id)
    assert [c.call_id for c in scope.tools.list().items] == ["call_2"]
    assert [r.name for r in scope.tools.stats().items] == ["clock"]
    with pytest.raises(NotFoundError):
        scope.tools.get(chat.id, "call_1")
    with pytest.raises(NotFoundError):
        scope.tools.pending(chat.id)
    with pytest.raises(NotFoundError):
        scope.messages.append(chat.id, "tool", "x", tool_call_id="call_1")


def test_export_holds_the_calls_and_erase_removes_them(store, user, chat):
    asking = _ask(store, chat, WEATHER, TIME)
    store.messages.append(chat.id, "tool", "sun", tool_call_id="call_1")
    exported = store.users.export(user.id)["tables"]["tool_calls"]
    assert sorted((row["call_id"], row["status"]) for row in exported) == [
        ("call_1", "success"),
        ("call_2", "pending"),
    ]
    assert exported[0]["message_id"] == str(asking.id)
    report = store.users.erase(user.id)
    assert report.deleted["tool_calls"] == 2
    assert store.tools.list().items == []


def test_memory_windows_never_start_with_a_result(store, chat):
    store.messages.append(chat.id, "user", "q")
    _ask(store, chat, WEATHER)
    store.messages.append(chat.id, "tool", "r" * 400, tool_call_id="call_1")
    store.messages.append(chat.id, "assistant", "done")
    memory = memory_of(store)
    assert [m.content for m in memory.last(chat.id, 2)] == ["done"]
    assert [m.content for m in memory.fit(chat.id, 50)] == ["done"]
    assert [m.role for m in memory.last(chat.id, 3)] == ["assistant", "tool", "assistant"]


# -- the window rule, as a property -------------------------------------------------------------


def _message(seq: int, role: str) -> Message:
    return Message(
        id=uuid.uuid4(),
        conversation_id=uuid.UUID(int=0),
        seq=seq,
        role=role,  # type: ignore[arg-type]
        content="",
        intent=None,
        metadata=None,
        model=None,
        input_tokens=None,
        output_tokens=None,
        cost=None,
        latency_ms=None,
        request_id=None,
        idempotency_key=None,
        created_at=datetime.now(UTC),
    )


@st.composite
def _paths(draw):
    """A path of messages where tool results answer calls asked before them (any layout)."""
    path: list[tuple[str, int | None]] = []  # (role, seq of the asking message)
    open_calls: list[int] = []
    for _ in range(draw(st.integers(1, 25))):
        seq = len(path) + 1
        kind = draw(st.sampled_from(["user", "assistant", "ask", "answer"]))
        if kind == "ask":
            path.append(("assistant", None))
            open_calls.extend([seq] * draw(st.integers(1, 3)))
        elif kind == "answer" and open_calls:
            asked = open_calls.pop(draw(st.integers(0, len(open_calls) - 1)))
            path.append(("tool", asked))
        else:
            path.append((kind if kind != "answer" else "user", None))
    return path


@settings(max_examples=100, deadline=None)
@given(_paths(), st.data())
def test_no_window_splits_a_pair(path, data):
    messages = [_message(seq, role) for seq, (role, _) in enumerate(path, 1)]
    links = {seq: asked for seq, (_, asked) in enumerate(path, 1) if asked is not None}
    n = data.draw(st.integers(1, len(messages)))
    window = pair_window(messages[-n:], links)
    seqs = {m.seq for m in window}
    assert not window or window[0].role != "tool"
    for message in window:
        if message.role == "tool":
            assert links[message.seq] in seqs  # its call is in the window
    for seq, asked in links.items():
        if asked in seqs:
            assert seq in seqs  # a call in the window keeps every answer on the path
    # Only results are ever dropped.
    assert [m for m in messages[-n:] if m.role != "tool"] == [m for m in window if m.role != "tool"]


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=_paths())
def test_stored_windows_never_split_a_pair(ledger, path):
    """The same property through ``messages.last`` on every backend."""
    owner = ledger.users.create()
    chat = ledger.conversations.create(owner.id)
    calls: dict[int, list[str]] = {}
    for seq, (role, asked) in enumerate(path, 1):
        if role == "assistant" and any(a == seq for _, a in path):
            count = sum(1 for _, a in path if a == seq)
            ids = [f"c{seq}_{i}" for i in range(count)]
            calls[seq] = ids
            ledger.messages.append(
                chat.id, "assistant", "", tool_calls=[{"id": i, "name": "t"} for i in ids]
            )
        elif role == "tool":
            assert asked is not None
            ledger.messages.append(chat.id, "tool", "r", tool_call_id=calls[asked].pop())
        else:
            ledger.messages.append(chat.id, role, "m")
    links = {seq: asked for seq, (_, asked) in enumerate(path, 1) if asked is not None}
    for n in range(1, len(path) + 1):
        window = ledger.messages.last(chat.id, n)
        seqs = {m.seq for m in window}
        assert not window or window[0].role != "tool"
        assert all(links[m.seq] in seqs for m in window if m.role == "tool")
        assert all(seq in seqs for seq, asked in links.items() if asked in seqs)


def test_the_docs_examples_run(tmp_path):
    from pathlib import Path

    from .test_readme import run_docs_page

    page = Path(__file__).resolve().parent.parent / "docs" / "tools.md"
    output = run_docs_page(page, tmp_path)
    assert "refused: tool_call_id" in output
    assert "clock 1 0 1 0 1.0" in output
