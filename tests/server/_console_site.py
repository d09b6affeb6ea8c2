"""A console site for browsers: a seeded SQLite database served by uvicorn on a free loopback
port, and Debian's Chromium driven by Selenium. Used by test_console_browser.py and by
``make screenshots`` (tools/console_screenshots.py).

The seed holds what the pages show: two users with conversations (one full of hostile
payloads), ratings, citations, usage over several days and models, token entries, product
feedback and audit events.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from chatledger import Ledger
from chatledger.records import Role
from chatledger.server import ServerSettings, create_app
from chatledger.server.bootstrap import ensure_admin_key

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Hostile strings put in every user-controlled field the console shows.
HOSTILE = (
    "<script>window.__xss='script'</script>",
    "<img src=x onerror=\"window.__xss='onerror'\">",
    "[click me](javascript:window.__xss='link')",
    "<a href=\"javascript:window.__xss='a'\">a link</a>",
    '"><svg onload="window.__xss=\'svg\'">',
    "![tracker](http://tracker.invalid/pixel.png)",
    "\u202eRTL override: gnp.exe",
)
PAYLOAD = "\n\n".join(HOSTILE)


@dataclass
class Site:
    """A running console: its base URL, database URL and the seeded accounts' keys and ids."""

    base: str
    url: str
    keys: dict[str, str]
    ids: dict[str, Any]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def seed(url: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The demo data; the keys' secrets and the ids tests need."""
    keys: dict[str, str] = {}
    ids: dict[str, Any] = {}
    with Ledger(url) as ledger:
        admin = ensure_admin_key(ledger)
        assert admin is not None
        keys["admin"] = admin.secret
        alice = ledger.users.create(external_id="alice", display_name="Alice Martin")
        bob = ledger.users.create(external_id="bob", display_name="Bob Chen")
        ids["alice"], ids["bob"] = alice.id, bob.id
        keys["alice"] = ledger.api_keys.create(alice.id, name="alice laptop").secret
        keys["bob"] = ledger.api_keys.create(bob.id, name="bob laptop").secret
        ledger.tokens.credit(1000, user_id=alice.id, reason="starter pack")
        ledger.tokens.debit(40, user_id=alice.id, reason="contract summary")
        scope = ledger.as_user(alice.id)
        refund = ledger.conversations.create(alice.id, title="Refund for a double charge")
        ids["refund"] = refund.id
        turns: list[tuple[Role, str, str | None]] = [
            ("user", "I was charged twice for order 4417. Can you refund one?", None),
            (
                "assistant",
                "I'm sorry about that. I can see **two charges of $24.90**:\n\n"
                "| date | amount |\n|---|---|\n| Mar 3 | $24.90 |\n| Mar 3 | $24.90 |\n\n"
                "I've refunded the duplicate; it reaches your card in 3-5 business days.",
                "gpt-4o-mini",
            ),
            ("user", "How long is the refund window in general?", None),
            ("assistant", "Refunds can be requested within **14 days**.", "claude-3-5-sonnet"),
        ]
        for role, content, model in turns:
            message = ledger.messages.append(
                refund.id,
                role,
                content,
                model=model,
                input_tokens=412 if model else None,
                output_tokens=58 if model else None,
                cost=Decimal("0.000096") if model else None,
                latency_ms=1240 if model else None,
                request_id="req_01HQ3V8M7D4X" if model else None,
            )
            ids.setdefault("answers", []).append(message.id)
        first, second = ids["answers"][1], ids["answers"][3]
        ledger.citations.add(
            first,
            url="https://help.example.com/billing/refunds",
            title="Refunds and duplicate charges",
            snippet="Duplicate charges are refunded within 3-5 business days.",
            rank=1,
        )
        scope.feedback.rate(first, thumb="up", comment="Quick and clear.")
        scope.feedback.rate(
            second, thumb="down", categories=["inaccurate"], comment="The window is 30 days."
        )
        # A regenerated answer (a second branch), the original kept active: "1 / 2".
        regenerated = ledger.trees.regenerate(
            second,
            "Refunds can be requested within **30 days** of the charge.",
            model="gpt-4o",
            input_tokens=398,
            output_tokens=21,
            cost=Decimal("0.000171"),
            latency_ms=980,
        )
        ids["regenerated"] = regenerated.id
        ledger.trees.switch(refund.id, second)
        # A reply still being written, and one cut short.
        live = ledger.conversations.create(alice.id, title="Streaming a long answer")
        ids["streaming"] = live.id
        ledger.messages.append(live.id, "user", "Summarise the contract in plain words.")
        stopped = ledger.streams.begin(live.id, model="gpt-4o-mini")
        ledger.streams.delta(stopped.id, 0, "The contract runs for 12 months and ")
        ledger.streams.abort(stopped.id, "the user pressed stop")
        ledger.messages.append(live.id, "user", "Go on, please.")
        writing = ledger.streams.begin(live.id, model="gpt-4o-mini", lease_seconds=3600)
        ledger.streams.delta(writing.id, 0, "Either side may end it with 30 days' notice; ")
        hostile = ledger.conversations.create(
            alice.id, title=HOSTILE[0] + HOSTILE[4], metadata={"note": PAYLOAD}
        )
        ids["hostile"] = hostile.id
        answer = ledger.messages.append(
            hostile.id,
            "assistant",
            PAYLOAD + "\n\n" + "x" * 120_000,
            model=HOSTILE[1][:100],
            metadata={"payload": PAYLOAD},
        )
        ledger.citations.add(answer.id, url="https://example.com/ok", title=HOSTILE[0])
        scope.feedback.rate(answer.id, thumb="down", categories=[HOSTILE[0]], comment=PAYLOAD)
        bobs = ledger.conversations.create(bob.id, title="Bob's private plans")
        ids["bobs"] = bobs.id
        ledger.messages.append(bobs.id, "user", "Bob's secret question")
        now = datetime.now(UTC)
        ledger.messages.append_many(
            bobs.id,
            [
                {
                    "role": "assistant",
                    "content": f"Daily report {day} by {model}",
                    "model": model,
                    "input_tokens": 900 + 150 * day,
                    "output_tokens": 300 + 40 * day,
                    "cost": Decimal(cost) * (day + 1),
                    "latency_ms": 800,
                    "created_at": now - timedelta(days=6 - day),
                }
                for day in range(7)
                for model, cost in (("gpt-4o-mini", "0.0021"), ("claude-3-5-sonnet", "0.0183"))
            ],
        )
        ledger.product_feedback.submit(
            "Maya Lopez",
            agent_type="human",
            issues="Exporting a chat to PDF loses the code blocks.",
            feature_requests=PAYLOAD[:1500],
            usability_rating=8,
        )
        ledger.audit.record(
            "conversation.escalated",
            user_id=alice.id,
            description=PAYLOAD[:500],
            metadata={"queue": "billing", "note": PAYLOAD},
        )
    return keys, ids


@contextlib.contextmanager
def running_site() -> Iterator[Site]:
    """A seeded database served on a free loopback port until the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="chatledger-console-"))
    url = f"sqlite:///{folder / 'console.db'}"
    try:
        keys, ids = seed(url)
        port = _free_port()
        app = create_app(url, settings=ServerSettings(purge_interval=0))
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the console server did not start")
            time.sleep(0.05)
        try:
            yield Site(f"http://127.0.0.1:{port}", url, keys, ids)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """Headless Chromium (Debian's) with a fresh profile and its network log recorded."""
    profile = tempfile.mkdtemp(prefix="chatledger-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--disable-default-apps",
        "--disable-extensions",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def forget_cookies(driver: webdriver.Chrome, site: Site) -> None:
    """Drop the browser's console cookies (WebDriver deletes the cookies the current page
    sees, and they are scoped to /console)."""
    driver.get(f"{site.base}/console/sign-in")
    driver.delete_all_cookies()


def sign_in(driver: webdriver.Chrome, site: Site, who: str) -> None:
    """Sign ``who`` in through the form (signing out whoever was signed in)."""
    forget_cookies(driver, site)
    driver.get(f"{site.base}/console/sign-in")
    field = driver.find_element("name", "api_key")
    field.send_keys(site.keys[who])
    field.submit()
    deadline = time.monotonic() + 10
    while "/console/sign-in" in driver.current_url:
        if time.monotonic() > deadline:
            raise AssertionError("sign-in did not leave the form")
        time.sleep(0.05)
