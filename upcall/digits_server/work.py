"""What the server's jobs do, with upcall: datasets with upcall's LMDB code, models with
``upcall nets``'s job maker, training with an upcall engine in a child process.

Facts followed (NVIDIA/DIGITS source):
- digits/dataset/images/classification/views.py: text-file lists are "PATH LABEL" lines, a
  ``textfile_*_folder`` prefixes relative paths; the labels file is saved as labels.txt.
- digits/model/images/classification/views.py: one model job per learning rate, named
  ``"<name> learning_rate:<lr>"``.
- digits/model/tasks/caffe_train.py: the job folder holds solver.prototxt, train_val.prototxt,
  deploy.prototxt, original.prototxt (a custom network as sent) and Caffe's log
  ``caffe_output.log`` (``CAFFE_LOG``), whose glog lines DIGITS parses for its curves.

Training runs ``upcall.engines.get_engine(engine).train(job)`` in a child process
(:mod:`upcall.digits_server.train_child`): the shared run loop installs a SIGINT handler (main
thread only) and stops with a snapshot on SIGINT, which is how an abort stops it. The child
dies with the server (``upcall.parallel.start_worker``), so a restarted server finds the job
Running in its record and marks it Error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from upcall.digits_server.train_child import train
from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text
from upcall.job.solver import SolverSettings
from upcall.parallel import start_process

CAFFE_LOG = "caffe_output.log"  # DIGITS's CaffeTrainTask.CAFFE_LOG
CHILD_OUTPUT = "upcall_train.out"  # the training child's stdout and stderr
STOP_SECONDS = 30.0  # an abort waits this long for the snapshot before killing the child


class DatasetAborted(Exception):
    """The dataset job was aborted (or deleted) between two build steps."""


def _check_running(store, record) -> None:
    now = store.get(record.id)
    if now is None or now.status != "Running":
        raise DatasetAborted(record.id)


def write_lists(folder: Path, texts: dict[str, str]) -> Path:
    """<job>/lists/{train,val,labels}.txt from the checked texts (upcall.digits_server.paths
    dataset_lists: every image path absolute, resolved under the server's data folders)."""
    lists = folder / "lists"
    for name, text in texts.items():
        atomic_write_text(lists / f"{name}.txt", text)  # a server killed mid-write leaves none
    return lists


def build_dataset_job(store, record) -> None:
    """The dataset job: upcall's LMDB build into the job folder (dataset.json, train_db, val_db,
    mean.binaryproto, labels.txt), ``native`` when the asked size is the images' own."""
    from PIL import Image

    from upcall.data.dataset import DatasetSettings, build_dataset, read_list

    folder = store.folder(record.id)
    form = record.form
    size = (int(form["resize_height"]), int(form["resize_width"]))
    first = read_list(folder / "lists" / "train.txt", n_labels=1 << 30)[0][0]
    with Image.open(first) as im:
        native = (im.height, im.width) == size
    settings = DatasetSettings(
        size=None if native else size,
        resize_mode=form["resize_mode"],
        encoding=form["encoding"],
        workers=1,
    )
    store.abort_hooks[record.id] = lambda kill=False: None  # delete waits for this build
    build = folder / ".build"
    _check_running(store, record)
    build_dataset(folder / "lists", out=build, settings=settings)  # no val.txt: a train DB only
    _check_running(store, record)
    write_mean_jpg(build)
    for part in build.iterdir():
        part.rename(folder / part.name)
    build.rmdir()


def write_mean_jpg(folder: Path) -> None:
    """mean.jpg beside mean.binaryproto: DIGITS's MEAN_FILE_IMAGE, a JPEG of the resize size
    (served as /files/<dataset id>/mean.jpg)."""
    from PIL import Image

    from upcall.data.datum import read_mean
    from upcall.fsutil import atomic_path

    mean = read_mean(folder / "mean.binaryproto")  # (C, H, W) floats
    pixels = np.clip(np.around(mean), 0, 255).astype(np.uint8)
    # a colour mean is stored BGR, as Caffe reads it; the JPEG is RGB
    image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels[::-1].transpose(1, 2, 0))
    with atomic_path(folder / "mean.jpg") as tmp:
        image.save(tmp, format="JPEG")


def solver_settings(parsed: dict, lr: float) -> SolverSettings:
    """DIGITS's model form → upcall's SolverSettings (percent-of-training values as DIGITS)."""
    f = parsed["form"]
    policy = f["lr_policy"]
    gamma = {
        "step": parsed["lr_step_gamma"],
        "multistep": parsed["lr_multistep_gamma"],
        "exp": parsed["lr_exp_gamma"],
        "inv": parsed["lr_inv_gamma"],
        "sigmoid": parsed["lr_sigmoid_gamma"],
    }.get(policy)
    from upcall.digits_server.forms import SOLVER_TYPES

    return SolverSettings(
        base_lr=lr,
        epochs=parsed["epochs"],
        solver_type=SOLVER_TYPES[f["solver_type"]],
        lr_policy=policy,
        step_pct=parsed["lr_sigmoid_step"] if policy == "sigmoid" else parsed["lr_step_size"],
        multistep_pct=parsed["multistep"] or (50.0, 85.0),
        gamma=gamma,
        power={"inv": parsed["lr_inv_power"], "poly": parsed["lr_poly_power"]}.get(policy),
        rms_decay=parsed["rms_decay"] if parsed["rms_decay"] is not None else 0.99,
        iter_size=parsed["batch_accumulation"] or 1,
        snapshot_epochs=parsed["snapshot_interval"] or 1.0,
        val_epochs=parsed["val_interval"] or 1.0,
        seed=parsed["random_seed"],
    )


def write_model_job(
    folder: Path, dataset_folder: Path, parsed: dict, lr: float, engine: str | None = None
) -> None:
    """solver/train_val/deploy prototxts and config.json of one model job (``upcall nets``'s
    make_job); the network as given is kept as original.prototxt, as DIGITS keeps it."""
    from upcall.job.datasetinfo import load_dataset
    from upcall.job.nets import make_job

    f = parsed["form"]
    if f["method"] == "custom":
        spec = str(folder / "original.prototxt")
        (folder / "original.prototxt").write_text(f["custom_network"], encoding="utf-8")
    else:
        from upcall.network.load import load_network
        from upcall.proto import to_text

        spec = f["standard_networks"]
        # DIGITS keeps every model's network as given, a standard one too ("model file")
        atomic_write_text(folder / "original.prototxt", to_text(load_network(spec)[1]))
    job = make_job(
        spec,
        load_dataset(dataset_folder),
        solver_settings(parsed, lr),
        batch_size=parsed["batch_size"],
        engine=engine or "torch",
    )
    for name, text in job.prototxts.items():
        (folder / name).write_text(text, encoding="utf-8")
    job.config.write(folder)


def train_model_job(store, record) -> None:
    """Train one model job with the store's engine in a child process; abort = SIGINT."""
    from upcall.digits_server.forms import check_model

    folder = store.folder(record.id)
    if not (folder / "config.json").exists():  # created while its dataset was being built
        parsed = check_model(record.form, {record.dataset_id})
        write_model_job(
            folder, store.folder(record.dataset_id), parsed, parsed["rates"][0], record.engine
        )
    # a worker process (upcall.parallel): it dies with the server; SIGINT is the abort
    engine = record.engine or "torch"
    child = start_process(train, engine, str(folder), output=folder / CHILD_OUTPUT)
    ended = threading.Event()  # only this thread waits for the child (polling is not thread-safe)

    def signal_child(sig: int) -> None:
        if not ended.is_set():
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                os.kill(child.pid, sig)

    def stop(kill: bool = False) -> None:
        if kill:
            signal_child(signal.SIGKILL)  # the job is being deleted: no snapshot wanted
        elif not ended.is_set():
            signal_child(signal.SIGINT)  # the run loop snapshots and stops
            threading.Timer(STOP_SECONDS, signal_child, (signal.SIGKILL,)).start()

    store.abort_hooks[record.id] = stop
    if store.get(record.id) is None or store.get(record.id).status != "Running":
        stop()  # aborted before the hook was in place
    child.join()
    ended.set()
    rc = child.exitcode
    if folder.is_dir():
        write_caffe_log(folder)
    now = store.get(record.id)
    if now is None or now.status != "Running":
        return  # aborted or deleted
    if rc != 0:
        lines = (folder / CHILD_OUTPUT).read_text(errors="replace").strip().splitlines()
        raise UpcallError(lines[-1] if lines else f"training exited with status {rc}")


def write_caffe_log(folder: Path) -> None:
    """caffe_output.log in Caffe's glog format from metrics.jsonl, for a job whose engine did not
    write one (the caffe engine keeps Caffe's own). DIGITS's and upcall's log parsers read it."""
    from upcall.job.records import TestRecord, TrainRecord, read_metrics, read_summary

    if (folder / CAFFE_LOG).exists() and not (folder / f".{CAFFE_LOG}.upcall").exists():
        return
    stamp = time.strftime("%m%d %H:%M:%S.000000", time.localtime())
    lines = []

    def say(where: str, text: str) -> None:
        lines.append(f"I{stamp} {1:5d} {where}] {text}\n")

    for r in read_metrics(folder, missing_ok=True):
        if isinstance(r, TrainRecord):
            loss = "nan" if r.loss is None else f"{r.loss:g}"
            say("solver.cpp:218", f"Iteration {r.iter} (0 iter/s, 0s/1 iters), loss = {loss}")
            say("solver.cpp:237", f"    Train net output #0: loss = {loss}")
            say("sgd_solver.cpp:105", f"Iteration {r.iter}, lr = {r.lr:g}")
        elif isinstance(r, TestRecord):
            say("solver.cpp:330", f"Iteration {r.iter}, Testing net (#0)")
            for i, (name, v) in enumerate((("accuracy", r.val_accuracy), ("loss", r.val_loss))):
                if v is not None:
                    say("solver.cpp:397", f"    Test net output #{i}: {name} = {v:g}")
    summary = read_summary(folder) if (folder / "summary.json").exists() else None
    for name in summary.snapshots if summary else ():
        say("sgd_solver.cpp:273", f"Snapshotting to binary proto file {name}")
    if summary:
        say("solver.cpp:310", "Optimization Done.")
    (folder / CAFFE_LOG).write_text("".join(lines), encoding="utf-8")
    (folder / f".{CAFFE_LOG}.upcall").touch()  # ours: rewrite it after a resumed run


__all__ = ["build_dataset_job", "train_model_job", "write_lists", "write_model_job"]
