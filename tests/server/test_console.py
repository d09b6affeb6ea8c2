"""The console over HTTP (every backend): sessions, CSRF, BOLA, escaping and the offline docs.
What a browser does with the pages is in test_console_browser.py."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa

from chatledger import Ledger
from chatledger._schema import audit_events
from chatledger.server import models
from chatledger.server.console._base import CSP
from chatledger.server.console._session import COOKIE, LOGIN_COOKIE
from chatledger.server.console.apidocs import EXAMPLES

from .conftest import Account, Api

pytestmark = pytest.mark.filterwarnings("ignore::chatledger.SQLiteWALResetBugWarning")

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(api: Api, who: Account, next_page: str = "/console/conversations") -> str:
    """Sign ``who`` in on the shared client; the session cookie's value."""
    api.client.cookies.clear()
    form = api.client.get("/console/sign-in")
    token = _TOKEN.search(form.text)
    assert token is not None
    answer = api.client.post(
        "/console/sign-in",
        data={"csrf_token": token.group(1), "api_key": who.secret, "next": next_page},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == next_page
    session = api.client.cookies.get(COOKIE)
    assert session
    return session


def csrf(api: Api, path: str) -> str:
    token = _TOKEN.search(api.client.get(path).text)
    assert token is not None
    return token.group(1)


def seed_conversation(api: Api, owner: Account, title: str, content: str) -> dict[str, Any]:
    with Ledger(api.url) as ledger:
        conversation = ledger.conversations.create(owner.user_id, title=title)
        question = ledger.messages.append(conversation.id, "user", content)
        answer = ledger.messages.append(
            conversation.id,
            "assistant",
            "Refunds take **3-5 days**.",
            model="gpt-4o-mini",
            input_tokens=412,
            output_tokens=58,
            cost=Decimal("0.000096"),
            latency_ms=1240,
            request_id="req_123",
        )
        ledger.as_user(owner.user_id).feedback.rate(
            answer.id, thumb="down", categories=["inaccurate"], comment="It is 30 days."
        )
    return {"conversation": conversation.id, "question": question.id, "answer": answer.id}


def test_pages_need_a_session(api: Api) -> None:
    answer = api.client.get("/console/usage?since=2026-01-01", follow_redirects=False)
    assert answer.status_code == 303
    assert (
        answer.headers["location"]
        == "/console/sign-in?next=%2Fconsole%2Fusage%3Fsince%3D2026-01-01"
    )
    # A bearer key is not a session: the console only accepts its cookie.
    answer = api.call(api.alice, "GET", "/console/conversations", follow_redirects=False)
    assert answer.status_code == 303


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_removes_it(api: Api) -> None:
    api.client.cookies.clear()
    form = api.client.get("/console/sign-in")
    assert "SameSite=strict" in form.headers["set-cookie"]
    token = _TOKEN.search(form.text)
    assert token is not None
    answer = api.client.post(
        "/console/sign-in",
        data={"csrf_token": token.group(1), "api_key": api.alice.secret, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/conversations"  # never another host
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age=28800" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    assert api.alice.secret not in cookie
    page = api.client.get("/console/conversations")
    assert page.status_code == 200
    assert "Alice" in page.text
    token = _TOKEN.search(page.text)
    assert token is not None
    answer = api.client.post(
        "/console/sign-out", data={"csrf_token": token.group(1)}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert api.client.cookies.get(COOKIE) is None
    assert api.client.get("/console/conversations", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_over_tls(api: Api) -> None:
    form = api.client.get("https://testserver/console/sign-in")
    token = _TOKEN.search(form.text)
    assert token is not None
    assert "Secure" in form.headers["set-cookie"]
    answer = api.client.post(
        "https://testserver/console/sign-in",
        data={"csrf_token": token.group(1), "api_key": api.bob.secret},
        follow_redirects=False,
    )
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE))
    assert "Secure" in cookie


def test_a_failed_sign_in_is_audited_like_a_failed_api_call(api: Api) -> None:
    api.client.cookies.clear()
    token = csrf(api, "/console/sign-in")
    answer = api.client.post(
        "/console/sign-in",
        data={"csrf_token": token, "api_key": "clk_abcdefgh_" + "x" * 40},
        follow_redirects=False,
    )
    assert answer.status_code == 401
    assert "not valid" in answer.text
    assert api.client.cookies.get(COOKIE) is None
    with Ledger(api.url) as ledger:
        events = ledger.audit.list(event_type="auth.failed").items
    assert len(events) == 1
    assert events[0].severity == "warning"
    assert events[0].metadata is not None
    assert events[0].metadata["path"] == "/console/sign-in"
    assert "x" * 40 not in str(events[0].metadata)


def test_revoking_the_key_ends_its_sessions(api: Api) -> None:
    sign_in(api, api.alice)
    assert api.client.get("/console/conversations").status_code == 200
    with Ledger(api.url) as ledger:
        ledger.api_keys.revoke(api.alice.key_id)
    answer = api.client.get("/console/conversations", follow_redirects=False)
    assert answer.status_code == 303


def test_a_forged_or_tampered_cookie_is_no_session(api: Api) -> None:
    session = sign_in(api, api.alice)
    payload, _, signature = session.rpartition(".")
    bob_key = uuid.UUID(api.bob.key_id).hex
    forged = f"{bob_key}.{payload.split('.', 1)[1]}.{signature}"
    api.client.cookies.clear()
    api.client.cookies.set(COOKIE, forged, path="/console")
    assert api.client.get("/console/conversations", follow_redirects=False).status_code == 303


def test_csrf_is_refused(api: Api) -> None:
    sign_in(api, api.admin)
    token = csrf(api, "/console/keys")
    before = api.client.get("/console/keys").text.count("<tr>")
    for form, headers in [
        ({"user_id": api.bob.user_id}, {}),  # no token
        ({"user_id": api.bob.user_id, "csrf_token": "x" + token[1:]}, {}),  # wrong token
        ({"user_id": api.bob.user_id, "csrf_token": token}, {"Origin": "https://evil.example"}),
    ]:
        answer = api.client.post("/console/keys", data=form, headers=headers)
        assert answer.status_code == 403
        assert "Refused" in answer.text
    assert api.client.get("/console/keys").text.count("<tr>") == before
    # The sign-in form has its own token (double-submit cookie).
    api.client.cookies.clear()
    answer = api.client.post(
        "/console/sign-in", data={"csrf_token": "guess", "api_key": api.bob.secret}
    )
    assert answer.status_code == 403
    api.client.cookies.set(LOGIN_COOKIE, "guess", path="/console")
    answer = api.client.post(
        "/console/sign-in", data={"csrf_token": "other", "api_key": api.bob.secret}
    )
    assert answer.status_code == 403


def test_another_users_conversation_is_a_404(api: Api) -> None:
    ids = seed_conversation(api, api.alice, "Alice's refund", "Where is my refund?")
    sign_in(api, api.bob)
    page = api.client.get(f"/console/conversations/{ids['conversation']}")
    assert page.status_code == 404
    assert "Where is my refund" not in page.text
    assert api.client.get(f"/console/conversations/{uuid.uuid4()}").status_code == 404
    assert api.client.get("/console/conversations/not-an-id").status_code == 404
    # Bob's listings never show Alice's data, whatever the query says.
    listing = api.client.get(f"/console/conversations?user={api.alice.user_id}")
    assert "Alice&#39;s refund" not in listing.text
    assert "It is 30 days" not in api.client.get("/console/feedback").text
    usage = api.client.get(f"/console/usage?user={api.alice.user_id}")
    assert "0.000096" not in usage.text
    for admin_page in ("/console/audit", "/console/keys", "/console/users"):
        assert api.client.get(admin_page).status_code == 403
    assert api.client.get(f"/console/users/{api.alice.user_id}").status_code == 403


def test_the_conversation_page_shows_every_fact_of_a_message(api: Api) -> None:
    ids = seed_conversation(api, api.alice, "Refund", "Where is my refund?")
    sign_in(api, api.alice)
    page = api.client.get(f"/console/conversations/{ids['conversation']}")
    assert page.status_code == 200
    text = page.text
    for fact in ("gpt-4o-mini", "412", "58", "$0.000096", "1,240 ms", "req_123", "inaccurate"):
        assert fact in text, fact
    assert "<strong>3-5 days</strong>" in text
    assert str(ids["answer"]) in text
    assert page.headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP
    assert "'unsafe-inline'" not in CSP
    assert page.headers["x-frame-options"] == "DENY"


HOSTILE = [
    "<script>window.__xss=1;alert(1)</script>",
    '<img src=x onerror="window.__xss=1">',
    "[click me](javascript:window.__xss=1)",
    '<a href="javascript:alert(1)">x</a>',
    '"><svg onload=alert(1)>',
    "\u202egnp.exe",
]


def test_hostile_content_is_escaped_everywhere(api: Api) -> None:
    payload = " ".join(HOSTILE)
    with Ledger(api.url) as ledger:
        conversation = ledger.conversations.create(
            api.alice.user_id, title=payload[:200], metadata={"note": payload}
        )
        message = ledger.messages.append(
            conversation.id, "assistant", payload + "\n\n" + "A" * 300_000, metadata={"x": payload}
        )
        ledger.as_user(api.alice.user_id).feedback.rate(
            message.id, thumb="down", comment=payload[:1000], categories=["<b>x</b>"]
        )
        ledger.audit.record("test.hostile", description=payload[:500], metadata={"p": payload})
    sign_in(api, api.admin)
    pages = [
        f"/console/conversations/{conversation.id}",
        f"/console/conversations?user={api.alice.user_id}",
        "/console/feedback",
        "/console/audit",
        "/console/search?q=click",
    ]
    for path in pages:
        text = api.client.get(path).text
        tags = _Tags()
        tags.feed(text)
        assert tags.scripts == [
            "/console/static/vendor/chartjs/chart.umd.min.js",
            "/console/static/console.js",
        ], path
        assert not tags.handlers, (path, tags.handlers[:3])
        assert not [url for url in tags.links if not url.startswith(("/", "#", "http"))], path
        assert "svg" not in tags.names, path
        assert "&lt;script&gt;window.__xss=1" in text, path
        assert "\u202e" not in text, path  # the override is shown as a code, not obeyed
        assert "[U+202E]" in text, path


class _Tags(HTMLParser):
    """The elements of a page: script sources, event-handler attributes, link targets."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.handlers: list[tuple[str, str]] = []
        self.links: list[str] = []
        self.names: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name in ("href", "src", "action") and value is not None and tag != "script":
                self.links.append(value.strip())
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))


def test_every_page_renders_for_an_admin(api: Api) -> None:
    ids = seed_conversation(api, api.alice, "Refund", "Where is my refund?")
    with Ledger(api.url) as ledger:
        ledger.tokens.credit(100, user_id=api.alice.user_id, reason="welcome")
        ledger.product_feedback.submit("Maya", issues="PDF export loses code blocks")
    sign_in(api, api.admin)
    alice = api.alice.user_id
    expectations = {
        f"/console/conversations?user={alice}": "Refund",
        f"/console/conversations/{ids['conversation']}": "Where is my refund?",
        "/console/feedback": "It is 30 days.",
        "/console/feedback?thumb=up": "No ratings match",
        "/console/feedback?category=inaccurate&model=gpt-4o-mini": "It is 30 days.",
        "/console/feedback/forms": "PDF export loses code blocks",
        "/console/usage": "0.000096",
        f"/console/usage?user={alice}": "welcome",
        "/console/audit?verify=1": "Chain intact",
        "/console/keys": api.alice.secret.split("_")[1][:6],
        "/console/users": "Alice",
        f"/console/users/{alice}": "Type the user",
    }
    for path, expected in expectations.items():
        answer = api.client.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert expected in answer.text, path
    assert api.client.get("/console/usage?since=yesterday").status_code == 400


def test_admin_creates_and_revokes_keys_and_erases_a_user(api: Api) -> None:
    sign_in(api, api.admin)
    token = csrf(api, "/console/keys")
    created = api.client.post(
        "/console/keys", data={"csrf_token": token, "user_id": api.bob.user_id, "name": "ci"}
    )
    assert created.status_code == 200
    secret = re.search(r'class="secret-value">([^<]+)<', created.text)
    assert secret is not None
    assert (
        api.call(
            None, "GET", "/v1/me", headers={"Authorization": f"Bearer {secret.group(1)}"}
        ).status_code
        == 200
    )
    assert secret.group(1) not in api.client.get("/console/keys").text  # shown once
    answer = api.client.post(
        f"/console/keys/{api.bob.key_id}/revoke", data={"csrf_token": token}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert api.call(api.bob, "GET", "/v1/me").status_code == 401

    seed_conversation(api, api.alice, "Refund", "Where is my refund?")
    page = api.client.get(f"/console/users/{api.alice.user_id}")
    assert "2 messages row" in page.text or "2 messages rows" in page.text
    refused = api.client.post(
        f"/console/users/{api.alice.user_id}/erase", data={"csrf_token": token, "confirm": "yes"}
    )
    assert refused.status_code == 400
    export = api.client.post(
        f"/console/users/{api.alice.user_id}/export", data={"csrf_token": token}
    )
    assert export.status_code == 200
    assert "Where is my refund?" in export.text
    erased = api.client.post(
        f"/console/users/{api.alice.user_id}/erase",
        data={"csrf_token": token, "confirm": api.alice.user_id},
    )
    assert erased.status_code == 200
    assert "User erased" in erased.text
    assert api.client.get(f"/console/users/{api.alice.user_id}").status_code == 404


def test_docs_are_served_from_the_package(api: Api) -> None:
    for path in ("/docs", "/redoc"):
        page = api.client.get(path)
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources
        assert all(source.startswith("/") for source in sources), sources
        for source in sources:
            assert api.client.get(source).status_code == 200, source
    assert "fonts.googleapis" not in api.client.get("/redoc").text
    home = api.client.get("/")
    assert 'href="/console/conversations"' in home.text


def test_every_request_body_has_a_realistic_example(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            examples = body["content"]["application/json"].get("examples")
            assert examples, f"{method} {path} has no example"
            for name, example in examples.items():
                if "charge" in example["value"]:
                    assert "charg" in name + example["summary"].lower(), (path, name)
    message = document["paths"]["/v1/conversations/{conversation_id}/messages"]["post"]
    values = message["requestBody"]["content"]["application/json"]["examples"]
    assert values["user"]["value"]["content"].startswith("I was charged twice")


def test_a_page_seen_before_shows_new_ratings_and_messages(api: Api) -> None:
    """Rendered messages are kept by version: a new rating or message changes the page."""
    ids = seed_conversation(api, api.alice, "Refund", "Where is my refund?")
    sign_in(api, api.alice)
    path = f"/console/conversations/{ids['conversation']}"
    assert "Much better now" not in api.client.get(path).text
    with Ledger(api.url) as ledger:
        ledger.as_user(api.alice.user_id).feedback.rate(
            ids["answer"], thumb="up", comment="Much better now"
        )
        ledger.messages.append(ids["conversation"], "user", "Thanks, *that* helped")
    text = api.client.get(path).text
    assert "Much better now" in text
    assert "It is 30 days." not in text  # the rating was replaced
    assert "Thanks, <em>that</em> helped" in text


def test_the_audit_page_names_the_first_broken_seq(api: Api) -> None:
    with Ledger(api.url) as ledger:
        events = [
            ledger.audit.record(f"test.event_{n}", description=f"event {n}") for n in range(3)
        ]
    engine = sa.create_engine(api.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                audit_events.update()
                .where(audit_events.c.seq == events[1].seq)
                .values(description="nothing to see here")
            )
    finally:
        engine.dispose()
    sign_in(api, api.admin)
    page = api.client.get("/console/audit?verify=1")
    assert page.status_code == 200
    assert f"Chain broken at seq {events[1].seq} (edited)" in page.text
    assert "nothing to see here" in page.text


def test_the_request_examples_are_valid_bodies() -> None:
    """Each example validates against its request model (what the route would accept)."""
    for name, examples in EXAMPLES.items():
        model = getattr(models, name)
        for example in examples.values():
            model.model_validate(example["value"])


def test_pages_follow_their_cursors(api: Api) -> None:
    with Ledger(api.url) as ledger:
        chat = ledger.conversations.create(api.alice.user_id, title="Long chat")
        for n in range(1, 6):
            ledger.messages.append(chat.id, "user", f"message number {n}")
        for n in range(3):
            ledger.conversations.create(api.alice.user_id, title=f"Other chat {n}")
    sign_in(api, api.alice)
    seen: list[str] = []
    path: str | None = f"/console/conversations/{chat.id}?limit=2"
    while path is not None:
        text = api.client.get(path).text
        seen += re.findall(r"message number (\d)", text)
        found = re.search(r'<a href="([^"]+)" rel="next">', text)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == ["1", "2", "3", "4", "5"]
    titles: list[str] = []
    path = "/console/conversations?limit=2"
    while path is not None:
        text = api.client.get(path).text
        titles += re.findall(r"<bdi>((?:Other|Long) chat[^<]*)</bdi>", text)
        found = re.search(r'<a href="([^"]+)" rel="next">', text)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert sorted(titles) == ["Long chat", "Other chat 0", "Other chat 1", "Other chat 2"]
    assert len(titles) == 4


def _links(text: str, css_class: str) -> list[str]:
    return [
        found.replace("&amp;", "&")
        for found in re.findall(rf'<a class="{css_class}" href="([^"]+)"', text)
    ]


def test_the_conversation_page_shows_one_branch_with_its_siblings(api: Api) -> None:
    """The active path by default, "< 2 / 2 >" where a message has other versions, another
    branch on demand (without moving the active leaf), and the branches listed."""
    with Ledger(api.url) as ledger:
        chat = ledger.conversations.create(api.alice.user_id, title="Lisbon")
        first_q = ledger.messages.append(chat.id, "user", "Plan three days in Lisbon.")
        first_a = ledger.messages.append(chat.id, "assistant", "Day 1: Alfama")
        again = ledger.trees.regenerate(first_a.id, "Day 1: Belem")
        edited = ledger.trees.edit(first_q.id, "Plan four days in Lisbon.")
        last = ledger.messages.append(chat.id, "assistant", "Day 1: Sintra")
    sign_in(api, api.alice)
    path = f"/console/conversations/{chat.id}"
    text = api.client.get(path).text
    assert "Plan four days" in text
    assert "Day 1: Sintra" in text
    for elsewhere in ("Plan three days in Lisbon.</p>", "Day 1: Alfama</p>", "Day 1: Belem</p>"):
        assert elsewhere not in text  # other branches are not listed in seq order any more
    assert "2 / 2" in text
    assert "5 on 3 branches; 2 on the active path" in text
    assert "Day 1: Alfama" in text  # in the list of branches (its leaf's excerpt)
    # "<" on the edited question: the branch through the first question, down to its
    # newest leaf (the regenerated answer).
    back = f"/console/conversations/{chat.id}?at={first_q.id}#m-{first_q.id}"
    assert f'<a href="{back.replace("&", "&amp;")}" aria-label="previous branch">' in text
    text = api.client.get(back.split("#")[0]).text
    assert "Plan three days in Lisbon." in text
    assert "Day 1: Belem" in text
    assert "Day 1: Sintra</p>" not in text
    assert "another branch, not the active path" in text
    assert f"?at={first_a.id}#m-{first_a.id}" in text  # "<" on the regenerated answer
    text = api.client.get(f"{path}?at={first_a.id}").text
    assert "Day 1: Alfama</p>" in text
    assert "1 / 2" in text
    with Ledger(api.url) as ledger:  # looking moved nothing
        assert [m.id for m in ledger.trees.path(chat.id)] == [edited.id, last.id]
    assert again.id != last.id
    # A message of another conversation, or no id, is a 404 / 400.
    assert api.client.get(f"{path}?at={uuid.uuid4()}").status_code == 404
    assert api.client.get(f"{path}?at=nope").status_code == 400


def test_a_long_branch_is_paged_and_a_message_opens_at_its_page(api: Api) -> None:
    with Ledger(api.url) as ledger:
        chat = ledger.conversations.create(api.alice.user_id, title="Long")
        sent = [ledger.messages.append(chat.id, "user", f"turn {n:02d}") for n in range(7)]
        other = ledger.trees.edit(sent[5].id, "turn 05 again")
    sign_in(api, api.alice)
    text = api.client.get(f"/console/conversations/{chat.id}?limit=3&at={sent[4].id}").text
    # sent[4] is on the active path: 00 to 04, then the edit of 05.
    assert re.findall(r"turn (\d\d)</p>", text) == ["03", "04"]
    assert "turn 05 again" in text
    assert "messages 4\u20136 of 6 on this branch" in text
    earlier = re.search(r'<a href="([^"]+)" rel="prev">', text)
    assert earlier is not None
    text = api.client.get(earlier.group(1).replace("&amp;", "&")).text
    assert re.findall(r"turn (\d\d)</p>", text) == ["00", "01", "02"]
    # The active path ends with the edit; the old branch is 7 long.
    text = api.client.get(f"/console/conversations/{chat.id}?limit=3&at={sent[6].id}").text
    assert re.findall(r"turn (\d\d)</p>", text) == ["06"]
    assert "of 7 on this branch" in text
    text = api.client.get(f"/console/conversations/{chat.id}?limit=3&from=3").text
    assert "turn 05 again" in text
    assert other.seq == 8


def test_streaming_and_cut_short_replies_are_shown_as_such(api: Api) -> None:
    with Ledger(api.url) as ledger:
        chat = ledger.conversations.create(api.alice.user_id, title="Streams")
        ledger.messages.append(chat.id, "user", "Write a haiku")
        live = ledger.streams.begin(chat.id, model="gpt-x")
        ledger.streams.delta(live.id, 0, "Columns of small ")
    sign_in(api, api.alice)
    path = f"/console/conversations/{chat.id}"
    text = api.client.get(path).text
    assert "streaming…" in text
    assert "Columns of small " in text
    with Ledger(api.url) as ledger:
        ledger.streams.delta(live.id, 1, "debts")
    assert "Columns of small debts" in api.client.get(path).text  # a new version
    with Ledger(api.url) as ledger:
        ledger.streams.abort(live.id, "the user pressed stop")
        failed = ledger.streams.begin(chat.id)
        ledger.streams.abort(failed.id, "provider error 529", failed=True)
    text = api.client.get(path).text
    assert "streaming…" not in text
    assert '<span class="state state-incomplete">incomplete</span>' in text
    assert "the user pressed stop" in text
    assert "Columns of small debts" in text
    assert '<span class="state state-failed">failed</span>' in text
    assert "provider error 529" in text
    with Ledger(api.url) as ledger:
        done = ledger.streams.begin(chat.id)
        ledger.streams.finish(done.id, text="All *done*")
    text = api.client.get(path).text
    assert "All <em>done</em>" in text


def test_search_finds_what_the_viewer_may_see(api: Api) -> None:
    alice = seed_conversation(
        api, api.alice, "Alice's refund", "Where is my refund for order 4417?"
    )
    bob = seed_conversation(api, api.bob, "Bob's refund", "Refund my order 9981 please")
    sign_in(api, api.alice)
    text = api.client.get("/console/search?q=refund").text
    assert "<mark>refund</mark>" in text.lower()
    assert "4417" in text
    assert "9981" not in text
    assert f"?at={alice['question']}#m-{alice['question']}" in text
    assert "Alice&#39;s <mark>refund</mark>" in text  # a title hit
    # A user cannot widen the scope with user=.
    assert "9981" not in api.client.get(f"/console/search?q=refund&user={api.bob.user_id}").text
    # Bob's conversation, named as a filter, finds nothing for Alice.
    scoped = f"/console/search?q=refund&conversation={bob['conversation']}"
    assert "9981" not in api.client.get(scoped).text
    answer = api.client.get("/console/search?q=-refund")
    assert answer.status_code == 400
    assert "query" in answer.text
    text = api.client.get("/console/search?q=the").text
    assert "Not searched" in text
    assert "No message matches." in text
    sign_in(api, api.admin)
    text = api.client.get("/console/search?q=refund").text
    assert "4417" in text
    assert "9981" in text
    text = api.client.get(f"/console/search?q=refund&user={api.bob.user_id}").text
    assert "4417" not in text
    assert "9981" in text
    text = api.client.get(f"/console/search?q=refund&conversation={alice['conversation']}").text
    assert "4417" in text
    assert "9981" not in text


def test_tool_calls_are_shown_with_their_state(api: Api) -> None:
    """An assistant message shows the calls it asked for and their state; the ``tool``
    message the call it answers; answering a call changes the asking message's fragment."""
    with Ledger(api.url) as ledger:
        chat = ledger.conversations.create(api.alice.user_id, title="Tools")
        ledger.messages.append(chat.id, "user", "Where is order A-1?")
        call = {"id": "call_a1", "name": "find_order", "arguments": {"order": "A-1"}}
        ledger.messages.append(chat.id, "assistant", "Looking it up.", tool_calls=[call])
    sign_in(api, api.alice)
    path = f"/console/conversations/{chat.id}"
    text = api.client.get(path).text
    assert "<code>find_order</code>" in text
    assert '<span class="tool-status tool-pending">pending</span>' in text
    with Ledger(api.url) as ledger:
        ledger.messages.append(
            chat.id, "tool", '{"status": "shipped"}', tool_call_id="call_a1", tool_latency_ms=42
        )
    text = api.client.get(path).text
    assert '<span class="tool-status tool-pending">pending</span>' not in text
    assert text.count('<span class="tool-status tool-success">success</span>') == 2
    assert "answers: <code>find_order</code>" in text


def test_hidden_and_erased_messages_are_marked(api: Api) -> None:
    """The console shows the whole path; a hidden message says so, an erased one too (its
    content is gone), and the mark follows a change (the fragment's version)."""
    with Ledger(api.url) as ledger:
        chat = ledger.conversations.create(api.alice.user_id, title="Marks")
        secret = ledger.messages.append(chat.id, "user", "My card is 4111 1111 1111 1111")
        ledger.messages.append(chat.id, "assistant", "Please don't share that.")
    sign_in(api, api.alice)
    path = f"/console/conversations/{chat.id}"
    assert "state-hidden" not in api.client.get(path).text
    with Ledger(api.url) as ledger:
        ledger.messages.hide(secret.id, by=api.alice.user_id)
    text = api.client.get(path).text
    assert '<span class="state state-hidden"' in text
    with Ledger(api.url) as ledger:
        ledger.messages.erase(secret.id, by=api.alice.user_id)
    text = api.client.get(path).text
    assert '<span class="state state-erased"' in text
    assert "4111" not in text
