"""Regenerate docs/console/*.png: every console page, in Debian's headless Chromium, over the
seeded demo database the browser tests use (tests/server/_console_site.py).

    make screenshots
    .venv/bin/python tools/console_screenshots.py [--output docs/console]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server._console_site import chromium, forget_cookies, running_site, sign_in  # noqa: E402

#: The tallest screenshot, in CSS pixels (long pages are cut there).
MAX_HEIGHT = 2000


def main() -> None:
    """Take the screenshots."""
    parser = argparse.ArgumentParser(description="Regenerate the console's screenshots.")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    with running_site() as site, chromium(width=1280, height=800) as driver:

        def shoot(name: str, path: str) -> None:
            driver.set_window_size(1280, 800)
            driver.get(site.base + path)
            driver.execute_script("document.activeElement && document.activeElement.blur()")
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1280, min(int(height) + 140, MAX_HEIGHT))
            driver.get(site.base + path)
            target = args.output / f"{name}.png"
            driver.save_screenshot(str(target))
            print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")

        forget_cookies(driver, site)
        shoot("sign-in", "/console/sign-in")
        sign_in(driver, site, "admin")
        alice = site.ids["alice"]
        shoot("conversations", f"/console/conversations?user={alice}")
        shoot("conversation", f"/console/conversations/{site.ids['refund']}")
        shoot(
            "branch",
            f"/console/conversations/{site.ids['refund']}?at={site.ids['regenerated']}",
        )
        shoot("streaming", f"/console/conversations/{site.ids['streaming']}")
        shoot("search", f"/console/search?q=refund&user={alice}")
        shoot("hostile", f"/console/conversations/{site.ids['hostile']}")
        shoot("feedback", "/console/feedback")
        shoot("forms", "/console/feedback/forms")
        shoot("usage", "/console/usage")
        shoot("usage-user", f"/console/usage?user={alice}")
        shoot("audit", "/console/audit?verify=1")
        shoot("keys", "/console/keys")
        shoot("users", "/console/users")
        shoot("user", f"/console/users/{alice}")


if __name__ == "__main__":
    main()
