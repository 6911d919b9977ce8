"""``upcall digits serve``: DIGITS 6's REST API on real tiny data (real PNGs, LMDBs, training).

The requests are those of DIGITS's REST walkthrough (login, dataset create, model create with a
learning-rate list, status, index.json, classify_one, abort, delete), with the text-file dataset
method; the responses are checked against the shapes DIGITS's own code returns.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.chromium import require_chromium, run_chromium
from upcall.digits_server.app import make_app
from upcall.engines.base import TRAIN_LOCK
from upcall.engines.caffe.log import LogState
from upcall.lock import is_locked

H, W = 129, 30  # the native spectrogram
ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")
# ImageModelJob.json_dict + CaffeTrainTask.get_task_stats (digits/model/images/job.py,
# digits/model/tasks/caffe_train.py): every model JSON has these keys
MODEL_KEYS = {
    "id", "name", "status", "dataset_id", "job id", "creation time", "username",
    "image dimensions", "mean file", "snapshot file", "solver file", "train_val file",
    "deploy file", "model file", "framework", "caffe flavor", "caffe version", "digits version",
    "image resize mode", "labels file",
}  # fmt: skip
CREATION_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?")  # str(datetime)
TINY = """name: "tiny"
layer { name: "train-data" type: "Data" top: "data" top: "label" include { stage: "train" }
  data_param { batch_size: 8 } }
layer { name: "val-data" type: "Data" top: "data" top: "label" include { stage: "val" }
  data_param { batch_size: 8 } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
  pooling_param { pool: AVE kernel_h: 8 kernel_w: 2 stride_h: 8 stride_w: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
  inner_product_param { weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "fc" bottom: "label" top: "accuracy"
  include { stage: "val" } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss"
  exclude { stage: "deploy" } }
layer { name: "softmax" type: "Softmax" bottom: "fc" top: "softmax" include { stage: "deploy" } }
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """40 PNG spectrograms (a bright up-sweep for whales), DIGITS lists with relative paths."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(40):
        label = i % 2
        img = rng.integers(0, 60, (H, W), dtype=np.uint8)
        if label:
            for x in range(W):
                img[40 + x : 46 + x, x] = 250
        Image.fromarray(img).save(root / f"img{i}.png")
        lines.append(f"img{i}.png {label}\n")
    (root / "train.txt").write_text("".join(lines[:32]))
    (root / "val.txt").write_text("".join(lines[32:]))
    (root / "labels.txt").write_text("not-whale\nwhale\n")
    return root


def dataset_form(images: Path, **extra) -> dict:
    """The text-file dataset request: uploads, a prefix folder, grayscale, native size."""
    return {
        "method": "textfile",
        "dataset_name": "whale_sounds",
        "textfile_train_images": (io.BytesIO((images / "train.txt").read_bytes()), "train.txt"),
        "textfile_use_val": "y",
        "textfile_val_images": (io.BytesIO((images / "val.txt").read_bytes()), "val.txt"),
        "textfile_labels_file": (io.BytesIO((images / "labels.txt").read_bytes()), "labels.txt"),
        "textfile_train_folder": str(images),
        "textfile_val_folder": str(images),
        "resize_channels": "1",
        "resize_width": str(W),
        "resize_height": str(H),
        "encoding": "png",
        "backend": "lmdb",
        **extra,
    }


def model_form(dataset_id: str, **extra) -> dict:
    return {
        "dataset": dataset_id,
        "model_name": "tiny",
        "method": "custom",
        "custom_network": TINY,
        "framework": "caffe",
        "train_epochs": "1",
        "learning_rate": "0.01,0.001",
        "random_seed": "1",
        **extra,
    }


def wait_for(client, job_id: str, statuses=("Done", "Error", "Aborted"), timeout=90) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        body = client.get(f"/jobs/{job_id}/status").get_json()
        if body["status"] in statuses:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{job_id} still {body}")


@pytest.fixture(scope="module")
def trained(images, tmp_path_factory):
    """A jobs folder with a built dataset and two trained models (lr 0.01, 0.001)."""
    jobs = tmp_path_factory.mktemp("jobs")
    app = make_app(jobs, data_roots=[images])
    client = app.test_client()
    r = client.post("/login", data={"username": "fred"})
    assert r.status_code == 302 and "username=fred" in r.headers["Set-Cookie"]
    r = client.post("/datasets/images/classification.json", data=dataset_form(images))
    assert r.status_code == 200, r.get_json()
    ds = r.get_json()
    assert set(ds) == {"id", "name", "status"} and ds["status"] == "Initialized"
    assert ID.fullmatch(ds["id"]) and ds["name"] == "whale_sounds"
    r = client.post("/models/images/classification.json", data=model_form(ds["id"]))
    assert r.status_code == 200, r.get_json()
    models = r.get_json()["jobs"]
    assert [m["name"] for m in models] == ["tiny learning_rate:0.01", "tiny learning_rate:0.001"]
    for m in models:  # the whole model JSON, as DIGITS answers a create
        assert set(m) == MODEL_KEYS and m["status"] == "Initialized", m
        assert m["snapshot file"] == "no snapshots" and CREATION_TIME.fullmatch(m["creation time"])
    assert wait_for(client, ds["id"])["status"] == "Done"
    for m in models:
        assert wait_for(client, m["id"]) == {
            "status": "Done",
            "name": m["name"],
            "type": "Image Classification Model",
            "error": None,
        }
    yield {"jobs": jobs, "app": app, "client": client, "dataset": ds["id"],
           "models": [m["id"] for m in models]}  # fmt: skip
    app.extensions["upcall_digits"].shutdown()


def test_login_and_error_shapes(images, tmp_path):
    client = make_app(tmp_path / "jobs", data_roots=[images]).test_client()
    # No username: 401 with DIGITS's error JSON, before the job is looked up.
    r = client.post("/datasets/images/classification.json", data=dataset_form(images))
    assert r.status_code == 401
    assert set(r.get_json()["error"]) == {"message", "type", "description"}
    assert r.get_json()["error"]["type"] == "Unauthorized"
    assert client.post("/models/no-such-job/abort").status_code == 401
    assert client.delete("/jobs/no-such-job").status_code == 401
    # A bad name is 400; an unknown job 404 once logged in; status of one is 200 with an error.
    assert client.post("/jobs/x/abort", data={"username": "Fred"}).status_code == 400
    client.post("/login", data={"username": "fred"})
    assert client.post("/models/no-such-job/abort").status_code == 404
    r = client.get("/jobs/no-such-job/status")
    assert r.status_code == 200 and r.get_json() == {"error": "Job not found."}
    # Form validation: 400 {"errors": {field: [messages]}}; a left-out checkbox is false.
    r = client.post(
        "/datasets/images/classification.json", data=dataset_form(images, dataset_name="")
    )
    assert r.status_code == 400
    assert r.get_json() == {"errors": {"dataset_name": ["This field is required."]}}
    r = client.post("/models/images/classification.json", data=model_form("nope"))
    assert r.status_code == 400 and r.get_json()["errors"] == {"dataset": ["Not a valid choice"]}


def test_dataset_from_server_paths_squashed(images, tmp_path):
    """Server-local lists (textfile_use_local_files=y), 256×256 squash: upcall's LMDB build."""
    app = make_app(tmp_path / "jobs", data_roots=[images])
    client = app.test_client()
    form = {
        "username": "fred",
        "method": "textfile",
        "dataset_name": "whale_256",
        "textfile_use_local_files": "y",
        "textfile_local_train_images": str(images / "train.txt"),
        "textfile_use_val": "y",
        "textfile_local_val_images": str(images / "val.txt"),
        "textfile_local_labels_file": str(images / "labels.txt"),
        "resize_channels": "1",
    }
    ds = client.post("/datasets/images/classification.json", data=form).get_json()
    assert wait_for(client, ds["id"])["status"] == "Done"
    folder = tmp_path / "jobs" / ds["id"]
    info = json.loads((folder / "dataset.json").read_text())
    assert info["size"] == "256x256" and info["resize_mode"] == "squash"
    assert info["counts"] == {"train": {"not-whale": 16, "whale": 16},
                              "val": {"not-whale": 4, "whale": 4}}  # fmt: skip
    assert (folder / "train_db" / "data.mdb").is_file() and (folder / "labels.txt").is_file()
    assert client.get(f"/files/{ds['id']}/mean.binaryproto").status_code == 200
    app.extensions["upcall_digits"].shutdown()


def test_walkthrough_results(trained, images):
    client, ds, models = trained["client"], trained["dataset"], trained["models"]
    info = client.get(f"/datasets/{ds}.json").get_json()
    assert [(t["name"], t["entries"]) for t in info["CreateDbTasks"]] == [
        ("Create DB (train)", 32),
        ("Create DB (val)", 8),
    ]
    index = client.get("/index.json").get_json()
    assert set(index) == {"version", "jobs_dir", "datasets", "models"}
    assert [d["id"] for d in index["datasets"]] == [ds]
    assert sorted(m["id"] for m in index["models"]) == sorted(models)
    done = client.get("/completed_jobs.json").get_json()
    assert done["running"] == [] and len(done["models"]) == 2
    row = client.get(f"/jobs/{models[0]}/table_data.json").get_json()["job"]
    assert row["status"] == "Done" and row["progress"] == 100 and row["dataset_id"] == ds
    assert 0 <= row["accuracy (val) last"] <= 1 and row["loss (train) min"] >= 0  # a fraction
    model = client.get(f"/models/{models[0]}.json").get_json()
    assert set(model) == MODEL_KEYS | {"directory", "snapshots"}
    assert model["snapshot file"] == "snapshot_iter_4.caffemodel" and model["snapshots"] == [1]
    assert model["image dimensions"] == [H, W, 1]
    # The Caffe-format log DIGITS clients parse, and the download archive.
    log = client.get(f"/files/{models[0]}/caffe_output.log").get_data(as_text=True)
    state = LogState()
    for line in log.splitlines():
        state.feed(line)
    assert state.train and set(state.tests[4]) == {"accuracy", "loss"}
    assert state.snapshots == ["snapshot_iter_4.caffemodel"]
    r = client.get(f"/models/{models[0]}/download.tar.gz")
    assert r.status_code == 200
    names = tarfile.open(fileobj=io.BytesIO(r.data)).getnames()
    assert {"deploy.prototxt", "original.prototxt", "labels.txt", "mean.binaryproto",
            "snapshot_iter_4.caffemodel", "info.json"} <= set(names)  # fmt: skip
    assert client.get(f"/models/{models[0]}/download.rar").status_code == 400


def test_classify_needs_no_login(trained, images):
    app = trained["app"]
    client = app.test_client()  # no cookie
    model = trained["models"][0]
    r = client.post(
        f"/models/images/classification/classify_one.json?job_id={model}",
        data={"image_file": (io.BytesIO((images / "img1.png").read_bytes()), "img1.png")},
    )
    assert r.status_code == 200, r.get_json()
    pairs = r.get_json()["predictions"]
    assert sorted(label for label, _ in pairs) == ["not-whale", "whale"]
    assert pairs[0][1] >= pairs[1][1] and abs(sum(p for _, p in pairs) - 100) < 0.05
    listing = "img0.png 0\nimg1.png 1\n"
    r = client.post(
        "/models/images/classification/classify_many.json",
        data={"job_id": model, "image_folder": str(images),
              "image_list": (io.BytesIO(listing.encode()), "list.txt")},
    )  # fmt: skip
    assert set(r.get_json()["classifications"]) == {"img0.png", "img1.png"}
    assert client.post("/models/images/classification/classify_one.json").status_code == 400
    r = client.post("/models/images/classification/classify_one.json", data={"job_id": "x"})
    assert r.status_code == 404


def test_abort_delete_and_restart(trained, images):
    client, ds, models = trained["client"], trained["dataset"], trained["models"]
    r = client.post(
        "/models/images/classification.json",
        data=model_form(ds, learning_rate="0.01", train_epochs="400", model_name="long"),
    )
    long = r.get_json()
    assert set(long) == MODEL_KEYS and long["name"] == "long"
    wait_for(client, long["id"], ("Running",))
    metrics = trained["jobs"] / long["id"] / "metrics.jsonl"
    end = time.monotonic() + 30
    while not metrics.exists() and time.monotonic() < end:
        time.sleep(0.05)  # into the run loop, whose SIGINT handler snapshots and stops
    r = client.post(f"/models/{long['id']}/abort")
    assert (r.status_code, r.get_data(as_text=True)) == (200, "Job aborted.")
    assert wait_for(client, long["id"])["status"] == "Aborted"
    assert client.post(f"/models/{long['id']}/abort").status_code == 403  # not running
    # A dataset a model uses cannot go; another user's job neither; a model can.
    assert client.delete(f"/datasets/{ds}").status_code == 403
    assert client.delete(f"/jobs/{long['id']}", data={"username": "alice"}).status_code == 403
    r = client.delete(f"/models/{long['id']}")
    assert (r.status_code, r.get_data(as_text=True)) == (200, "Job deleted.")
    assert client.get(f"/models/{long['id']}.json").status_code == 404
    assert not (trained["jobs"] / long["id"]).exists()
    # A restarted server finds every job as it was.
    again = make_app(trained["jobs"]).test_client()
    index = again.get("/index.json").get_json()
    assert {m["id"]: m["status"] for m in index["models"]} == {m: "Done" for m in models}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, form: dict) -> dict:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_killed_mid_job_becomes_error(trained, tmp_path, sig):
    """The server killed (SIGKILL) while training: its training child goes within 5 s and the
    restarted server says Error, with why. Stopped by SIGTERM (`timeout`, systemd), it stops
    like a Ctrl-C: the running job Aborted, the child ended, the queued job kept."""
    jobs = tmp_path / "jobs"
    shutil.copytree(trained["jobs"] / trained["dataset"], jobs / trained["dataset"])
    port = _free_port()
    serve = ["digits", "serve", "--port", str(port), "--jobs-dir", str(jobs)]
    server = subprocess.Popen([sys.executable, "-m", "upcall", *serve], stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/index.json", timeout=5).close()
                break
            except OSError:
                time.sleep(0.1)
        form = model_form(trained["dataset"], learning_rate="0.01", train_epochs="400")
        job = _post(url + "/models/images/classification.json", {**form, "username": "fred"})
        form = model_form(trained["dataset"], learning_rate="0.02", model_name="next")
        queued = _post(url + "/models/images/classification.json", {**form, "username": "fred"})
        for _ in range(300):
            status = json.loads(urllib.request.urlopen(f"{url}/jobs/{job['id']}/status").read())
            if status["status"] == "Running":
                break
            time.sleep(0.1)
        assert status["status"] == "Running"
        end = time.monotonic() + 30
        while not is_locked(jobs / job["id"] / TRAIN_LOCK) and time.monotonic() < end:
            time.sleep(0.05)  # the training child is in the run loop
        assert is_locked(jobs / job["id"] / TRAIN_LOCK)
    finally:
        os.kill(server.pid, sig)
        server.wait()
    assert server.returncode == -sig
    # The training child died with the server (it holds the job's train lock while it lives).
    end = time.monotonic() + 5
    while is_locked(jobs / job["id"] / TRAIN_LOCK) and time.monotonic() < end:
        time.sleep(0.05)
    assert not is_locked(jobs / job["id"] / TRAIN_LOCK)
    app = make_app(jobs)
    client = app.test_client()
    status = client.get(f"/jobs/{job['id']}/status").get_json()
    if sig == signal.SIGTERM:
        assert status["status"] == "Aborted", status
    else:
        assert status["status"] == "Error"
        assert status["error"] == "the server stopped while this job was running"
    # The job queued behind it (Waiting) is queued again and trained.
    status = wait_for(client, queued["id"])
    assert status["status"] == "Done", status
    app.extensions["upcall_digits"].shutdown()


def test_html_page_in_chromium(trained, tmp_path):
    """The job list loads in headless Chromium with no console errors and shows every job
    (tests/chromium.py: skipped without chromium, failed under UPCALL_REQUIRE_CAFFE=1)."""
    from werkzeug.serving import make_server

    require_chromium()
    http = make_server("127.0.0.1", _free_port(), trained["app"], threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        run = run_chromium(f"http://127.0.0.1:{http.server_port}/", tmp_path)
    finally:
        http.shutdown()
    dom = run.dom
    for job_id in [trained["dataset"], *trained["models"]]:
        assert f'id="job-{job_id}"' in dom
    assert "tiny learning_rate:0.001" in dom
    assert dom.count('class="curves"') == 2
    assert run.console == [], run.console


def test_pages_escape_names_and_link_only_existing_curves(tmp_path):
    """The HTML pages (Jinja2 templates) show a job's name, error and a login message as text."""
    from upcall.digits_server.jobs import JobRecord

    app = make_app(tmp_path / "jobs", data_roots=[tmp_path])
    store = app.extensions["upcall_digits"]
    name = '<script>alert("x")</script> baleine é'
    model = store.create(JobRecord("20260101-000000-abcd", "model", name, "fred"))
    store.update(model.id, error="<b>bad</b> & worse")
    client = app.test_client()
    html = {
        "home": client.get("/").get_data(as_text=True),
        "job": client.get(f"/models/{model.id}").get_data(as_text=True),
        "login": client.post("/login", data={"username": "<Bad>"}).get_data(as_text=True),
    }
    assert all("<script>" not in page and "<b>" not in page for page in html.values())
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; baleine é"
    assert escaped in html["home"] and f"<title>{escaped}</title>" in html["job"]
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in html["job"]
    assert 'class="curves"' not in html["home"] + html["job"]  # no curves.png yet
    (store.folder(model.id) / "curves.png").write_bytes(b"")
    assert client.get("/").get_data(as_text=True).count('class="curves"') == 1
    assert '<p class="Error">Invalid username</p>' in html["login"]
    store.shutdown()


def test_real_caffe_engine(caffe, images, tmp_path):
    """`serve --engine caffe`: real Caffe trains the job, pycaffe classifies with it."""
    app = make_app(tmp_path / "jobs", engine="caffe", data_roots=[images])
    client = app.test_client()
    client.post("/login", data={"username": "fred"})
    ds = client.post("/datasets/images/classification.json", data=dataset_form(images)).get_json()
    form = model_form(ds["id"], learning_rate="0.01")
    model = client.post("/models/images/classification.json", data=form).get_json()
    assert set(model) == MODEL_KEYS and model["name"] == "tiny"
    assert wait_for(client, model["id"], timeout=120)["status"] == "Done"
    folder = tmp_path / "jobs" / model["id"]
    assert not (folder / ".caffe_output.log.upcall").exists()  # Caffe's own log, kept
    state = LogState()
    for line in (folder / "caffe_output.log").read_text().splitlines():
        state.feed(line)
    assert state.snapshots and 4 in state.tests
    r = client.post(
        "/models/images/classification/classify_one.json",
        data={"job_id": model["id"], "image_path": str(images / "img1.png")},
    )
    assert r.status_code == 200, r.get_json()
    assert sorted(label for label, _ in r.get_json()["predictions"]) == ["not-whale", "whale"]
    app.extensions["upcall_digits"].shutdown()


def test_bad_numbers_rename_and_store_races(trained, images, tmp_path):
    from dataclasses import replace

    from upcall.digits_server.jobs import JobRecord, JobStore
    from upcall.digits_server.work import DatasetAborted, build_dataset_job

    client, model = trained["client"], trained["models"][0]
    r = client.get(f"/models/{model}/download?epoch=abc", headers={"Accept": "application/json"})
    assert r.status_code == 400 and "epoch" in r.get_json()["error"]["message"]
    url = "/models/images/classification/classify_many.json"
    data = {"job_id": model, "num_test_images": "x", "image_list": (io.BytesIO(b"a.png"), "l")}
    assert client.post(url, data=data).get_json() == {
        "errors": {"num_test_images": ["Not a valid integer value"]}
    }
    url = "/models/images/classification/classify_one.json"
    r = client.post(url, data={"job_id": model, "snapshot_epoch": "x", "image_path": "a.png"})
    assert r.status_code == 400 and set(r.get_json()["errors"]) == {"snapshot_epoch"}
    # A rename keeps the job's current status history.
    store = trained["app"].extensions["upcall_digits"]
    before = store.get(model)
    assert client.put(f"/jobs/{model}", data={"job_name": "renamed"}).status_code == 200
    assert store.get(model).name == "renamed" and store.get(model).history == before.history
    store.update(model, name=before.name)
    # An aborted job is not queued again, nor marked Done by its worker; ids never collide.
    jobs = JobStore(tmp_path / "jobs", {"dataset": lambda s, rec: s.abort(rec.id)})
    (tmp_path / "jobs" / "20260101-000000-abcd").mkdir()
    rec = jobs.create(JobRecord("20260101-000000-abcd", "dataset", "d", "fred"))
    assert rec.id != "20260101-000000-abcd" and (tmp_path / "jobs" / rec.id).is_dir()
    jobs.submit(rec.id)
    jobs.queues["dataset"].shutdown(wait=True)
    assert [s for s, _ in jobs.get(rec.id).history] == ["Initialized", "Waiting", "Running",
                                                       "Aborted"]  # fmt: skip
    jobs.submit(rec.id)
    assert jobs.get(rec.id).status == "Aborted"
    # An aborted dataset build stops between its steps.
    (jobs.folder(rec.id) / "lists").mkdir()
    (jobs.folder(rec.id) / "lists" / "train.txt").write_text(f"{images / 'img0.png'} 0\n")
    form = {"resize_height": str(H), "resize_width": str(W), "resize_mode": "squash",
            "encoding": "png"}  # fmt: skip
    with pytest.raises(DatasetAborted):
        build_dataset_job(jobs, replace(jobs.get(rec.id), form=form))
    assert not (jobs.folder(rec.id) / ".build").exists()


def test_login_redirects_only_to_local_paths(tmp_path):
    """`POST /login?next=...` (real HTTP): off-site targets become "/", local paths stay."""
    import http.client

    from tests.digits_server.test_paths import served

    with served(make_app(tmp_path / "jobs", data_roots=[tmp_path])) as url:
        host, port = url.removeprefix("http://").split(":")
        for target, expected in [
            ("//evil.com", "/"), ("/\\evil.com", "/"), ("\\\\evil.com", "/"),
            ("javascript:alert(1)", "/"), ("http://evil.com/", "/"), ("https:evil.com", "/"),
            ("/\t/evil.com", "/"), (" //evil.com", "/"), ("evil.com", "/"),
            ("/models/20260101-000000-abcd?x=1", "/models/20260101-000000-abcd?x=1"),
        ]:  # fmt: skip
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            query = urllib.parse.urlencode({"next": target})
            conn.request("POST", f"/login?{query}", body="username=fred",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            answer = conn.getresponse()
            assert (answer.status, answer.getheader("Location")) == (302, expected), target
            conn.close()


def test_classify_paths_only_under_data_roots(trained, images, tmp_path):
    """classify_many / classify_one (real HTTP) on a path outside --data-root, missing, a
    folder, or a symlink out: one and the same 400, whichever it is; inside: classified."""
    from tests.digits_server.test_paths import post, served
    from upcall.digits_server.paths import NOT_READABLE

    model = trained["models"][0]
    Image.open(images / "img1.png").save(tmp_path / "outside.png")  # a real image, outside
    link = images / "link-out.png"
    link.symlink_to(tmp_path / "outside.png")
    many = "/models/images/classification/classify_many.json"
    one = "/models/images/classification/classify_one.json"
    try:
        with served(trained["app"], shutdown=False) as url:
            probes = ["/root", "/etc", "/etc/passwd", str(images / "missing.png"), str(images),
                      str(tmp_path / "outside.png"), str(link), "/nonexistent/x.png"]  # fmt: skip
            answers = set()
            for p in probes:
                files = {"image_list": ("list.txt", f"{p} 0\n".encode())}
                answers.add(post(url + many, {"job_id": model}, files))
            assert len(answers) == 1 and next(iter(answers))[0] == 400, answers
            assert json.loads(next(iter(answers))[1]) == {
                "errors": {"image_list": [f"line 1: {NOT_READABLE}"]}
            }
            answers = {post(url + one, {"job_id": model, "image_path": p}) for p in probes}
            assert len(answers) == 1 and next(iter(answers))[0] == 400
            assert json.loads(next(iter(answers))[1]) == {"errors": {"image_path": [NOT_READABLE]}}
            files = {"image_list": ("list.txt", b"img0.png 0\n")}
            status, body = post(url + many, {"job_id": model, "image_folder": str(images)}, files)
            assert status == 200 and set(json.loads(body)["classifications"]) == {"img0.png"}
            status, body = post(
                url + one, {"job_id": model, "image_path": str(images / "img0.png")}
            )
            assert status == 200 and len(json.loads(body)["predictions"]) == 2
    finally:
        link.unlink()


def test_custom_network_naming_server_files_is_refused(trained, tmp_path):
    """A custom net whose InfogainLoss reads a server file, or with a Python layer (a module
    file): 400 "Bad network" naming the layer, no job made; a 300 kB error stays short."""
    from tests.digits_server.test_paths import post, served

    secret = tmp_path / "secret.binaryproto"
    secret.write_bytes(b"\x00" * 64)
    infogain = TINY.replace(
        'type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss"',
        f'type: "InfogainLoss" bottom: "fc" bottom: "label" top: "loss" '
        f'infogain_loss_param {{ source: "{secret}" }}',
    )
    python = TINY + 'layer { name: "py" type: "Python" bottom: "fc" top: "py" python_param { module: "os" layer: "system" } }\n'  # fmt: skip
    route = "/models/images/classification.json"
    with served(trained["app"], shutdown=False) as url:
        before = urllib.request.urlopen(url + "/index.json").read()
        for net, layer in ((infogain, "'loss' (InfogainLoss)"), (python, "'py' (Python)")):
            form = model_form(trained["dataset"], custom_network=net, username="mallory")
            status, body = post(url + route, form)
            assert status == 400, body
            (message,) = json.loads(body)["errors"]["custom_network"]
            assert message.startswith(f"Bad network: layer {layer} reads a file on the server")
        form = model_form(trained["dataset"], custom_network="x" * 300_000, username="mallory")
        status, body = post(url + route, form)
        assert status == 400 and len(body) < 2000 and b"Not a valid NetParameter" in body
        # a layer the torch engine (this server's) lacks: refused now, not when training starts
        lstm = TINY + 'layer { name: "odd" type: "LSTM" bottom: "fc" top: "seq" }\n'
        form = model_form(trained["dataset"], custom_network=lstm, username="mallory")
        status, body = post(url + route, form)
        assert status == 400 and json.loads(body)["errors"]["custom_network"] == [
            "Bad network: layer 'odd' (type LSTM) is not implemented by the torch engine; "
            "--engine caffe runs it"
        ]
        assert urllib.request.urlopen(url + "/index.json").read() == before  # no job made
