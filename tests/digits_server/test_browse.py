"""A dataset's page and explore page on a real LMDB dataset, and a model's curves.json."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.tinydata import level_dataset
from upcall.digits_server.app import make_app
from upcall.digits_server.jobs import DONE, RUN, JobRecord
from upcall.job.records import TestRecord, TrainRecord


@pytest.fixture
def served(tmp_path):
    """A server whose jobs folder holds one built dataset (12 train, 4 val images)."""
    app = make_app(tmp_path / "jobs", data_roots=[tmp_path])
    store = app.extensions["upcall_digits"]
    (tmp_path / "data").mkdir()
    built = level_dataset(tmp_path / "data", [0, 1] * 8)
    ds = store.create(
        JobRecord(
            "20260101-000000-aaaa",
            "dataset",
            "whales",
            "fred",
            form={"resize_channels": "1", "backend": "lmdb"},
        )
    )
    shutil.copytree(built, store.folder(ds.id), dirs_exist_ok=True)
    store.set_status(ds.id, DONE)
    yield app, store, ds
    store.shutdown()


def test_dataset_page_and_explore(served):
    app, _, ds = served
    client = app.test_client()
    html = client.get(f"/datasets/{ds.id}").get_data(as_text=True)
    assert "30 × 129 (stored at its own size)" in html and "Grayscale" in html
    assert re.search(r'id="mean" src="data:image/png;base64,', html)
    table = html[html.index('id="counts-train"') : html.index('id="counts-val"')]
    assert "train database: 12 images" in table and table.count('class="num">6<') == 2
    explore = f"/datasets/images/classification/explore?job_id={ds.id}&db=train"
    html = client.get(explore + "&label=1").get_data(as_text=True)
    assert html.count("<figure>") == 6 and "6 images · page 1 of 1" in html
    html = client.get(explore + "&size=10&page=1").get_data(as_text=True)
    assert html.count("<figure>") == 2 and "12 images · page 2 of 2" in html
    for bad in ("&page=-1", "&size=x"):
        assert client.get(explore + bad).status_code == 400
    assert client.get(explore.replace("db=train", "db=test")).status_code == 400
    assert client.get("/datasets/images/classification/explore").status_code == 400
    assert client.get(explore.replace(ds.id, "nope")).status_code == 404
    assert client.get("/favicon.ico").status_code == 204


def test_curves_json(served):
    app, store, ds = served
    model = store.create(
        JobRecord(
            "20260101-000001-bbbb",
            "model",
            "m",
            "fred",
            dataset_id=ds.id,
            form={"train_epochs": "2"},
        )
    )
    client = app.test_client()
    empty = client.get(f"/models/{model.id}/curves.json").get_json()
    assert empty["train"] == {"epoch": [], "loss": [], "lr": []} and empty["snapshots"] == []
    records = [
        TrainRecord(iter=1, epoch=0.5, lr=0.01, loss=0.7),
        TestRecord(iter=0, epoch=0.0, val_loss=None, val_accuracy=None),  # not scored
        TrainRecord(iter=2, epoch=1.0, lr=0.01, loss=None),  # not finite
        TestRecord(iter=2, epoch=1.0, val_loss=0.5, val_accuracy=0.75),
    ]
    lines = "".join(json.dumps(r.to_json()) + "\n" for r in records)
    (store.folder(model.id) / "metrics.jsonl").write_text(lines)
    store.set_status(model.id, RUN)
    body = client.get(f"/models/{model.id}/curves.json").get_json()
    assert body["status"] == "Running" and body["progress"] == 50 and body["epochs"] == 2
    assert body["train"] == {"epoch": [0.5, 1.0], "loss": [0.7, None], "lr": [0.01, 0.01]}
    assert body["val"] == {"epoch": [1.0], "loss": [0.5], "accuracy": [75.0]}
    html = client.get(f"/models/{model.id}").get_data(as_text=True)
    assert f'id="chart" class="chart" data-job="{model.id}"' in html
    assert 'id="abort" class="secondary"' in html and "No snapshot yet." in html
