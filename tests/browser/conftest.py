"""The reports opened in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by selenium.

``browser`` (one Chromium for the session) opens a report.html and checks what a reader
would notice: no console error, no request leaving the file, every image decoded; it hovers,
clicks and types like a reader, and writes a full-page screenshot under the test's
``tmp_path`` and, when the environment variable ``POSEMB_SCREENSHOTS`` names a folder, there
too, for a person to look at.

Without selenium, chromium or chromedriver the tests skip, naming what is missing; with
``CI=true`` they fail instead (``.ci/run`` installs the browser), so CI cannot pass without
running them.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1200, 900)


def _find() -> tuple[str | None, str, str]:
    """(what is missing or None, the browser, the driver)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')", "", ""
    browser = next((p for name in BROWSERS if (p := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None:
        return "no chromium on PATH (apt-get install chromium chromium-driver)", "", ""
    if driver is None:
        return "no chromedriver on PATH (apt-get install chromium-driver)", "", ""
    return None, browser, driver


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, and the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"no browser for the report tests: {reason}")


class Browser:
    """One headless Chromium, with what the tests do to a report."""

    def __init__(self, driver) -> None:
        self.driver = driver

    # -- loading and the page-wide checks
    def open(self, page: Path) -> None:
        """Load ``page`` (earlier logs dropped) and wait for every explorer to be drawn."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get_log("browser")
        self.driver.get_log("performance")
        self.driver.get(page.resolve().as_uri())
        WebDriverWait(self.driver, 20).until(
            lambda d: d.execute_script(
                "return document.readyState === 'complete' && Array.from(document.querySelector"
                "All('[data-posemb-explorer]')).every(e => e.dataset.ready === 'true')"
            )
        )

    def problems(self, page: Path) -> dict[str, list]:
        """What went wrong in the page loaded last: console errors, requests to anything but
        the file and data URIs, images that did not decode."""
        errors = [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
        own = page.resolve().as_uri()
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
            elif message["method"] == "Network.webSocketCreated":
                urls.append(message["params"]["url"])
        urls += self.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        outside = sorted({u for u in urls if not u.startswith("data:") and u.split("#")[0] != own})
        images = self.driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
        )
        broken = [alt for alt, complete, width in images if not (complete and width > 0)]
        return {"console errors": errors, "requests": outside, "broken images": broken}

    def check(self, page: Path) -> int:
        """Open ``page``, assert it has none of :meth:`problems`; returns its image count."""
        self.open(page)
        found = self.problems(page)
        assert found == {"console errors": [], "requests": [], "broken images": []}, found
        return self.driver.execute_script("return document.images.length")

    def screenshot(self, name: str, tmp_path: Path) -> list[Path]:
        """The whole page as ``name``.png under ``tmp_path`` (and ``$POSEMB_SCREENSHOTS``)."""
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        data = base64.b64decode(shot["data"])
        folders = [tmp_path] + (
            [Path(os.environ["POSEMB_SCREENSHOTS"])] if os.environ.get("POSEMB_SCREENSHOTS") else []
        )
        paths = []
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.png").write_bytes(data)
            paths.append(folder / f"{name}.png")
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
        return paths

    # -- what a reader does
    def role(self, name: str, nth: int = 0):
        """The ``nth`` element with ``data-role=name``."""
        return self.driver.find_elements("css selector", f"[data-role='{name}']")[nth]

    def text(self, name: str) -> str:
        return self.role(name).text

    def hover(self, element, x: float, y: float) -> None:
        """Move the pointer to ``(x, y)`` CSS pixels from the top-left of ``element``'s content
        (inside its border)."""
        from selenium.webdriver.common.action_chains import ActionChains

        w, h, left, top = self.driver.execute_script(
            "const e = arguments[0]; e.scrollIntoView({block: 'center'}); "
            "return [e.clientWidth, e.clientHeight, e.clientLeft, e.clientTop]",
            element,
        )
        border_w, border_h = w + 2 * left, h + 2 * top  # the offsets count from its centre
        dx = math.floor(left + x - border_w / 2)
        dy = math.floor(top + y - border_h / 2)
        ActionChains(self.driver).move_to_element_with_offset(element, dx, dy).perform()

    def click(self) -> None:
        """Click where the pointer is."""
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).click().perform()

    def keys(self, *keys: str, held: str | None = None) -> None:
        """Press ``keys`` on the focused element, with the modifier ``held`` down."""
        from selenium.webdriver.common.action_chains import ActionChains

        chain = ActionChains(self.driver)
        if held:
            chain.key_down(held)
        chain.send_keys(*keys)
        if held:
            chain.key_up(held)
        chain.perform()

    def active_role(self) -> str | None:
        return self.driver.execute_script("return document.activeElement.dataset.role || null")

    def pick(self, name: str, value: str) -> None:
        """Choose ``value`` in the ``<select data-role=name>`` (as a reader would)."""
        from selenium.webdriver.support.ui import Select

        Select(self.role(name)).select_by_value(value)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (skips, or fails under CI=true, without one)."""
    missing, binary, driver_path = _find()
    if missing:
        _unavailable(missing)
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as e:
        _unavailable(f"chromium ({binary}) did not start with {driver_path}: {e.msg}")
    driver.set_page_load_timeout(30)
    yield Browser(driver)
    driver.quit()
