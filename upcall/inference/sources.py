"""Which model a path holds, opened as a :class:`~upcall.inference.model.Model`: :func:`load_model`.

    JOB/ (config.json or solver.prototxt)   a trained job; config.json's network_source kind
                                            "classical" is the baseline (JOB_KINDS)
    MODEL.onnx                              `upcall export --format onnx`, run by ONNX Runtime
    FOLDER/ with export.json                `upcall export --format caffe`
    download.tar.gz (.tgz .tar .tar.bz2 .zip), or a folder of deploy.prototxt + *.caffemodel
    + labels.txt (no config.json)           a model made elsewhere (:mod:`.foreign`)
"""

from __future__ import annotations

import importlib
from pathlib import Path

from upcall.data.datum import read_mean
from upcall.data.listsfolder import read_labels
from upcall.errors import UpcallError
from upcall.inference.foreign import ARCHIVES, open_archive, open_folder
from upcall.inference.inputs import InputSpec, dataset_info
from upcall.inference.model import ClassicalJobModel, Model, NetModel
from upcall.inference.onnx.metadata import DeployInfo
from upcall.inference.predict import BACKENDS
from upcall.job.config import JobConfig
from upcall.job.deploy import Preprocess, read_deploy, read_deploy_net, snapshot_weights

# Jobs that are not a Caffe net: config.json's network_source["kind"] -> "module:class" with a
# ``load(job)`` classmethod and ``class_names``; the object classifies clips itself (the
# classical baseline computes its own features from the audio), so it has no deploy net,
# Preprocess or backend.
JOB_KINDS: dict[str, str] = {"classical": "upcall.classical.model:ClassicalModel"}


def default_backend() -> str:
    """torch where it imports; else pycaffe in the Caffe root, so a machine with Caffe and no
    (working) torch still scores a job folder (the report's figures). A probe by name: the
    backends registry, not this module, is what uses torch."""
    import importlib

    try:
        importlib.import_module("torch")
    except ImportError:
        return "caffe"
    return "torch"


def load_model(
    path: Path,
    *,
    snapshot: int | None = None,
    backend: str | None = None,
    gpu: int | None = None,
    threads: int | None = None,
) -> Model:
    """The model at ``path`` (see the module doc) with the snapshot of iteration ``snapshot``
    (default: the latest complete one).

    ``backend``: what runs a deploy net, a name in :data:`upcall.inference.predict.BACKENDS`
    (default torch; a .onnx model always runs on ONNX Runtime); ``gpu``: device index, None for
    the CPU; ``threads``: CPU threads the backend may use (None: every core). Reading the model
    imports no backend: that happens on its first use.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if snapshot is not None:
            raise UpcallError(f"{path}: an exported model holds one snapshot; leave out --snapshot")
        return open_onnx(path, gpu=gpu, threads=threads)
    backend = backend or "torch"
    if (kind := job_kind(path)) is not None:
        if snapshot is not None:
            raise UpcallError(f"{path}: has no snapshots (not a network job); leave out --snapshot")
        module_name, cls = JOB_KINDS[kind].split(":")
        return ClassicalJobModel(path, getattr(importlib.import_module(module_name), cls))
    if backend not in BACKENDS:
        raise UpcallError(f"unknown backend {backend!r}; known: {', '.join(sorted(BACKENDS))}")
    run = {"backend": backend, "gpu": gpu, "threads": threads}
    if path.name.lower().endswith(ARCHIVES) and path.is_file():
        return open_archive(path, snapshot=snapshot, **run)
    if path.is_dir() and not (path / JobConfig.FILE).is_file():
        if (path / DeployInfo.FILE).is_file():
            return open_caffe_export(path, snapshot=snapshot, **run)
        # an unpacked DIGITS download holds a solver.prototxt too: its labels.txt tells it
        if (path / "deploy.prototxt").is_file() and (path / "labels.txt").is_file():
            return open_folder(path, snapshot=snapshot, **run)
        if not (path / "solver.prototxt").is_file():  # else a job written by hand
            raise UpcallError(
                f"{path}: not a model: no config.json (a job), export.json (a Caffe export) or "
                "deploy.prototxt with labels.txt (a DIGITS or Caffe model) in it"
            )
    return open_job(path, snapshot=snapshot, **run)


def job_kind(job: Path) -> str | None:
    """The :data:`JOB_KINDS` kind of ``job``, or None for a job with a deploy net (or no job)."""
    if not (Path(job) / JobConfig.FILE).is_file():
        return None
    config = JobConfig.read(Path(job))
    kind = config.network_source.get("kind") if config is not None else None
    return kind if kind in JOB_KINDS else None


def open_job(job: Path, *, snapshot: int | None, **run) -> NetModel:
    """A network job: its deploy net, its validation transform and its dataset's input spec."""
    deploy = read_deploy(job, snapshot=snapshot)

    def spec() -> InputSpec:  # config.json's dataset, read when first asked for
        return InputSpec.from_dataset_info(dataset_info(deploy.job))

    def spectrograms() -> dict | None:
        dataset = dataset_info(deploy.job)
        return dataset.spectrograms.to_json() if dataset.spectrograms else None

    return NetModel(job, "job", deploy, spec, spectrograms=spectrograms, **run)


def open_onnx(path: Path, *, gpu: int | None = None, threads: int | None = None) -> NetModel:
    """A model from `upcall export --format onnx`: everything it needs is in its metadata."""
    from upcall.inference.onnx.predict import load_onnx

    predictor = load_onnx(path, gpu=gpu, threads=threads)
    info = predictor.info
    spec = InputSpec.from_json(info.input)
    return NetModel(
        path, "onnx", predictor.deploy, spec, gpu=gpu, threads=threads, predictor=predictor,
        spectrograms=info.spectrograms,
    )  # fmt: skip


def open_caffe_export(folder: Path, *, snapshot: int | None, **run) -> NetModel:
    """A folder from `upcall export --format caffe`, run by real Caffe or the torch engine."""
    folder = Path(folder).resolve()
    info = DeployInfo.require(folder, "is it a folder from `upcall export --format caffe`?")
    path = folder / "deploy.prototxt"
    labels = tuple(read_labels(folder / "labels.txt"))
    if len(labels) != len(info.class_names):
        raise UpcallError(
            f"{folder / 'labels.txt'}: {len(labels)} class names, export.json has "
            f"{len(info.class_names)}"
        )
    deploy = read_deploy_net(
        path,
        job=folder,
        weights=snapshot_weights(folder, snapshot),
        class_names=labels,
        preprocess=Preprocess(
            mean=read_mean(folder / "mean.binaryproto"), crop_size=info.crop_size, scale=info.scale
        ),
    )
    if list(deploy.input_shape) != list(info.input_shape):
        raise UpcallError(
            f"{path}: input {list(deploy.input_shape)} differs from export.json's {info.input_shape}"
        )
    spec = InputSpec.from_json(info.input)
    return NetModel(folder, "caffe-export", deploy, spec, spectrograms=info.spectrograms, **run)


__all__ = ["JOB_KINDS", "job_kind", "load_model"]
