"""The job JSON of ``upcall digits serve``, key by key against DIGITS's source (jobjson.py's
docstring names the files), and DIGITS's dataset without a validation list end to end."""

from __future__ import annotations

import datetime
import io
import json

import pytest
from PIL import Image

from tests.digits_server.test_app import (
    CREATION_TIME,
    MODEL_KEYS,
    H,
    W,
    dataset_form,
    images,  # noqa: F401 (the module's fixture)
    model_form,
    wait_for,
)
from upcall.digits_server.app import make_app
from upcall.digits_server.jobjson import completed_jobs_json, creation_time, entry, epoch_of
from upcall.digits_server.jobs import JobRecord
from upcall.job.records import TestRecord, TrainRecord

ROW_KEYS = {
    "id",
    "name",
    "group",
    "status",
    "status_css",
    "submitted",
    "elapsed",
    "progress",
    "type",
}  # fmt: skip  (digits/views.py json_dict)


def _metrics(folder, records) -> None:
    lines = [json.dumps(r.to_json()) + "\n" for r in records]
    (folder / "metrics.jsonl").write_text("".join(lines))


def test_rows_times_and_output_fields(tmp_path):
    """completed_jobs.json / table_data.json rows and "creation time", from real job folders."""
    app = make_app(tmp_path / "jobs", data_roots=[tmp_path])
    store = app.extensions["upcall_digits"]
    t = datetime.datetime(2026, 12, 7, 5, 32, 39, 123456).timestamp()
    ds = store.create(JobRecord("20261207-053239-abcd", "dataset", "d", "fred"))
    store.update(ds.id, history=(("Initialized", t), ("Done", t + 1)))
    model = store.create(
        JobRecord("20261207-053240-abcd", "model", "m", "fred", dataset_id=ds.id,
                  form={"train_epochs": "2"})
    )  # fmt: skip
    store.update(model.id, history=(("Initialized", t), ("Running", t + 1), ("Error", t + 3)))
    assert creation_time(store.get(model.id)) == "2026-12-07 05:32:39.123456"
    train = [TrainRecord(iter=i, epoch=i / 4, lr=0.01, loss=2.0 - i / 4) for i in range(1, 5)]
    tests = [  # iteration 0's unscored test is left out, as DIGITS has no figures for it
        TestRecord(iter=0, epoch=0.0, val_loss=None, val_accuracy=None),
        TestRecord(iter=4, epoch=1.0, val_loss=0.7, val_accuracy=0.75),
    ]
    _metrics(store.folder(model.id), [train[0], tests[0], *train[1:], tests[1]])
    row = entry(store, store.get(ds.id))
    assert set(row) == ROW_KEYS | {"backend"} and row["type"] == "dataset"
    assert row["progress"] == 100 and row["submitted"] == t and row["elapsed"] == 0.0
    row = entry(store, store.get(model.id))
    outputs = {f"{n} {s}" for n in ("epoch (train)", "loss (train)", "learning_rate (train)",
                                     "epoch (val)", "accuracy (val)", "loss (val)")
               for s in ("last", "min", "max")}  # fmt: skip
    assert set(row) == ROW_KEYS | {"framework", "dataset_id", "sparkline"} | outputs
    assert row["type"] == "model" and row["framework"] == "caffe" and row["dataset_id"] == ds.id
    assert row["status"] == "Error" and row["status_css"] == "danger" and row["elapsed"] == 2.0
    assert row["progress"] == 50  # epoch 1 of 2
    assert row["accuracy (val) last"] == 0.75  # a fraction, as DIGITS keeps it
    assert (row["loss (train) min"], row["loss (train) max"], row["epoch (val) last"]) == (
        1,
        1.75,
        1,
    )
    assert row["sparkline"] == [1.75, 1.5, 1.25, 1.0]
    done = completed_jobs_json(store)
    assert set(done) == {
        "running",
        "datasets",
        "models",
        "pretrained_models",
        "model_output_fields",
    }
    assert done["model_output_fields"] == sorted(outputs)
    assert [r["id"] for r in done["datasets"]] == [ds.id] and done["running"] == []
    client = app.test_client()
    assert client.get(f"/jobs/{ds.id}/table_data.json").get_json() == {
        "job": entry(store, store.get(ds.id))
    }
    assert (epoch_of(270, 270), epoch_of(135, 270), epoch_of(1, 3)) == (1, 0.5, 0.333)
    store.shutdown()


@pytest.fixture(scope="module")
def train_only(images, tmp_path_factory):  # noqa: F811
    """A dataset posted without textfile_use_val (DIGITS: a train DB only) and a model on it."""
    jobs = tmp_path_factory.mktemp("jobs")
    app = make_app(jobs, data_roots=[images])
    client = app.test_client()
    client.post("/login", data={"username": "fred"})
    form = dataset_form(images, dataset_name="train_only")
    for field in ("textfile_use_val", "textfile_val_images", "textfile_val_folder"):
        del form[field]
    r = client.post("/datasets/images/classification.json", data=form)
    assert r.status_code == 200, r.get_json()
    ds = r.get_json()["id"]
    model = client.post(
        "/models/images/classification.json", data=model_form(ds, learning_rate="0.01")
    ).get_json()
    assert wait_for(client, ds)["status"] == "Done"
    assert wait_for(client, model["id"]) == {
        "status": "Done",
        "name": "tiny",
        "type": "Image Classification Model",
        "error": None,
    }
    yield {"jobs": jobs, "client": client, "dataset": ds, "model": model, "images": images}
    app.extensions["upcall_digits"].shutdown()


def test_dataset_without_validation(train_only):
    client, ds, jobs = train_only["client"], train_only["dataset"], train_only["jobs"]
    info = client.get(f"/datasets/{ds}.json").get_json()
    assert set(info) == {"id", "name", "status", "directory", "ParseFolderTasks", "CreateDbTasks"}
    assert info["ParseFolderTasks"] == [] and info["status"] == "Done"
    assert info["CreateDbTasks"] == [
        {
            "name": "Create DB (train)",
            "entries": 32,
            "image_width": H,
            "image_height": W,
            "image_channels": 1,
            "backend": "lmdb",
            "encoding": "png",
            "compression": "none",
        }
    ]  # fmt: skip  (DIGITS's image_width is image_dims[0], the height)
    assert not (jobs / ds / "val_db").exists() and (jobs / ds / "train_db").is_dir()
    # the mean image, as DIGITS serves it: a JPEG of the resize size
    r = client.get(f"/files/{ds}/mean.jpg")
    assert r.status_code == 200
    mean = Image.open(io.BytesIO(r.data))
    assert mean.format == "JPEG" and mean.size == (W, H) and mean.mode == "L"


def test_model_without_validation_records(train_only, tmp_path):
    """No validation records: the JSON, the Caffe log, the curves and the report all cope."""
    from upcall.engines.caffe.log import LogState
    from upcall.job.records import read_metrics
    from upcall.reports.report import make_report

    client, jobs, created = train_only["client"], train_only["jobs"], train_only["model"]
    assert set(created) == MODEL_KEYS and created["snapshot file"] == "no snapshots"
    assert CREATION_TIME.fullmatch(created["creation time"])
    folder = jobs / created["id"]
    solver = (folder / "solver.prototxt").read_text()
    assert "test_iter" not in solver and "test_interval" not in solver
    assert "val_db" not in (folder / "train_val.prototxt").read_text()
    records = read_metrics(folder)
    assert records and not [r for r in records if isinstance(r, TestRecord)]
    model = client.get(f"/models/{created['id']}.json").get_json()
    assert set(model) == MODEL_KEYS | {"directory", "snapshots"}
    assert model["snapshots"] == [1] and model["snapshot file"] == "snapshot_iter_4.caffemodel"
    assert model["creation time"] == created["creation time"]
    assert {k: model[k] for k in ("image dimensions", "mean file", "labels file", "model file")} == {
        "image dimensions": [H, W, 1], "mean file": "mean.binaryproto",
        "labels file": "labels.txt", "model file": "original.prototxt",
    }  # fmt: skip
    row = client.get(f"/jobs/{created['id']}/table_data.json").get_json()["job"]
    assert "loss (train) last" in row and not [k for k in row if "(val)" in k]
    index = client.get("/index.json").get_json()
    assert [set(m) for m in index["models"]] == [MODEL_KEYS]
    assert [set(d) for d in index["datasets"]] == [{"id", "name", "status"}]
    state = LogState()
    for line in (folder / "caffe_output.log").read_text().splitlines():
        state.feed(line)
    assert state.train and not state.tests and state.snapshots == ["snapshot_iter_4.caffemodel"]
    assert (folder / "curves.png").is_file()
    rows = make_report([folder], out=tmp_path / "report", html=True)
    assert len(rows) == 1 and (tmp_path / "report" / "report.html").is_file()
    r = client.post(  # and it classifies
        "/models/images/classification/classify_one.json",
        data={"job_id": created["id"], "image_path": str(train_only["images"] / "img1.png")},
    )
    assert r.status_code == 200 and len(r.get_json()["predictions"]) == 2
