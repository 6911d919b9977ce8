"""The new-dataset and new-model pages: DIGITS's forms in HTML, re-shown with inline errors.

Facts followed (NVIDIA/DIGITS source): digits/dataset/images/classification/views.py ``new``
and digits/model/images/classification/views.py ``new`` (``GET .../new``, login required: a
redirect to /login without one); a form that fails validation is shown again with each
field's errors (HTTP 400) and a created job redirects to its page; the model form lists
standard networks, previous networks (model jobs, ``method=previous`` with
``previous_networks=<job id>``) and a custom network box; digits/model/views.py ``customize``
(``POST /models/customize``, field ``network``: a standard network's name or a job id) answers
``{"network": prototxt}`` for the "Customize" buttons.

The fields, defaults and refused choices are forms.py's: this module only shows them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask, jsonify, redirect, render_template, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest
from wtforms import Form

from upcall.digits_server import forms
from upcall.digits_server.jobs import DONE, RUNNING, JobStore

NEW_DATASET = "/datasets/images/classification/new"
NEW_MODEL = "/models/images/classification/new"
USE_MEAN = (("none", "None"), ("image", "Image"), ("pixel", "Pixel"))
# What the HTML form preselects where DIGITS's default is a choice upcall does not serve.
SERVED_DATASET_DEFAULTS = {"method": "textfile", "resize_channels": "1", "textfile_use_val": "y"}


def _options(form: Form, name: str) -> list[tuple[str, str, str]]:
    """(value, text, why refused or "") of a SelectField of one of forms.py's forms."""
    field = form[name]
    refused: Mapping[object, str] = {}
    for v in field.validators:
        if isinstance(v, forms.Refuse):
            refused = v.why
    return [(c.value, c.label, refused.get(c.value, "")) for c in field.iter_choices()]


def _gpus() -> list[str]:
    """The NVIDIA GPUs the driver lists (no CUDA library loaded): their indices."""
    try:
        return [str(i) for i in range(len(os.listdir("/proc/driver/nvidia/gpus")))]
    except OSError:
        return []


def dataset_page(values: Mapping[str, str] | None = None, errors: dict | None = None) -> str:
    shown = {**forms.DATASET_DEFAULTS, **SERVED_DATASET_DEFAULTS, **(values or {})}
    form = forms.DatasetForm()
    names = ("resize_channels", "resize_mode", "backend", "encoding")
    choices = {name: _options(form, name) for name in names}
    labels = {"1": "Grayscale", "3": "Color"}
    choices["resize_channels"] = [(v, labels[v], why) for v, _, why in choices["resize_channels"]]
    return render_template("new_dataset.html", values=shown, errors=errors or {}, choices=choices)


def _network_of(job) -> str:
    f = job.form
    return "custom" if f.get("method") == "custom" else f.get("standard_networks", "alexnet")


def model_page(
    store: JobStore, values: Mapping[str, str] | None = None, errors: dict | None = None
) -> str:
    shown = {**forms.MODEL_DEFAULTS, **(values or {})}
    form = forms.ModelForm()
    datasets = [j for j in store.all("dataset") if j.status in (*RUNNING, DONE)]
    choices = {name: _options(form, name) for name in ("solver_type", "lr_policy")}
    choices["dataset"] = [(j.id, f"{j.name} ({j.status})", "") for j in datasets]
    choices["use_mean"] = [(v, t, "") for v, t in USE_MEAN]
    choices["select_gpu"] = [("next", "next available", "")] + [
        (g, f"GPU {g}", "") for g in _gpus()
    ]
    if datasets and shown.get("dataset") not in {j.id for j in datasets}:
        shown["dataset"] = datasets[0].id
    from upcall.network.zoo import NETWORKS

    standard = [(name, n.description) for name, n in sorted(NETWORKS.items())]
    previous = [
        {"id": j.id, "name": j.name, "status": j.status, "network": _network_of(j)}
        for j in store.all("model")
    ]
    return render_template(
        "new_model.html",
        values=shown,
        errors=errors or {},
        choices=choices,
        standard=standard,
        previous=previous,
    )


def resolve_previous(form: Mapping[str, str], store: JobStore) -> Mapping[str, str]:
    """``method=previous``: the form with that model's network in its place (its standard
    network, or its custom text), as DIGITS trains a previous network anew; else ``form``."""
    if form.get("method") != "previous":
        return form
    job_id = form.get("previous_networks", "")
    job = store.get(job_id) if job_id else None
    if job is None or job.kind != "model":
        message = "Not a valid choice" if job_id else forms.REQUIRED
        raise forms.FormErrors({"previous_networks": [message]})
    out = MultiDict(form)
    for key in ("method", "standard_networks", "custom_network"):
        if key in job.form:
            out[key] = job.form[key]
    out["method"] = job.form.get("method", "standard")
    return out


def form_again(errors: dict, store: JobStore) -> tuple[str, int] | None:
    """A failed HTML form post shown again with its errors (400); None for any other request."""
    if request.method != "POST":
        return None
    values = {k: v for k, v in request.form.items() if k != "username"}
    if request.path == "/datasets/images/classification":
        return dataset_page(values, errors), 400
    if request.path == "/models/images/classification":
        return model_page(store, values, errors), 400
    return None


def _customize_text(store: JobStore, network: str) -> str:
    from upcall.network.zoo import NETWORKS
    from upcall.proto import to_text

    if network in NETWORKS:
        return to_text(NETWORKS[network].build())
    job = store.get(network)
    if job is None or job.kind != "model":
        raise BadRequest(f"Unknown network {network[:100]!r}")
    if job.form.get("method") == "custom":
        return job.form.get("custom_network", "")
    original = Path(store.folder(job.id)) / "original.prototxt"
    if original.is_file():
        return original.read_text(encoding="utf-8")
    return _customize_text(store, job.form.get("standard_networks", "alexnet"))


def add_routes(app: Flask, store: JobStore, logged_in) -> None:
    """``logged_in()``: the request's valid username or None (app.username)."""

    @app.context_processor
    def user():
        try:
            return {"user": logged_in()}
        except Exception:  # a malformed cookie: shown as logged out
            return {"user": None}

    def login_first():
        return redirect(f"/login?next={request.path}")

    @app.route(NEW_DATASET)
    def new_dataset():
        if not logged_in():
            return login_first()
        return dataset_page()

    @app.route(NEW_MODEL)
    def new_model():
        if not logged_in():
            return login_first()
        return model_page(store)

    @app.route("/models/customize", methods=["POST"])
    def customize():
        network = request.values.get("network", "")
        if not network:
            raise BadRequest("network is a required field")
        return jsonify({"network": _customize_text(store, network)})


__all__ = ["add_routes", "form_again", "resolve_previous"]
