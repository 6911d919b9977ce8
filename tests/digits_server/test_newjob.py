"""The new-dataset and new-model pages (HTML): login first, DIGITS's defaults, a refused form
shown again with each field's error (400), a created job's page, previous networks and the
"Customize" route. No training: test_browser.py walks the pages with jobs that train."""

from __future__ import annotations

import re

import pytest

from upcall.digits_server.app import make_app
from upcall.digits_server.jobs import DONE, JobRecord

HTML = {"Accept": "text/html"}


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path / "jobs", data_roots=[tmp_path])
    yield app
    app.extensions["upcall_digits"].shutdown()


def _value(html: str, name: str) -> str:
    return re.search(rf'name="{name}"[^>]* value="([^"]*)"', html).group(1)


def test_forms_need_login_and_show_defaults(app):
    client = app.test_client()
    for page in ("/datasets/images/classification/new", "/models/images/classification/new"):
        r = client.get(page)
        assert r.status_code == 302 and r.headers["Location"] == f"/login?next={page}"
    r = client.get("/login?next=/models/images/classification/new")
    assert 'action="/login?next=/models/images/classification/new"' in r.get_data(as_text=True)
    client.post("/login", data={"username": "fred"})
    html = client.get("/datasets/images/classification/new").get_data(as_text=True)
    assert (_value(html, "resize_width"), _value(html, "resize_height")) == ("256", "256")
    assert '<option value="1" selected>Grayscale</option>' in html  # upcall's datasets
    assert 'value="3" disabled title=' in html and 'value="hdf5" disabled' in html
    assert "Logged in as fred" in html
    html = client.get("/models/images/classification/new").get_data(as_text=True)
    assert (_value(html, "train_epochs"), _value(html, "learning_rate")) == ("30", "0.01")
    assert _value(html, "lr_step_size") == "33" and 'data-policy="step"' in html
    assert '<option value="step" selected>' in html and '<option value="SGD" selected>' in html
    assert 'name="standard_networks" value="alexnet" checked' in html
    assert "No dataset is built" in html and "No previous model yet." in html


def test_refused_forms_come_back_with_their_errors(app):
    client = app.test_client()
    client.post("/login", data={"username": "fred"})
    r = client.post(
        "/datasets/images/classification",
        data={"method": "textfile", "resize_width": "0", "group_name": "g<1>"},
        headers=HTML,
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "The dataset was not created" in html
    assert re.search(r'id="dataset_name-errors"><li>This field is required.</li>', html)
    assert 'id="resize_width-errors"' in html and 'aria-invalid="true"' in html
    assert _value(html, "group_name") == "g&lt;1&gt;"  # kept as typed, escaped
    r = client.post("/models/images/classification", data={"model_name": "m"}, headers=HTML)
    html = r.get_data(as_text=True)
    assert (
        r.status_code == 400 and 'id="dataset-errors"' in html and _value(html, "model_name") == "m"
    )
    # The same posts to the .json routes keep DIGITS's JSON errors.
    r = client.post("/models/images/classification.json", data={"model_name": "m"})
    assert r.status_code == 400 and "dataset" in r.get_json()["errors"]


def test_previous_networks_and_customize(app):
    store = app.extensions["upcall_digits"]
    ds = store.create(JobRecord("20260101-000000-aaaa", "dataset", "d", "fred"))
    store.set_status(ds.id, DONE)
    custom = 'name: "mine"\nlayer { name: "fc" type: "InnerProduct" }\n'
    old = store.create(
        JobRecord(
            "20260101-000001-bbbb",
            "model",
            "old",
            "fred",
            dataset_id=ds.id,
            form={"method": "custom", "custom_network": custom},
        )
    )
    client = app.test_client()
    client.post("/login", data={"username": "fred"})
    html = client.get("/models/images/classification/new").get_data(as_text=True)
    assert f'name="previous_networks" value="{old.id}"' in html
    assert f'<option value="{ds.id}" selected>d (Done)</option>' in html
    r = client.post("/models/customize", data={"network": old.id})
    assert r.get_json() == {"network": custom}
    r = client.post("/models/customize", data={"network": "whalenet"})
    assert 'type: "Data"' in r.get_json()["network"]
    assert client.post("/models/customize", data={"network": "nope"}).status_code == 400
    # method=previous takes the old job's network; without a choice it is the field's error.
    r = client.post("/models/images/classification.json", data={"method": "previous"})
    assert r.get_json()["errors"] == {"previous_networks": ["This field is required."]}
    r = client.post(
        "/models/images/classification.json",
        data={
            "method": "previous",
            "previous_networks": old.id,
            "dataset": ds.id,
            "model_name": "again",
        },
    )
    # the old custom network is what is built now (here a dataset without files: Bad network)
    assert r.status_code == 400 and set(r.get_json()["errors"]) == {"custom_network"}
