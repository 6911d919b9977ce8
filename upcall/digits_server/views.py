"""The server's read-only and inference routes: job JSON, listings, downloads, classification.

The job JSON's shapes are :mod:`upcall.digits_server.jobjson`'s.

Facts followed (NVIDIA/DIGITS source):
- digits/model/images/classification/views.py: classify_one.json (``image_file`` or
  ``image_path``; 400 without) and classify_many.json (``image_list``, ``image_folder``,
  ``num_test_images``); ``job_id`` missing → 400, unknown → 404; top 5 ``[label, percent]``.
- digits/model/views.py ``download``: archive formats and ``?epoch=N``.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from flask import Flask, jsonify, request, send_file
from werkzeug.exceptions import BadRequest, NotFound

from upcall.digits_server import page, paths
from upcall.digits_server.forms import FormErrors
from upcall.digits_server.jobjson import (
    completed_jobs_json,
    dataset_json,
    entry,
    index_json,
    iters_per_epoch,
    model_json,
    snapshots,
)
from upcall.digits_server.jobs import JobRecord, JobStore
from upcall.digits_server.routing import lookup, wants_json

ARCHIVES = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "zip": None}


def add_routes(app: Flask, store: JobStore) -> None:
    @app.route("/")
    @app.route("/index.json")
    def home():
        if not wants_json():
            datasets, models = store.all("dataset"), store.all("model")
            return page.home_page(store, [entry(store, j) for j in datasets + models])
        return jsonify(index_json(store))

    @app.route("/completed_jobs.json")
    def completed_jobs():
        return jsonify(completed_jobs_json(store))

    @app.route("/jobs/<job_id>/table_data.json")
    def table_data(job_id):
        return jsonify({"job": entry(store, lookup(store, job_id))})

    @app.route("/datasets/<job_id>.json")
    @app.route("/datasets/<job_id>")
    def dataset_show(job_id):
        job = lookup(store, job_id, "dataset")
        return (
            jsonify(dataset_json(store, job, detailed=True))
            if wants_json()
            else page.job_page(store, job)
        )

    @app.route("/models/<job_id>.json")
    @app.route("/models/<job_id>")
    def model_show(job_id):
        job = lookup(store, job_id, "model")
        if not wants_json():
            return page.job_page(store, job)
        return jsonify(model_json(store, job, detailed=True))

    @app.route("/models/<job_id>/download", defaults={"extension": "tar.gz"})
    @app.route("/models/<job_id>/download.<extension>")
    def download(job_id, extension):
        job = lookup(store, job_id, "model")
        if extension not in ARCHIVES:
            raise BadRequest(f"Invalid extension {extension!r}")
        folder = store.folder(job_id)
        snaps = snapshots(folder)
        epoch = request.args.get("epoch")
        iteration = max(snaps) if snaps and epoch is None else None
        if epoch is not None:
            try:
                iteration = round(float(epoch) * iters_per_epoch(folder))
            except (ValueError, OverflowError):
                raise BadRequest(f"epoch must be a number, not {epoch!r}") from None
            if iteration not in snaps:
                raise BadRequest(f"No snapshot for epoch {epoch}")
        files = [
            folder / n
            for n in (
                "solver.prototxt",
                "train_val.prototxt",
                "deploy.prototxt",
                "original.prototxt",
            )
        ]
        ds = store.folder(job.dataset_id or "")
        files += [ds / "labels.txt", ds / "mean.binaryproto"]
        files += [snaps[iteration]] if iteration is not None else []
        info = json.dumps(model_json(store, job), indent=2).encode()
        data = _archive(extension, [p for p in files if p.exists()], info)
        return send_file(
            io.BytesIO(data), as_attachment=True, download_name=f"{job_id}.{extension}"
        )

    @app.route("/models/images/classification/classify_one.json", methods=["POST"])
    @app.route("/models/images/classification/classify_one", methods=["POST"])
    def classify_one():
        job = _model_from_request()
        it = _snapshot(store, job)
        with tempfile.TemporaryDirectory() as tmp:
            if "image_file" in request.files:
                upload = request.files["image_file"]
                name = Path(upload.filename or "image").name
                path = Path(tmp) / ("image" + (Path(name).suffix or ".png"))
                upload.save(path)
            elif request.values.get("image_path"):
                name = Path(request.values["image_path"]).name
                path = app.config["UPCALL_DATA_ROOTS"].file(request.values["image_path"])
                if path is None:  # outside the data folders, missing or unreadable: one answer
                    raise FormErrors({"image_path": [paths.NOT_READABLE]})
            else:
                raise BadRequest("must provide image_path or image_file")
            rows = _classify(store, job, [path], it)
            if rows and not wants_json():  # the HTML page shows the input as the model sees it
                epoch = request.values.get("snapshot_epoch", "")
                return page.classify_one_page(store, job, name, path, rows[0][1], epoch)
        if not rows:
            raise BadRequest(f"{name[:200]}: cannot be read as an image")
        return jsonify({"predictions": rows[0][1]})

    @app.route("/models/images/classification/classify_many.json", methods=["POST"])
    @app.route("/models/images/classification/classify_many", methods=["POST"])
    def classify_many():
        job = _model_from_request()
        if "image_list" not in request.files:
            raise BadRequest("image_list is a required field")
        try:
            text = request.files["image_list"].read().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise FormErrors({"image_list": [f"not UTF-8 text (byte {e.start})"]}) from None
        limit = request.values.get("num_test_images", "").strip()
        try:
            limit = int(limit) if limit else None
        except ValueError:
            raise FormErrors({"num_test_images": ["Not a valid integer value"]}) from None
        it = _snapshot(store, job)
        folder = request.values.get("image_folder", "").strip()
        found = paths.classify_paths(
            text,
            app.config["UPCALL_DATA_ROOTS"],
            Path(folder).expanduser() if folder else None,
            "image_list",
            limit=limit,
        )
        rows = _classify(store, job, list(found.values()), it)
        names = {real: name for name, real in found.items()}
        results = {names.get(p, str(p)): pairs for p, pairs in rows}
        if not wants_json():
            epoch = request.values.get("snapshot_epoch", "")
            return page.classify_many_page(job, results, epoch)
        return jsonify({"classifications": results})

    def _model_from_request() -> JobRecord:
        job_id = request.values.get("job_id")
        if not job_id:
            raise BadRequest("job_id is a required field")
        return lookup(store, job_id, "model")


def _snapshot(store: JobStore, job: JobRecord) -> int:
    """The iteration of the snapshot the request asks for (``snapshot_epoch``, else the last)."""
    folder = store.folder(job.id)
    snaps = snapshots(folder)
    if not snaps:
        raise BadRequest("the model has no snapshot yet")
    epoch = request.values.get("snapshot_epoch")
    try:
        it = round(float(epoch) * iters_per_epoch(folder)) if epoch else max(snaps)
    except (ValueError, OverflowError):
        raise FormErrors({"snapshot_epoch": ["Not a valid float value"]}) from None
    if it not in snaps:
        raise NotFound(f"no snapshot for epoch {epoch}")
    return it


def _classify(
    store: JobStore, job: JobRecord, inputs: list[Path], it: int
) -> list[tuple[Path, list]]:
    """(path, top-5 [label, percent]) for each readable input, by the job's model."""
    from flask import current_app

    from upcall.errors import BatchReport
    from upcall.inference import load_model

    backend = current_app.config["UPCALL_BACKEND"]
    model = load_model(store.folder(job.id), snapshot=it, backend=backend)
    rows = model.classify(inputs, report=BatchReport("inputs"))
    out = []
    for row in rows:
        probs = {k: v for k, v in row.items() if k not in ("input", "label")}
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:5]
        out.append((Path(row["input"]), [[k, round(100 * v, 2)] for k, v in top]))
    return out


def _archive(extension: str, files: list[Path], info: bytes) -> bytes:
    buf = io.BytesIO()
    if ARCHIVES[extension] is None:
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in files:
                z.write(p, p.name)
            z.writestr("info.json", info)
    else:
        with tarfile.open(fileobj=buf, mode=ARCHIVES[extension]) as t:
            for p in files:
                t.add(p, p.name)
            member = tarfile.TarInfo("info.json")
            member.size, member.mtime = len(info), int(time.time())
            t.addfile(member, io.BytesIO(info))
    return buf.getvalue()


__all__ = ["add_routes"]
