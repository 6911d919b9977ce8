"""What the pages read besides the job JSON: the explore page of a dataset's LMDB, and the
training curves a model page's chart polls.

Facts followed (NVIDIA/DIGITS source): digits/dataset/images/classification/views.py
``explore`` (``GET /datasets/images/classification/explore`` with ``job_id``, ``db``,
``label``, ``page``, ``size``: a page of the DB's images, optionally of one class).

DIGITS pushes its graphs over SocketIO; upcall's model page polls
``GET /models/<id>/curves.json`` instead (plain JSON, no socket library):
``{"status", "progress", "epochs", "train": {"epoch", "loss", "lr"},
"val": {"epoch", "loss", "accuracy"}, "snapshots"}`` with accuracy in percent and null for a
value that is not finite.
"""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import BadRequest, NotFound

from upcall.digits_server import jobjson
from upcall.digits_server.jobs import DONE, JobRecord, JobStore
from upcall.digits_server.page import labels_of, png_uri, snapshot_epochs
from upcall.digits_server.routing import lookup

EXPLORE_SIZES = (10, 25, 50, 100)  # DIGITS's page sizes


def _int_arg(name: str, default: int, minimum: int = 0) -> int:
    text = request.args.get(name, "")
    try:
        value = int(text) if text.strip() else default
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {text[:50]!r}") from None
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}")
    return value


def explore_page(store: JobStore, job: JobRecord) -> str:
    """One page of the DB's records (of one class when ``label`` is given)."""
    from upcall.data.datum import datum_to_array, open_db

    db = request.args.get("db", "train")
    if db not in ("train", "val"):
        raise BadRequest("db must be train or val")
    folder = store.folder(job.id)
    if job.status != DONE or not (folder / f"{db}_db").is_dir():
        raise NotFound(f"the dataset has no {db} database")
    label = _int_arg("label", -1) if request.args.get("label", "").strip() else None
    page, size = _int_arg("page", 0), _int_arg("size", 25, 1)
    size = min(size, max(EXPLORE_SIZES))
    labels = labels_of(folder)
    images, total = [], 0
    with open_db(folder / f"{db}_db") as env, env.begin() as txn:
        for key, value in txn.cursor():
            name = key.decode("ascii", "replace")
            key_label = name.rsplit("_", 1)[-1]
            if label is not None and key_label != str(label):
                continue
            if page * size <= total < (page + 1) * size:
                pixels, lab = datum_to_array(value, where=f"{folder / db}_db: record {name}")
                shown = labels[lab] if 0 <= lab < len(labels) else str(lab)
                images.append({"key": name, "label": shown, "uri": png_uri(pixels)})
            total += 1
    return render_template(
        "explore.html",
        job=job,
        db=db,
        label=label,
        labels=labels,
        images=images,
        page=page,
        size=size,
        sizes=EXPLORE_SIZES,
        pages=-(-total // size),
        total=total,
    )


def curves(store: JobStore, job: JobRecord) -> dict:
    """The model's figures so far (metrics.jsonl), for its page's chart."""
    import math

    from upcall.job.records import TestRecord, TrainRecord, read_metrics

    def finite(v):
        return v if v is not None and math.isfinite(v) else None

    folder = store.folder(job.id)
    try:
        records = read_metrics(folder, missing_ok=True)
    except Exception:  # a line being written: the next poll reads it
        records = []
    train = {"epoch": [], "loss": [], "lr": []}
    val = {"epoch": [], "loss": [], "accuracy": []}
    for r in records:
        if isinstance(r, TrainRecord):
            train["epoch"].append(r.epoch)
            train["loss"].append(finite(r.loss))
            train["lr"].append(finite(r.lr))
        elif isinstance(r, TestRecord) and (r.val_loss is not None or r.val_accuracy is not None):
            val["epoch"].append(r.epoch)
            val["loss"].append(finite(r.val_loss))
            acc = finite(r.val_accuracy)
            val["accuracy"].append(None if acc is None else 100 * acc)
    try:
        epochs = float(job.form.get("train_epochs", "1"))
    except ValueError:
        epochs = 1.0
    return {
        "status": job.status,
        "progress": jobjson.progress(store, job),
        "epochs": epochs,
        "train": train,
        "val": val,
        "snapshots": snapshot_epochs(folder),
    }


def add_routes(app: Flask, store: JobStore) -> None:
    @app.route("/datasets/images/classification/explore")
    def explore():
        job_id = request.args.get("job_id")
        if not job_id:
            raise BadRequest("job_id is a required field")
        return explore_page(store, lookup(store, job_id, "dataset"))

    @app.route("/favicon.ico")
    def favicon():
        """No icon (pages say so with a data: URL); an error page's browser asks anyway."""
        return "", 204

    @app.route("/models/<job_id>/curves.json")
    def model_curves(job_id):
        return jsonify(curves(store, lookup(store, job_id, "model")))


__all__ = ["add_routes", "curves", "explore_page"]
