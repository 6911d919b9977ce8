"""The DIGITS pages in a real browser: one end-to-end walk, Selenium driving Debian's chromium
through Debian's chromium-driver (scripts/install-chromium.sh installs both).

Log in, create a dataset and a model through the forms (an inline error first), watch the
training chart fill without a reload, classify one clip and a list, explore the dataset, abort
a job and delete it (each after its confirmation); no console errors on any page. Screenshots go to
$UPCALL_SCREENSHOTS when set (docs/screenshots/ holds the README's), else to tmp_path.
Skipped without the browser or its driver, failed instead under UPCALL_REQUIRE_CAFFE=1.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.browser import chrome, screenshot, shots_folder
from tests.digits_server.test_app import TINY, H, W
from upcall.digits_server.app import make_app


@pytest.fixture
def data(tmp_path) -> Path:
    """40 spectrogram-sized PNGs (whales: a bright up-sweep), lists, labels, and one clip."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(40):
        img = rng.integers(0, 60, (H, W), dtype=np.uint8)
        if i % 2:
            for x in range(W):
                img[40 + x : 46 + x, x] = 250
        Image.fromarray(img).save(tmp_path / f"img{i}.png")
        lines.append(f"img{i}.png {i % 2}\n")
    (tmp_path / "train.txt").write_text("".join(lines[:32]))
    (tmp_path / "val.txt").write_text("".join(lines[32:]))
    (tmp_path / "labels.txt").write_text("not-whale\nwhale\n")
    t = np.arange(4000) / 2000
    sweep = 0.5 * np.sin(2 * np.pi * (100 * t + 50 * t**2)) + 0.05 * rng.standard_normal(4000)
    sf.write(tmp_path / "clip.wav", sweep, 2000, subtype="PCM_16")
    (tmp_path / "list.txt").write_text("img0.png\nimg1.png\n")
    return tmp_path


@pytest.fixture
def browser():
    driver = chrome()
    yield driver
    driver.quit()


@pytest.fixture
def server(data, tmp_path):
    from werkzeug.serving import make_server

    app = make_app(tmp_path / "jobs", data_roots=[data])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    http = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    http.shutdown()
    app.extensions["upcall_digits"].shutdown()


class Walk:
    """The browser, the console messages of every page seen, and the screenshots."""

    def __init__(self, driver, url: str, shots: Path) -> None:
        self.d, self.url, self.shots, self.console = driver, url, shots, []

    def get(self, path: str, *, status: int = 200) -> None:
        self.d.get(self.url + path)
        self.log(status)

    def log(self, status: int = 200) -> None:
        """Keep the page's console errors; an error status the walk expects is no error (the
        browser logs a page answered 400 or 404 as a failed load)."""
        expected = f"the server responded with a status of {status}"
        messages = self.d.get_log("browser")
        self.console += [
            m for m in messages if m["level"] == "SEVERE" and not (
                status != 200 and m["source"] == "network" and expected in m["message"])
        ]  # fmt: skip

    def el(self, css: str):
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, css)

    def fill(self, **fields: str) -> None:
        for name, value in fields.items():
            box = self.el(f"[name={name}]")
            if box.get_attribute("type") != "file":
                box.clear()
            box.send_keys(value)

    def until(self, check, timeout: float = 60, what: str = "", *, status: int = 200):
        """``check()``'s first true value; a page still loading (elements missing or replaced)
        is asked again."""
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )

        end = time.monotonic() + timeout
        while True:
            try:
                if value := check():
                    break
            except (NoSuchElementException, StaleElementReferenceException):
                pass
            assert time.monotonic() < end, f"timed out waiting for {what}"
            time.sleep(0.1)
        self.log(status)
        return value

    def find(self, css: str, what: str, *, status: int = 200) -> list:
        """The elements ``css`` selects once there are some (a submitted form's next page)."""
        return self.until(
            lambda: self.d.find_elements("css selector", css), 30, what, status=status
        )

    def status(self) -> str:
        return self.el("#status").text

    def shot(self, name: str) -> None:
        screenshot(self.d, self.shots / f"{name}.png")

    def confirm(self) -> str:
        alert = self.d.switch_to.alert
        text = alert.text
        alert.accept()
        return text


def test_browser_walk(browser, server, data, tmp_path):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    w = Walk(browser, server, shots_folder(tmp_path))
    # Log in with the keyboard; a new-dataset page first asks for it.
    w.get("/datasets/images/classification/new")
    assert "/login" in browser.current_url
    w.el("#username").send_keys("fred", Keys.ENTER)
    w.until(lambda: "/datasets/images/classification/new" in browser.current_url, 10, "form")
    # The dataset: uploads, grayscale, the spectrograms' own size.
    assert Select(w.el("#resize_channels")).first_selected_option.get_attribute("value") == "1"
    w.fill(resize_width=str(W), resize_height=str(H), dataset_name="whale_sounds",
           textfile_train_images=str(data / "train.txt"), textfile_train_folder=str(data),
           textfile_val_images=str(data / "val.txt"), textfile_val_folder=str(data),
           textfile_labels_file=str(data / "labels.txt"))  # fmt: skip
    w.el("#new-dataset button[type=submit]").click()
    w.until(lambda: "/datasets/2" in browser.current_url, 10, "the dataset page")
    dataset_url = browser.current_url
    w.until(lambda: w.status() == "Done", 60, "the dataset build")  # the page reloads itself
    assert w.el("#counts-train").text.count("16") == 2 and "8 images" in w.el("#counts-val").text
    assert browser.execute_script("return document.getElementById('mean').naturalWidth") == W
    w.shot("dataset")
    w.el("#counts-train a[href*='label=1']").click()
    assert len(w.find("#samples img", "the explore page")) == 16
    w.shot("explore")
    # The model form: an inline error first (no name), then the custom network trains.
    w.get("/models/images/classification/new")
    w.el("input[name=method][value=custom]").click()
    w.el("#custom_network").send_keys(TINY)
    w.fill(train_epochs="10", random_seed="1", model_name="")
    w.el("#new-model button[type=submit]").click()
    w.find("#model_name-errors", "the form again", status=400)  # DIGITS answers it 400
    assert w.el("#model_name-errors").text == "This field is required."
    assert w.el("#custom_network").get_attribute("value").startswith('name: "tiny"')
    w.shot("new-model")
    w.fill(model_name="tiny")
    w.el("#new-model button[type=submit]").click()
    w.until(lambda: "/models/2" in browser.current_url, 10, "the model page")
    browser.execute_script("window.notReloaded = true")
    w.until(lambda: int(w.el("#chart").get_attribute("data-points") or 0) > 0, 60, "a point")
    w.until(lambda: w.el("#chart").get_attribute("data-final") == "1", 60, "the end")
    assert w.status() == "Done" and browser.execute_script("return window.notReloaded")
    assert int(w.el("#chart").get_attribute("data-points")) > 10  # train and val points
    assert "epoch 10" in w.el("#snapshots").text
    w.shot("model")
    model_url = browser.current_url
    # Classify one clip: its spectrogram, as the model sees it, and the two classes.
    w.el("#image_file").send_keys(str(data / "clip.wav"))
    w.el("#classify-one button[type=submit]").click()
    rows = w.find("#predictions tbody tr", "the predictions")
    assert sorted(r.text.split()[0] for r in rows) == ["not-whale", "whale"]
    size = browser.execute_script(
        "const i = document.getElementById('input-image'); return [i.naturalWidth, i.naturalHeight]"
    )
    assert size == [W, H]
    w.shot("classify-one")
    # Classify many: a list of server paths -> a table.
    w.get(model_url.removeprefix(server))
    w.fill(image_list=str(data / "list.txt"), image_folder=str(data))
    w.el("#classify-many button[type=submit]").click()
    rows = w.find("#classifications tbody tr", "the table")
    assert [r.text.split()[0] for r in rows] == ["img0.png", "img1.png"]
    # A long job, aborted then deleted, each after its confirmation.
    w.get("/models/images/classification/new")
    w.el("input[name=method][value=custom]").click()
    w.el("#custom_network").send_keys(TINY)
    w.fill(train_epochs="2000", model_name="long")
    w.el("#new-model button[type=submit]").click()
    w.until(lambda: "/models/2" in browser.current_url, 10, "the long model's page")
    w.until(lambda: int(w.el("#chart").get_attribute("data-points") or 0) > 0, 60, "training")
    w.el("#abort").click()
    assert w.confirm() == 'Abort model "long"?'
    w.until(lambda: w.status() == "Aborted", 60, "Aborted")
    long_url = browser.current_url
    w.el("#delete").click()
    assert w.confirm().startswith('Delete model "long"')
    w.until(lambda: browser.current_url == server + "/", 20, "home")
    assert "long" not in w.el("#models-table").text and "tiny" in w.el("#models-table").text
    w.shot("home")
    w.get(long_url.removeprefix(server), status=404)
    assert "Job not found" in browser.page_source
    w.get(dataset_url.removeprefix(server))
    assert w.console == [], w.console
