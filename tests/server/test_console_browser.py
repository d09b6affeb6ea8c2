"""The console in a real browser: Debian's Chromium, headless, driven by Selenium, against a
seeded SQLite database served by uvicorn on a loopback port. One browser and one server for
the module.

Outside CI a machine without chromium/chromium-driver skips these tests with the reason; with
``CI=true`` that is a failure (.ci/run installs the packages).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("selenium")

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By

from ._console_site import (
    CHROMEDRIVER,
    CHROMIUM,
    Site,
    chromium,
    forget_cookies,
    running_site,
    sign_in,
)

pytestmark = pytest.mark.filterwarnings("ignore::chatledger.SQLiteWALResetBugWarning")

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    if os.environ.get("CI"):
        raise RuntimeError(
            f"{CHROMIUM} and {CHROMEDRIVER} are required in CI (.ci/run installs them)"
        )
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)


class Browser:
    """The driver, the site, and every URL the browser requested so far."""

    def __init__(self, driver: Chrome, site: Site) -> None:
        self.driver = driver
        self.site = site
        self.requests: dict[str, str] = {}
        #: Requests the browser stopped before sending (the page's CSP), by id.
        self.blocked: dict[str, str] = {}

    def collect(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message["params"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests[params["requestId"]] = params["request"]["url"]
            elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
                self.blocked[params["requestId"]] = params["blockedReason"]

    def hosts_since(self, start: int) -> set[str | None]:
        """The hosts of the network requests sent (not blocked) after the first ``start``;
        chrome://, data: and blob: URLs are the browser's own, not the network's."""
        self.collect()
        sent = list(self.requests.items())[start:]
        return {
            urlsplit(url).hostname
            for key, url in sent
            if key not in self.blocked and urlsplit(url).scheme in ("http", "https", "ws", "wss")
        }

    def open(self, path: str) -> str:
        """Open a page; its body's text."""
        self.driver.get(self.site.base + path)
        self.collect()
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def wait_for(self, script: str, timeout: float = 30) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = self.driver.execute_script(script)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {script}")
            time.sleep(0.1)

    def no_script_ran(self) -> None:
        with pytest.raises(NoAlertPresentException):
            _ = self.driver.switch_to.alert.text
        assert self.driver.execute_script("return window.__xss === undefined")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with running_site() as site, chromium() as driver:
        yield Browser(driver, site)


def test_sign_in_and_sign_out(browser: Browser) -> None:
    forget_cookies(browser.driver, browser.site)
    browser.open("/console/usage")
    assert "/console/sign-in" in browser.driver.current_url
    sign_in(browser.driver, browser.site, "alice")
    assert "Alice Martin" in browser.open("/console/conversations")
    cookie = browser.driver.get_cookie("chatledger_console")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert browser.driver.execute_script("return document.cookie") == ""
    browser.driver.find_element(By.CSS_SELECTOR, "form.signout button").click()
    browser.wait_for("return location.pathname === '/console/sign-in'")
    assert browser.driver.get_cookie("chatledger_console") is None
    browser.open("/console/conversations")
    assert "/console/sign-in" in browser.driver.current_url


def test_a_wrong_key_is_refused(browser: Browser) -> None:
    forget_cookies(browser.driver, browser.site)
    browser.open("/console/sign-in")
    field = browser.driver.find_element(By.NAME, "api_key")
    field.send_keys("clk_wrong_key")
    field.submit()
    browser.wait_for("return document.querySelector('.error') !== null")
    assert "not valid" in browser.driver.find_element(By.CSS_SELECTOR, ".error").text


def test_every_page_shows_the_seeded_data(browser: Browser) -> None:
    site = browser.site
    sign_in(browser.driver, site, "admin")
    alice, refund = site.ids["alice"], site.ids["refund"]
    pages = {
        f"/console/conversations?user={alice}": ["Refund for a double charge"],
        f"/console/conversations/{refund}": [
            "I was charged twice",
            "gpt-4o-mini",
            "$0.000096",
            "1,240 ms",
            "Refunds and duplicate charges",
            "The window is 30 days.",
        ],
        "/console/feedback": ["The window is 30 days.", "Quick and clear."],
        "/console/feedback/forms": ["PDF loses the code blocks"],
        "/console/usage": ["Top users", "Bob Chen", "claude-3-5-sonnet"],
        f"/console/usage?user={alice}": ["starter pack", "contract summary"],
        "/console/audit": ["conversation.escalated", "api_key.created"],
        "/console/keys": ["alice laptop", "bob laptop"],
        "/console/users": ["Alice Martin", "Bob Chen"],
        f"/console/users/{alice}": ["Type the user's id", "conversations row"],
    }
    for path, expected in pages.items():
        text = browser.open(path)
        for fragment in expected:
            assert fragment in text, (path, fragment)
    # The charts are drawn by the page's own script under the CSP.
    browser.open("/console/usage")
    labels = browser.wait_for(
        "const chart = window.Chart && Chart.getChart(document.getElementById('tokens-by-day'));"
        "return chart ? chart.data.datasets.map(d => d.label) : null"
    )
    assert labels == ["input tokens", "output tokens", "cost ($)"]
    # A rating links to its message in its conversation.
    browser.open("/console/feedback?thumb=down")
    link = browser.driver.find_element(By.CSS_SELECTOR, "a.goto").get_attribute("href")
    assert link is not None
    browser.driver.get(link)
    browser.wait_for("return document.querySelector('li.message:target') !== null")
    # Ids are folded until asked for.
    details = browser.driver.find_element(By.CSS_SELECTOR, "li.message:target details.ids")
    assert details.get_attribute("open") is None


def test_branches_streams_and_search(browser: Browser) -> None:
    site = browser.site
    sign_in(browser.driver, site, "alice")
    text = browser.open(f"/console/conversations/{site.ids['refund']}")
    assert "1 / 2" in text
    assert "within 14 days" in text
    assert "within 30 days of the charge" not in text
    # The next-branch arrow opens the regenerated answer's branch, without moving the active one.
    browser.driver.find_element(By.CSS_SELECTOR, "a[aria-label='next branch']").click()
    browser.wait_for("return document.querySelector('li.message:target') !== null")
    text = str(browser.driver.find_element(By.TAG_NAME, "body").text)
    assert "within 30 days of the charge" in text
    assert "2 / 2" in text
    assert "another branch, not the active path" in text
    text = browser.open(f"/console/conversations/{site.ids['streaming']}")
    assert "streaming…" in text
    assert "Either side may end it" in text
    assert "incomplete" in text
    assert "the user pressed stop" in text
    # The search box: a hit opens its message in its conversation.
    browser.driver.find_element(By.CSS_SELECTOR, "form.search input[name=q]").send_keys(
        "contract\n"
    )
    browser.wait_for("return document.querySelector('li.hit a.goto') !== null")
    assert "Bob" not in str(browser.driver.find_element(By.TAG_NAME, "main").text)
    browser.driver.find_element(By.CSS_SELECTOR, "li.hit a.goto").click()
    browser.wait_for("return document.querySelector('li.message:target') !== null")
    browser.no_script_ran()


def test_the_audit_chain_verifies(browser: Browser) -> None:
    sign_in(browser.driver, browser.site, "admin")
    browser.open("/console/audit")
    browser.driver.find_element(By.LINK_TEXT, "Verify the hash chain").click()
    browser.wait_for("return document.querySelector('.ok, .error.chain') !== null")
    assert "Chain intact" in browser.driver.find_element(By.CSS_SELECTOR, ".verify").text


def test_another_users_pages_are_404(browser: Browser) -> None:
    site = browser.site
    sign_in(browser.driver, site, "bob")
    text = browser.open(f"/console/conversations/{site.ids['refund']}")
    assert "Not found" in text
    assert "charged twice" not in text
    text = browser.open(f"/console/conversations?user={site.ids['alice']}")
    assert "Refund for a double charge" not in text
    assert "Bob's private plans" in text
    assert "Admins only" in browser.open("/console/audit")


def test_csrf_is_refused(browser: Browser) -> None:
    site = browser.site
    sign_in(browser.driver, site, "admin")
    browser.open("/console/keys")
    keys_before = len(browser.driver.find_elements(By.CSS_SELECTOR, "table.keys tbody tr"))
    # A form whose token was tampered with.
    browser.driver.execute_script(
        "document.querySelector('form.create input[name=csrf_token]').value = 'forged';"
    )
    browser.driver.find_element(By.CSS_SELECTOR, "form.create button").click()
    browser.wait_for("return document.title.startsWith('Refused')")
    # A form on another site posting to the console: the cookie is SameSite=Strict and the
    # Origin is foreign, so nothing happens.
    browser.driver.get(
        "data:text/html,<form method=post action='"
        + site.base
        + "/console/keys'><input name=user_id value='"
        + str(site.ids["bob"])
        + "'><button>go</button></form>"
    )
    browser.driver.find_element(By.TAG_NAME, "button").click()
    browser.wait_for("return document.title.startsWith('Refused')")
    browser.open("/console/keys")
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, "table.keys tbody tr")) == keys_before


def test_hostile_content_is_inert(browser: Browser) -> None:
    site = browser.site
    sign_in(browser.driver, site, "admin")
    for path in (
        f"/console/conversations/{site.ids['hostile']}",
        f"/console/conversations?user={site.ids['alice']}",
        "/console/feedback",
        "/console/feedback/forms",
        "/console/usage",
        "/console/audit",
    ):
        text = browser.open(path)
        browser.wait_for("return document.documentElement.dataset.consoleReady === '1'")
        browser.no_script_ran()
        dom = browser.driver.execute_script(
            "return {"
            " scripts: [...document.scripts].map(s => s.src.replace(location.origin, '')),"
            " handlers: [...document.querySelectorAll('*')].flatMap(e =>"
            "   [...e.attributes].filter(a => a.name.startsWith('on')).map(a => a.name)),"
            " js: document.querySelectorAll("
            '   \'[href^="javascript:" i], [src^="javascript:" i]\').length,'
            " svg: document.querySelectorAll('svg').length,"
            " images: document.querySelectorAll('main img').length"
            "}"
        )
        assert dom == {
            "scripts": [
                "/console/static/vendor/chartjs/chart.umd.min.js",
                "/console/static/console.js",
            ],
            "handlers": [],
            "js": 0,
            "svg": 0,
            "images": 0,
        }, path
        assert "<script>window.__xss='script'</script>" in text, path
    # The long message is folded, its full text one click away.
    browser.open(f"/console/conversations/{site.ids['hostile']}")
    fold = browser.driver.find_element(By.CSS_SELECTOR, "details.fold")
    assert fold.get_attribute("open") is None
    fold.find_element(By.TAG_NAME, "summary").click()
    browser.no_script_ran()


def test_api_docs_render_offline(browser: Browser) -> None:
    browser.collect()
    start = len(browser.requests)
    browser.open("/docs")
    browser.wait_for("return document.querySelectorAll('.swagger-ui .opblock').length > 20")
    assert "chatledger" in browser.driver.find_element(By.CSS_SELECTOR, ".info .title").text
    browser.open("/redoc")
    browser.wait_for("return document.querySelector('.api-content h1') !== null")
    assert "chatledger" in browser.driver.find_element(By.CSS_SELECTOR, ".api-content h1").text
    assert browser.hosts_since(start) == {"127.0.0.1"}
    # ReDoc's side menu asks for its logo on a CDN: the docs' CSP stops it in the browser.
    assert set(browser.blocked.values()) <= {"csp"}


def test_no_request_left_localhost(browser: Browser) -> None:
    """Every page, with the hostile conversation (a Markdown image on another host): the
    browser's network log holds loopback requests only."""
    site = browser.site
    browser.collect()
    start = len(browser.requests)
    sign_in(browser.driver, site, "admin")
    for path in (
        f"/console/conversations/{site.ids['hostile']}",
        f"/console/conversations/{site.ids['refund']}",
        "/console/feedback",
        "/console/feedback/forms",
        "/console/usage",
        "/console/audit?verify=1",
        "/console/keys",
        "/console/users",
        f"/console/users/{site.ids['alice']}",
        "/",
    ):
        browser.open(path)
    assert len(browser.requests) - start > 20
    assert browser.hosts_since(start) == {"127.0.0.1"}
