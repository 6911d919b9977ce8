"""Headless Chromium for the HTML tests: Debian's chromium, as ``make chromium`` installs it.

``make test`` sets UPCALL_REQUIRE_CAFFE=1, under which a missing browser fails a test instead
of skipping it (as for real Caffe, see conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Marks every <img> with its decoded size once the page has loaded: 0x0 is a broken image.
MARK_IMAGES = """<script>
window.addEventListener("load", () => {
  for (const img of document.images)
    img.setAttribute("data-loaded", img.naturalWidth + "x" + img.naturalHeight);
});
</script>"""


@dataclass(frozen=True)
class ChromiumRun:
    dom: str  # the DOM after load (images marked, for a file)
    console: list[str]  # the page's console messages
    stderr: str


def require_chromium() -> None:
    """Skip the test without chromium, or fail it under UPCALL_REQUIRE_CAFFE=1."""
    if shutil.which("chromium") is None:
        if os.environ.get("UPCALL_REQUIRE_CAFFE") == "1":
            pytest.fail("chromium is missing: run `bash scripts/install-chromium.sh`")
        pytest.skip("needs Debian's chromium (bash scripts/install-chromium.sh)")


def _chromium(target: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run(
        ["chromium", "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
         "--v=0", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, target],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


def run_chromium(
    target: str | Path, tmp_path: Path, *, screenshot: Path | None = None, size=(1200, 1600)
) -> ChromiumRun:
    """Load ``target`` (a URL, or an HTML file), dump its DOM and optionally screenshot it.

    A file is loaded from a copy with :data:`MARK_IMAGES` appended, so the DOM tells whether
    each image decoded; the screenshot is taken of the file itself.
    """
    require_chromium()
    page = str(target)
    if isinstance(target, Path):
        marked = tmp_path / f"marked-{target.name}"
        marked.write_text(target.read_text(encoding="utf-8") + MARK_IMAGES, encoding="utf-8")
        page = marked.as_uri()
    run = _chromium(page, tmp_path / "profile", "--dump-dom")
    stderr = run.stderr
    if screenshot is not None:
        shot_target = target.as_uri() if isinstance(target, Path) else page
        shot = _chromium(
            shot_target,
            tmp_path / "profile-shot",
            f"--screenshot={screenshot}",
            f"--window-size={size[0]},{size[1]}",
            "--hide-scrollbars",
        )
        stderr += shot.stderr
        assert screenshot.exists(), shot.stderr[-2000:]
    return ChromiumRun(run.stdout, _console(stderr), stderr)
