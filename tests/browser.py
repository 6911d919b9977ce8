"""A real browser for the page tests: Selenium driving Debian's chromium through Debian's
chromium-driver (``bash scripts/install-chromium.sh`` installs both), headless.

Skipped without them, failed instead under UPCALL_REQUIRE_CAFFE=1 (as :mod:`tests.chromium`).
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest

from tests.chromium import require_chromium

DRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver


def require_driver() -> None:
    """Selenium and chromium-driver, as require_chromium: skip, or fail under the switch."""
    require_chromium()
    missing = shutil.which("chromedriver") is None
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = True
    if missing:
        if os.environ.get("UPCALL_REQUIRE_CAFFE") == "1":
            pytest.fail("selenium or chromedriver is missing: bash scripts/install-chromium.sh")
        pytest.skip("needs selenium and Debian's chromium-driver (scripts/install-chromium.sh)")


def chrome(width: int = 1280, height: int = 1000):
    """A headless Chromium WebDriver keeping the pages' console messages (``get_log``);
    media plays without a user gesture."""
    require_driver()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars",
                "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.implicitly_wait(0)
    return driver


def screenshot(driver, path: Path, *, width: int = 1280, max_height: int = 2400) -> None:
    """The whole page, ``width`` px wide (Chrome DevTools' capture beyond the viewport)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": width, "height": min(size["height"], max_height), "scale": 1}
    png = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(png["data"]))


def shots_folder(tmp_path: Path) -> Path:
    """$UPCALL_SCREENSHOTS (docs/screenshots/ holds the README's) or a folder under tmp_path."""
    shots = Path(os.environ.get("UPCALL_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots
