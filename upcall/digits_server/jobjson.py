"""Every job's JSON, in the shapes DIGITS returns it: the one owner of the server's job JSON.

Facts followed (NVIDIA/DIGITS source):
- digits/job.py ``Job.json_dict``: ``{id, name, status}``; detailed adds ``directory``.
- digits/model/job.py, digits/model/images/job.py ``ImageModelJob.json_dict``: a model adds
  ``dataset_id``, ``"job id"``, ``"creation time"`` (``str(datetime.fromtimestamp(t))``:
  ``2026-12-07 05:32:39.123456``), ``username`` and its train task's stats, in EVERY json_dict
  (the create answer and /index.json included); detailed adds ``snapshots`` (epochs).
- digits/model/tasks/caffe_train.py ``get_task_stats``: "image dimensions" (the dataset's
  [H, W, C]), "mean file" (mean.binaryproto), "snapshot file" (``no snapshots`` before the
  first, then ``snapshot_iter_N.caffemodel``), "solver file", "train_val file", "deploy file",
  "framework" caffe, "caffe flavor" (BVLC or NVIDIA), "caffe version", "model file"
  (original.prototxt), "digits version", "image resize mode", "labels file"; ``detect_snapshots``:
  a snapshot's epoch is ``round(iteration / iterations per epoch, 3)``, an int when whole.
- digits/dataset/images/classification/job.py: a dataset's detailed JSON has
  ``ParseFolderTasks`` and one ``CreateDbTasks`` entry per DB built (no val entry without a
  validation list), with ``image_width = image_dims[0]`` and ``image_height = image_dims[1]``
  where image_dims is (height, width, channels): DIGITS's own swap, kept.
- digits/views.py ``home`` (/index.json: running then completed jobs, newest first, each
  ``json_dict()``), ``json_dict`` / ``completed_jobs`` / ``job_table_data``: a row has id, name,
  group, status, status_css, submitted, elapsed, progress (``int(round(100 * p))``) and type
  ("dataset" / "model"); datasets add backend; models add framework, dataset_id, every output's
  ``"<name> (train|val) last|min|max"`` (train: epoch, loss, learning_rate; val: epoch,
  accuracy as a fraction, loss), and ``sparkline`` (the train loss column of the combined
  graph, at most ~200 points); ``model_output_fields`` is the sorted set of those keys.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from upcall import __version__
from upcall.digits_server.jobs import CSS, RUNNING, JobRecord, JobStore

CAFFE_FLAVOR = "BVLC"  # snapshots are BVLC Caffe 1.0 caffemodels, whichever engine trains
CAFFE_VERSION = "1.0.0"  # BVLC Caffe's own __version__ for the 1.0 schema both engines follow
DIGITS_VERSION = f"upcall {__version__}"


def creation_time(job: JobRecord) -> str:
    """DIGITS's "creation time": ``str(datetime)`` of the first status, local time."""
    return str(datetime.datetime.fromtimestamp(job.submitted))


# -- snapshots -----------------------------------------------------------------------------
def snapshots(folder: Path) -> dict[int, Path]:
    """iteration → .caffemodel of the complete snapshot sets in ``folder`` (upcall.job.snapshots'
    rule)."""
    from upcall.job import snapshots as sets

    return sets.complete(sets.Prefix(folder / sets.DEFAULT_PREFIX))


def iters_per_epoch(folder: Path) -> int:
    from upcall.job.config import JobConfig

    config = JobConfig.read(folder)
    return int(config.schedule.get("train_iter", 1)) if config and config.schedule else 1


def epoch_of(iteration: int, per_epoch: int) -> int | float:
    """detect_snapshots: ``round(iteration / per_epoch, 3)``, an int when whole."""
    epoch = round(iteration / per_epoch, 3)
    return int(epoch) if epoch == int(epoch) else epoch


# -- datasets ------------------------------------------------------------------------------
def has_val(job: JobRecord) -> bool:
    """Whether the dataset job was given a validation list (``textfile_use_val``)."""
    return job.form.get("_val", "1") == "1"


def _list_lines(folder: Path, db: str) -> int:
    path = folder / "lists" / f"{db}.txt"
    try:
        return sum(1 for x in path.read_text(encoding="utf-8").splitlines() if x.strip())
    except OSError:
        return 0


def dataset_json(store: JobStore, job: JobRecord, *, detailed: bool = False) -> dict:
    """``Job.json_dict``; detailed: with directory, ParseFolderTasks and CreateDbTasks."""
    out = job.json_dict()
    if not detailed:
        return out
    folder, f = store.folder(job.id), job.form
    dims = (  # DIGITS's image_dims: (height, width, channels)
        int(f.get("resize_height", 256)),
        int(f.get("resize_width", 256)),
        int(f.get("resize_channels", 3)),
    )
    tasks = [
        {
            "name": f"Create DB ({db})",
            "entries": _list_lines(folder, db),
            "image_width": dims[0],  # sic: DIGITS reports image_dims[0] (the height) here
            "image_height": dims[1],
            "image_channels": dims[2],
            "backend": "lmdb",
            "encoding": f.get("encoding", "png"),
            "compression": "none",
        }
        for db in (("train", "val") if has_val(job) else ("train",))
    ]
    return out | {"directory": str(folder), "ParseFolderTasks": [], "CreateDbTasks": tasks}


# -- models --------------------------------------------------------------------------------
def model_json(store: JobStore, job: JobRecord, *, detailed: bool = False) -> dict:
    """``ImageModelJob.json_dict``: the same keys wherever a model's JSON appears."""
    folder = store.folder(job.id)
    ds = store.get(job.dataset_id or "")
    f = ds.form if ds else {}
    snaps = snapshots(folder)
    out = job.json_dict() | {
        "dataset_id": job.dataset_id,
        "job id": job.id,
        "creation time": creation_time(job),
        "username": job.username,
        "image dimensions": [
            int(f.get("resize_height", 256)),
            int(f.get("resize_width", 256)),
            int(f.get("resize_channels", 3)),
        ],
        "mean file": "mean.binaryproto",
        "snapshot file": snaps[max(snaps)].name if snaps else "no snapshots",
        "solver file": "solver.prototxt",
        "train_val file": "train_val.prototxt",
        "deploy file": "deploy.prototxt",
        "framework": "caffe",
        "caffe flavor": CAFFE_FLAVOR,
        "caffe version": CAFFE_VERSION,
        "model file": "original.prototxt",
        "digits version": DIGITS_VERSION,
        "image resize mode": f.get("resize_mode", "squash"),
        "labels file": "labels.txt",
    }
    if detailed:
        per_epoch = iters_per_epoch(folder)
        out |= {
            "directory": str(folder),
            "snapshots": [epoch_of(i, per_epoch) for i in sorted(snaps)],
        }
    return out


def job_json(store: JobStore, job: JobRecord, *, detailed: bool = False) -> dict:
    """The job's ``json_dict``, dataset or model."""
    shape = model_json if job.kind == "model" else dataset_json
    return shape(store, job, detailed=detailed)


def output_series(folder: Path) -> dict[str, list[float]]:
    """DIGITS's train_outputs / val_outputs from metrics.jsonl, as ``"<name> (train|val)"`` →
    values; a value that is not finite (None) is left out."""
    from upcall.job.records import TestRecord, TrainRecord, read_metrics

    series: dict[str, list[float]] = {}
    try:
        records = read_metrics(folder, missing_ok=True)
    except Exception:  # a file being written: no values yet
        records = []
    for r in records:
        if isinstance(r, TrainRecord):
            pairs = [("epoch", r.epoch), ("loss", r.loss), ("learning_rate", r.lr)]
            phase = "train"
        elif isinstance(r, TestRecord) and r.epoch > 0 and r.val_loss is not None:
            pairs = [("epoch", r.epoch), ("accuracy", r.val_accuracy), ("loss", r.val_loss)]
            phase = "val"
        else:
            continue
        for name, v in pairs:
            if v is not None:
                series.setdefault(f"{name} ({phase})", []).append(v)
    return series


def model_outputs(folder: Path) -> dict[str, float]:
    """``"<output> (train|val) last|min|max"`` of every output with values."""
    out = {}
    for name, values in output_series(folder).items():
        out |= {f"{name} last": values[-1], f"{name} min": min(values), f"{name} max": max(values)}
    return out


def progress(store: JobStore, job: JobRecord) -> int:
    """0-100: a dataset is built or not; a model is at its last record's epoch."""
    if job.status == "Done":
        return 100
    if job.kind == "dataset":
        return 0
    from upcall.job.records import read_metrics

    try:
        records = read_metrics(store.folder(job.id), missing_ok=True)
        epochs = float(job.form.get("train_epochs", "1"))
        return round(min(100.0, 100 * records[-1].epoch / epochs)) if records else 0
    except Exception:
        return 0


def entry(store: JobStore, job: JobRecord) -> dict:
    """One row of completed_jobs.json / table_data.json (digits/views.py json_dict)."""
    out = {
        "id": job.id,
        "name": job.name,
        "group": job.group,
        "status": job.status,
        "status_css": CSS[job.status],
        "submitted": job.submitted,
        "elapsed": job.elapsed(),
        "progress": progress(store, job),
        "type": job.kind,
    }
    if job.kind == "dataset":
        return out | {"backend": "lmdb"}
    series = output_series(store.folder(job.id))
    out |= {"framework": "caffe", "dataset_id": job.dataset_id}
    for name, values in series.items():
        out |= {f"{name} last": values[-1], f"{name} min": min(values), f"{name} max": max(values)}
    loss = series.get("loss (train)")
    if loss:
        out["sparkline"] = loss[:: max(len(loss) // 100, 1)]  # combined_graph_data's cull
    return out


def _listed(store: JobStore, kind: str | None = None) -> tuple[list, list]:
    """(running, finished) jobs, each newest first (get_job_list)."""
    jobs = sorted(store.all(kind), key=lambda j: j.submitted, reverse=True)
    return [j for j in jobs if j.status in RUNNING], [j for j in jobs if j.status not in RUNNING]


def index_json(store: JobStore) -> dict:
    """/index.json: version, jobs_dir, datasets and models (running first), each json_dict()."""
    out = {"version": DIGITS_VERSION, "jobs_dir": str(store.dir)}
    for kind in ("dataset", "model"):
        running, done = _listed(store, kind)
        out[f"{kind}s"] = [job_json(store, j) for j in running + done]
    return out


def completed_jobs_json(store: JobStore) -> dict:
    """/completed_jobs.json: running jobs, finished datasets and models, and the output keys."""
    running_ds, done_ds = _listed(store, "dataset")
    running_models, done_models = _listed(store, "model")
    running = [entry(store, j) for j in running_ds + running_models]
    datasets = [entry(store, j) for j in done_ds]
    models = [entry(store, j) for j in done_models]
    fields = {k for row in running + models for k in row if k.endswith((" last", " min", " max"))}
    return {
        "running": running,
        "datasets": datasets,
        "models": models,
        "pretrained_models": [],
        "model_output_fields": sorted(fields),
    }


__all__ = [
    "completed_jobs_json",
    "creation_time",
    "dataset_json",
    "entry",
    "index_json",
    "job_json",
    "model_json",
    "snapshots",
]
