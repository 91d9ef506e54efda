"""A real headless Chromium for the console's tests: Debian's ``chromium`` driven through
Debian's ``chromium-driver`` with Selenium (no browser or driver is ever downloaded).

``make test`` installs both packages when they are missing and sets PLINTH_REQUIRE_BROWSER=1,
so there a missing browser fails the tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("PLINTH_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PLINTH_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


def browser_missing() -> str | None:
    """Why no browser can run here (None: it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError as e:
        return f"selenium is not installed (pip install -e '.[test]'): {e}"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.exists(path) or shutil.which(path)):
            return f"{path} is missing (apt-get install {package})"
    return None


def require_browser() -> None:
    """Skip (or, with PLINTH_REQUIRE_BROWSER=1, fail) when no browser can run."""
    why = browser_missing()
    if why is None:
        return
    if os.environ.get("PLINTH_REQUIRE_BROWSER"):
        raise RuntimeError(f"PLINTH_REQUIRE_BROWSER is set but the console's browser tests cannot run: {why}")
    pytest.skip(f"no headless Chromium here: {why}")


def start_browser(width: int = 1280, height: int = 900) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--lang=en-US",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


def browser_fixture() -> Iterator[Any]:
    require_browser()
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The browser console's errors since the last call (SEVERE entries: script errors, failed
    loads, CSP violations). Reading the log empties it."""
    return [f"{e.get('source', '')}: {e.get('message', '')}" for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # an element not there yet, a stale one: poll again
            last = e
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def open_page(driver: Any, url: str) -> None:
    """Load ``url`` and wait until the page's scripts ran (document complete)."""
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete", what=f"{url} to load")
