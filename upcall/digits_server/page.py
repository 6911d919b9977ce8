"""The server's HTML pages, rendered from templates/: home, a dataset, a model, classify results.

Facts followed (NVIDIA/DIGITS source, page structure only): digits/templates/home.html (datasets
and models in separate tables with status and progress; "New dataset" / "New model"),
digits/templates/datasets/images/classification/show.html (per-DB entries, image size,
encoding, the mean image, "Explore the db"), digits/templates/models/images/classification/
show.html (settings, the training graphs, abort / delete, snapshot downloads, "Test a single
image" and "Test a list of images"), digits/templates/models/images/classification/
classify_one.html and classify_many.html (top classes with percentages; a table per image).

Every page is a Jinja2 template (autoescaped by Flask) with the server's own stylesheet and
script (static/); images are inline PNGs or links to files that exist, so pages load without
console errors. Spectrograms are drawn the right way up (row 0, the lowest frequency, at the
bottom), as upcall's reports draw them. Call these inside a request (``render_template``).
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import numpy as np
from flask import render_template

from upcall.digits_server.jobs import RUNNING, JobRecord, JobStore

# The form fields a model page lists as its settings, in DIGITS's order, with their labels.
MODEL_SETTINGS = (
    ("train_epochs", "Training epochs"),
    ("snapshot_interval", "Snapshot interval (epochs)"),
    ("val_interval", "Validation interval (epochs)"),
    ("random_seed", "Random seed"),
    ("batch_size", "Batch size"),
    ("batch_accumulation", "Batch accumulation"),
    ("solver_type", "Solver type"),
    ("learning_rate", "Base learning rate"),
    ("lr_policy", "Policy"),
    ("use_mean", "Subtract mean"),
    ("crop_size", "Crop size"),
    ("select_gpu", "GPU"),
)
MODEL_FILES = ("solver.prototxt", "train_val.prototxt", "deploy.prototxt", "original.prototxt",
               "caffe_output.log")  # fmt: skip
THUMB = 96  # px: the longest side of an explore thumbnail is scaled up to at least this


def login_page(message: str = "", next_path: str = "") -> str:
    return render_template("login.html", message=message, next=next_path)


def png_uri(image: np.ndarray, *, upright: bool = True) -> str:
    """A uint8 (H, W) or (1, H, W) image as a ``data:image/png`` URI (flipped upright)."""
    from PIL import Image

    pixels = np.asarray(image)
    pixels = pixels[0] if pixels.ndim == 3 else pixels
    if upright:
        pixels = pixels[::-1]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _elapsed(seconds: float) -> str:
    s = int(seconds)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def home_page(store: JobStore, entries: list[dict]) -> str:
    """Datasets and models in two tables, newest first (``entries``: views.entry rows)."""
    datasets, models = [], []
    for e in entries:
        row = e | {
            "submitted": _when(e["submitted"]),
            "elapsed": _elapsed(e["elapsed"]),
            "running": e["status"] in RUNNING,
        }
        job = store.get(e["id"])
        if job is None or job.kind == "dataset":
            datasets.append(row)
            continue
        ds = store.get(e.get("dataset_id") or "")
        curves = (store.folder(e["id"]) / "curves.png").exists()
        models.append(row | {"dataset": ds.name if ds else "", "curves": curves})
    return render_template("home.html", jobs_dir=str(store.dir), datasets=datasets, models=models)


def job_page(store: JobStore, job: JobRecord) -> str:
    return dataset_page(store, job) if job.kind == "dataset" else model_page(store, job)


def _history(job: JobRecord) -> list[tuple[str, str]]:
    return [(s, _when(t)) for s, t in job.history]


def _manifest(folder: Path):
    from upcall.data.dataset import DatasetManifest
    from upcall.errors import UpcallError

    try:
        return DatasetManifest.read(folder)
    except UpcallError:
        return None


def _mean_uri(folder: Path) -> str | None:
    from upcall.data.datum import read_mean

    path = folder / "mean.binaryproto"
    if not path.is_file():
        return None
    try:
        mean = read_mean(path)
    except Exception:  # a mean being written: shown once complete
        return None
    return png_uri(np.clip(np.around(mean[0]), 0, 255).astype(np.uint8))


def dataset_page(store: JobStore, job: JobRecord) -> str:
    folder = store.folder(job.id)
    info = _manifest(folder) if job.status == "Done" else None
    labels = list(info.labels) if info and info.labels else labels_of(folder)
    splits = []
    if info:
        for db, counts in info.counts.items():
            if isinstance(counts, dict):
                rows = [(labels.index(c) if c in labels else None, c, n) for c, n in counts.items()]
            else:
                rows = []
            splits.append({"db": db, "total": info.count(db), "classes": rows})
    return render_template(
        "dataset.html",
        job=job,
        form=job.form,
        info=info,
        splits=splits,
        mean=_mean_uri(folder) if info else None,
        models=store.users_of(job.id),
        history=_history(job),
        running=job.status in RUNNING,
    )


def labels_of(folder: Path) -> list[str]:
    path = folder / "labels.txt"
    if not path.is_file():
        return []
    return [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def snapshot_epochs(folder: Path) -> list[int | float]:
    """The epochs of the job's complete snapshot sets, as DIGITS numbers them (jobjson)."""
    from upcall.digits_server import jobjson

    try:
        per_epoch = jobjson.iters_per_epoch(folder)
    except Exception:  # a config being written: no epochs yet
        return []
    return [jobjson.epoch_of(i, per_epoch) for i in sorted(jobjson.snapshots(folder))]


def model_page(store: JobStore, job: JobRecord) -> str:
    folder = store.folder(job.id)
    ds = store.get(job.dataset_id or "")
    f = job.form
    network = "custom" if f.get("method") == "custom" else f.get("standard_networks", "")
    settings = [(label, f[key]) for key, label in MODEL_SETTINGS if f.get(key, "") != ""]
    return render_template(
        "model.html",
        job=job,
        dataset=ds,
        network=network,
        settings=settings,
        engine=job.engine or "torch",
        snapshots=snapshot_epochs(folder),
        files=[n for n in MODEL_FILES if (folder / n).is_file()],
        history=_history(job),
        running=job.status in RUNNING,
    )


def _spectrogram(store: JobStore, job: JobRecord, path: Path) -> str | None:
    """The input as the model sees it (a clip's spectrogram, a PNG resized), or None."""
    from upcall.inference.inputs import InputSpec, dataset_info, prepare

    try:
        spec = InputSpec.from_dataset_info(dataset_info(store.folder(job.id)))
        return png_uri(prepare(path, spec))
    except Exception:  # shown without a picture: the classification said what was wrong
        return None


def classify_one_page(
    store: JobStore, job: JobRecord, name: str, path: Path, predictions: list, epoch: str
) -> str:
    return render_template(
        "classify_one.html",
        job=job,
        name=name,
        image=_spectrogram(store, job, path),
        predictions=predictions,
        epoch=epoch,
    )


def classify_many_page(job: JobRecord, results: dict[str, list], epoch: str) -> str:
    """``results``: path as listed → top [label, percent] pairs."""
    classes = sorted({label for pairs in results.values() for label, _ in pairs})
    rows = [(p, {label: pct for label, pct in pairs}, pairs[0][0]) for p, pairs in results.items()]
    return render_template("classify_many.html", job=job, classes=classes, rows=rows, epoch=epoch)
