"""``upcall digits serve`` reads only what it was given: server paths a request names (local
lists, the image lines of any list) only under ``--data-root``, one answer for a path outside,
missing or unreadable, no file text in errors, bounded inputs, one server per jobs folder. Every
request goes through a real HTTP server (werkzeug on a free port, or ``upcall digits serve``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from upcall.digits.client import DigitsClient, DigitsError, encode_form
from upcall.digits_server.app import make_app
from upcall.digits_server.paths import NOT_READABLE
from upcall.errors import UpcallError

ROUTE = "/datasets/images/classification.json"
SECRET = "TOPSECRET-8c1f"


@contextlib.contextmanager
def served(app, *, shutdown: bool = True):
    """``app`` on a real HTTP server on 127.0.0.1; yields its URL."""
    from werkzeug.serving import make_server

    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        if shutdown:
            app.extensions["upcall_digits"].shutdown()


def post(url: str, fields: dict, files: dict | None = None) -> tuple[int, bytes]:
    """A multipart POST as curl -F sends it; (status, body) whatever the status."""
    data, content_type = encode_form(fields, files or {})
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_done(url: str, job_id: str, timeout: float = 90) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with urllib.request.urlopen(f"{url}/jobs/{job_id}/status", timeout=30) as r:
            status = json.loads(r.read())
        if status["status"] in ("Done", "Error", "Aborted"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"{job_id}: {status}")


@pytest.fixture
def data(tmp_path) -> Path:
    """DATA/ with 4 PNGs and lists (relative paths); a mode-600 secret outside it."""
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (129, 30), dtype=np.uint8)).save(root / f"img{i}.png")
    (root / "train.txt").write_text("img0.png 0\nimg1.png 1\n")
    (root / "val.txt").write_text("img2.png 0\nimg3.png 1\n")
    (root / "labels.txt").write_text("not-whale\nwhale\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{SECRET}\n")
    (outside / "secret.txt").chmod(0o600)
    Image.open(root / "img0.png").save(outside / "secret.png")  # a real image, outside
    return root


def local_form(data: Path, **extra) -> dict:
    return {
        "username": "mallory",
        "method": "textfile",
        "dataset_name": "d",
        "textfile_use_local_files": "y",
        "textfile_local_train_images": str(data / "train.txt"),
        "textfile_use_val": "y",
        "textfile_local_val_images": str(data / "val.txt"),
        "textfile_local_labels_file": str(data / "labels.txt"),
        "resize_channels": "1",
        "resize_width": "30",
        "resize_height": "129",
        **extra,
    }


def test_server_paths_only_under_data_roots(data, tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    (data / "link.txt").symlink_to(secret)  # inside the root, pointing out: resolved, refused
    (data / "sub").mkdir()
    app = make_app(tmp_path / "jobs", data_roots=[data])
    with served(app) as url:
        refused = [secret, data / "link.txt", data / "missing.txt", data / "sub", "/etc/passwd",
                   data / ".." / "outside" / "secret.txt", "relative.txt", "a\0b"]  # fmt: skip
        if os.geteuid() != 0:  # root reads a mode-000 file anyway
            (data / "locked.txt").write_text("x\n")
            (data / "locked.txt").chmod(0)
            refused.append(data / "locked.txt")
        answers = {post(url + ROUTE, local_form(data, textfile_local_labels_file=str(p)))
                   for p in refused}  # fmt: skip
        # One answer for outside, a symlink out, missing, a folder, unreadable: nothing to probe.
        assert len(answers) == 1, answers
        status, body = answers.pop()
        assert status == 400
        assert json.loads(body) == {"errors": {"textfile_local_labels_file": [NOT_READABLE]}}
        status, body = post(url + ROUTE, local_form(data, textfile_local_train_images=str(secret)))
        assert status == 400 and set(json.loads(body)["errors"]) == {"textfile_local_train_images"}
        # A file under the root that is no list: refused by line number, its text never sent.
        (data / "notes.txt").write_text(f"password {SECRET}\n")
        status, body = post(url + ROUTE, local_form(data, textfile_local_train_images=str(data / "notes.txt")))  # fmt: skip
        assert status == 400 and SECRET.encode() not in body
        assert json.loads(body)["errors"] == {
            "textfile_local_train_images": ["line 1: not a 'PATH LABEL' line"]
        }
        # The image lines of an uploaded list, too: a path outside, a symlink out, a folder.
        (data / "out.png").symlink_to(tmp_path / "outside" / "secret.png")
        lines = (
            f"img0.png 0\n{tmp_path / 'outside' / 'secret.png'} 1\nout.png 1\nsub 0\nimg1.png 1\n"
        )
        form = {k: v for k, v in local_form(data).items() if "local" not in k}
        uploads = {
            "textfile_train_images": ("train.txt", lines.encode()),
            "textfile_val_images": ("val.txt", (data / "val.txt").read_bytes()),
            "textfile_labels_file": ("labels.txt", (data / "labels.txt").read_bytes()),
        }
        status, body = post(
            url + ROUTE,
            {**form, "textfile_train_folder": str(data), "textfile_val_folder": str(data)},
            uploads,
        )
        assert (status, json.loads(body)) == (
            400, {"errors": {"textfile_train_images": [f"lines 2, 3, 4: {NOT_READABLE}"]}}
        )  # fmt: skip
        with urllib.request.urlopen(url + "/index.json") as r:
            assert json.loads(r.read())["datasets"] == []  # nothing was made
        assert not any(SECRET in p.read_text(errors="replace")
                       for p in (tmp_path / "jobs").rglob("*") if p.is_file())  # fmt: skip
        # Under the root: accepted, built, its lists naming the resolved files.
        status, body = post(url + ROUTE, local_form(data))
        assert status == 200, body
        job = json.loads(body)["id"]
        assert wait_done(url, job)["status"] == "Done"
        with urllib.request.urlopen(f"{url}/files/{job}/lists/train.txt") as r:
            assert r.read().decode() == f"{data / 'img0.png'} 0\n{data / 'img1.png'} 1\n"


def test_inputs_are_bounded(data, tmp_path):
    app = make_app(tmp_path / "jobs", data_roots=[data])
    with served(app) as url:
        # DIGITS sets no upper bound on the resize; 100000 once meant a 74.5 GiB allocation.
        status, body = post(url + ROUTE, local_form(data, resize_width="100000"))
        assert (status, json.loads(body)) == (
            400, {"errors": {"resize_width": ["Number must be between 1 and 4096."]}}
        )  # fmt: skip
        # A one-line list far longer than any path: refused by its line number, in a short answer.
        (data / "long.txt").write_text("x" * 1_000_000 + " 0\n")
        status, body = post(url + ROUTE, local_form(data, textfile_local_train_images=str(data / "long.txt")))  # fmt: skip
        assert status == 400 and len(body) < 500
        assert json.loads(body)["errors"] == {
            "textfile_local_train_images": ["line 1 is longer than 8192 characters"]
        }
        # A body over the limit: 413 from its Content-Length, before a byte of it is read.
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(
                f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Length: {150 << 20}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nCookie: username=fred\r\n\r\n".encode()
            )
            assert s.recv(100).startswith(b"HTTP/1.1 413")
        # A job's error text is one bounded line in the status answer and digits_job.json.
        store = app.extensions["upcall_digits"]

        def fail(store, record):
            raise UpcallError("y" * 10_000_000 + "\nsecond line")

        store.work["dataset"] = fail
        status, body = post(url + ROUTE, local_form(data))
        job = json.loads(body)["id"]
        error = wait_done(url, job)["error"]
        assert len(error) == 1000 and "\n" not in error and error.startswith("yyy")
        assert (tmp_path / "jobs" / job / "digits_job.json").stat().st_size < 5000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(cwd: Path, jobs: Path, stderr=subprocess.DEVNULL) -> tuple[subprocess.Popen, str]:
    """``upcall digits serve`` started in ``cwd`` (its default data root) on a free port."""
    port = _free_port()
    argv = [sys.executable, "-m", "upcall", "digits", "serve", "--port", str(port)]
    server = subprocess.Popen([*argv, "--jobs-dir", str(jobs)], cwd=cwd, stderr=stderr, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/index.json", timeout=5).close()
            return server, url
        except OSError:
            if server.poll() is not None:
                return server, url
            time.sleep(0.1)
    raise AssertionError("the server did not start")


def test_engine_requests_with_default_root_and_one_server_per_jobs_folder(data, tmp_path):
    """`upcall digits serve` started in the data's folder takes the digits engine's dataset
    requests (uploaded lists and --digits-local-paths); a second server on its jobs folder
    refuses to start; a server started elsewhere refuses the same request, field by field."""
    from upcall.data.dataset import DatasetSettings, build_dataset
    from upcall.digits.fields import dataset_fields

    lists = data / "lists"
    lists.mkdir()
    for name in ("train", "val"):  # as `upcall lists` writes them: absolute PNG paths
        text = (data / f"{name}.txt").read_text()
        (lists / f"{name}.txt").write_text(text.replace("img", f"{data}/img"))
    (lists / "labels.txt").write_text((data / "labels.txt").read_text())
    build_dataset(lists, out=data / "ds", settings=DatasetSettings(size=None, workers=1))
    jobs = tmp_path / "jobs"
    server, url = _serve(data, jobs)
    try:
        second, _ = _serve(data, jobs, stderr=subprocess.PIPE)
        second.wait(timeout=30)
        err = second.stderr.read().strip()
        assert second.returncode == 1 and len(err.splitlines()) == 1, err
        assert "another upcall digits serve is using this jobs folder" in err
        client = DigitsClient(url)
        for local in (False, True):
            fields, files = dataset_fields(data / "ds", name=f"d{local}", local=local)
            job = client.create_dataset(fields, files)
            assert client.wait(job["id"], poll=0.2) == "Done"
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        other, other_url = _serve(elsewhere, tmp_path / "jobs2")
        try:
            fields, files = dataset_fields(data / "ds", name="d", local=True)
            refused = re.escape(f"textfile_local_train_images: {NOT_READABLE}")
            with pytest.raises(DigitsError, match=refused):
                DigitsClient(other_url).create_dataset(fields, files)
        finally:
            other.terminate()
            other.wait(timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_says_where_it_listens_refuses_a_taken_port_and_stops_on_ctrl_c(tmp_path):
    """The production server (waitress): one line saying where it listens; a port another
    program holds is a one-line error; Ctrl-C stops it with one line, by SIGINT."""
    server, url = _serve(tmp_path, tmp_path / "jobs", stderr=subprocess.PIPE)
    try:
        line = server.stderr.readline().strip()
        assert line.startswith(f"upcall digits serve: listening on {url} (jobs in "), line
        with urllib.request.urlopen(url + "/index.json", timeout=5) as r:
            assert r.headers["Server"] == "upcall"
        port = url.rsplit(":", 1)[1]
        argv = [sys.executable, "-m", "upcall", "digits", "serve", "--port", port]
        taken = subprocess.run(
            [*argv, "--jobs-dir", str(tmp_path / "jobs2")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode == 1 and taken.stderr.count("\n") == 1, taken.stderr
        assert f"127.0.0.1:{port}: cannot listen there" in taken.stderr
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    assert server.returncode == -signal.SIGINT
    assert err.strip() == "upcall digits: interrupted", err
