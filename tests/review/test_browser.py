"""``upcall review`` in a real browser: one walk, Selenium driving Debian's chromium.

The real command serves a detect folder over two synthetic recordings. The keys give verdicts
and move; the <audio> element loads a playable WAV at ×1 and ×4; every verdict is in VERIFIED at
once; a reload continues at the first detection without one; two tabs on one detection: the
later verdict wins and its tab shows a warning; the server killed (SIGKILL) mid-review loses
nothing and, restarted, continues; a sample shows its estimates. Screenshots go to
$UPCALL_SCREENSHOTS when set (docs/screenshots/review-*.png are the README's), else tmp_path.
Skipped without the browser or its driver, failed instead under UPCALL_REQUIRE_CAFFE=1.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import chrome, require_driver, screenshot, shots_folder
from tests.review.detections import make_detections
from upcall.review.media import CONTEXT_S

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``upcall review`` as a user runs it, in its own process."""

    def __init__(self, tmp_path: Path, *args: object) -> None:
        self.port, self.log = free_port(), tmp_path / f"server-{time.monotonic_ns()}.log"
        self.args = [str(a) for a in args]
        self.start()

    def start(self) -> None:
        env = dict(os.environ, UPCALL_PROGRESS="off")
        command = [sys.executable, "-m", "upcall", "review", *self.args, "--port", str(self.port)]
        seen = self.log.stat().st_size if self.log.exists() else 0  # an earlier run's lines
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=log, stdout=log)
        end = time.monotonic() + 30
        while "listening on" not in self.log.read_text()[seen:]:
            assert self.proc.poll() is None and time.monotonic() < end, self.log.read_text()
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def browser():
    require_driver()
    driver = chrome()
    yield driver
    driver.quit()


def verdicts(out: Path) -> dict[tuple[str, float], tuple[str, str]]:
    """(recording, begin s to 0.01 s, as the page shows it) -> (Verified, Note) of every row with a verdict, read as text."""
    found = {}
    for path in out.rglob("*.selections.txt"):
        with path.open(newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if row["Verified"] or row["Note"]:
                    rel = path.relative_to(out).as_posix().removesuffix(".selections.txt")
                    found[rel, round(float(row["Begin Time (s)"]), 2)] = (
                        row["Verified"],
                        row["Note"],
                    )
    return found


def test_review_walk(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    dets = make_detections(tmp_path)
    out, shots = tmp_path / "verified", shots_folder(tmp_path)
    server = Server(tmp_path, dets.det, "--out", out)
    d = browser

    def el(css: str):
        return d.find_element(By.CSS_SELECTOR, css)

    def until(check, what: str, timeout: float = 15):
        """``check()``'s first true value; a page being replaced is asked again."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )

        end = time.monotonic() + timeout
        while True:
            try:
                if value := check():
                    return value
            except (NoSuchElementException, StaleElementReferenceException):
                pass
            assert time.monotonic() < end, f"timed out waiting for {what}"
            time.sleep(0.05)

    def at(i: int) -> None:
        until(lambda: d.current_url.endswith(f"/item/{i}") and d.execute_script(
            "return document.readyState") == "complete", f"detection {i + 1}")  # fmt: skip

    def press(key: str) -> None:
        el("body").send_keys(key)

    def shown() -> tuple[str, float]:
        rel = el("#where .rel").text
        begin = float(el("#where").text.split("·")[2].split("–")[0])
        return rel, begin

    def audio(speed: int) -> float:
        """The <audio> element's duration once it can play the WAV at ``speed``."""
        return until(lambda: d.execute_script(
            "const a = document.getElementById('audio');"
            "return a.readyState >= 3 && a.src.endsWith(arguments[0]) && !a.error && a.duration;",
            f"speed={speed}"), f"the WAV at ×{speed}")  # fmt: skip

    try:
        d.get(server.url + "/")
        at(0)
        # the spectrogram decoded, the audio playable at ×1 and (key 4) ×4
        until(lambda: d.execute_script("return document.getElementById('spectrogram')"
                                       ".naturalWidth") == 900, "the spectrogram")  # fmt: skip
        first = shown()
        row = next(s for s in dets.tables[first[0]] if abs(s.begin_s - first[1]) < 0.01)
        length = row.end_s + CONTEXT_S - max(0.0, row.begin_s - CONTEXT_S)
        assert audio(1) == pytest.approx(length, abs=0.01)
        assert d.execute_script("return document.getElementById('audio').play()"
                                ".then(() => true)") is True  # fmt: skip
        press("4")
        assert audio(4) == pytest.approx(length / 4, abs=0.01)
        assert "on" in el("[data-speed='4']").get_attribute("class")
        screenshot(d, shots / "review-detection.png")
        # y, n: saved at once, on to the next
        press("y")
        at(1)
        second = shown()
        press("n")
        at(2)
        assert verdicts(out) == {first: ("yes", ""), second: ("no", "")}
        # a note (Enter saves it), then u; back with ←: both kept
        third = shown()
        el("#note").send_keys("ship passing?", Keys.ENTER)
        until(lambda: verdicts(out).get(third) == ("", "ship passing?"), "the note")
        el("#note").send_keys(Keys.ESCAPE)
        press("u")
        at(3)
        press(Keys.ARROW_LEFT)
        at(2)
        assert el("#note").get_attribute("value") == "ship passing?"
        assert el("#verdict").text == "unsure"
        assert "3 / 7 verified · yes 1 · no 1 · unsure 1" in el("#progress").text
        press(Keys.ARROW_RIGHT)
        at(3)
        # a reload continues at the first detection without a verdict
        d.get(server.url + "/")
        at(3)
        fourth = shown()
        # two tabs on one detection: the later verdict wins, with a warning in its tab
        tab1 = d.current_window_handle
        d.switch_to.new_window("tab")
        d.get(server.url + "/item/3")
        at(3)
        press("y")
        at(4)
        d.switch_to.window(tab1)
        press("n")
        warning = until(lambda: el("#warning").is_displayed() and el("#warning").text, "warning")
        assert "was yes" in warning and "your no replaced it" in warning
        assert d.current_url.endswith("/item/3")  # stays, so the reviewer reads it
        assert verdicts(out)[fourth] == ("no", "")
        screenshot(d, shots / "review-two-tabs.png")
        # the server killed mid-review: nothing lost; the page says it could not save
        server.kill()
        press("y")
        error = until(lambda: el("#error").is_displayed() and el("#error").text, "the error")
        assert error.startswith("Not saved: the server does not answer")
        saved = verdicts(out)
        assert len(saved) == 4 and saved[fourth] == ("no", "")
        # started again: it continues where it stopped
        server.start()
        d.get(server.url + "/")
        at(4)
        assert "4 / 7 verified" in el("#progress").text
        press("y")
        at(5)
        assert len(verdicts(out)) == 5
    finally:
        server.stop()
    # a sample of the same verdicts: its estimates on the page
    sample = Server(tmp_path, dets.det, "--out", out, "--sample", 5, "--seed", 1)
    try:
        d.get(sample.url + "/")
        until(lambda: d.find_elements(By.CSS_SELECTOR, "#estimates"), "the estimates")
        assert "4 / 5 verified" in el("#progress").text  # the verdicts so far, kept
        press("n")  # the sample's last one: every band now has its estimate
        until(lambda: len(verdicts(out)) == 6, "the last verdict")
        d.get(sample.url + "/item/0")
        assert "Estimated true up-calls among all 7 detections" in el("#true-calls").text
        assert el("#overall td:last-child").text[0].isdigit()  # a precision and its interval
        screenshot(d, shots / "review-sample.png")
    finally:
        sample.stop()
    severe = [m for m in d.get_log("browser") if m["level"] == "SEVERE"
              and "ERR_CONNECTION_REFUSED" not in m["message"]]  # fmt: skip
    assert severe == [], severe
