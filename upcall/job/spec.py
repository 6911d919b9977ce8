"""A job directory, parsed for an engine: solver, net, the Data layers, snapshot names.

Every engine reads a job the same way (ARCHITECTURE.md §5): ``solver.prototxt`` names the net;
Data-layer sources and mean files resolve against the job directory, as Caffe resolves them when
it runs there; ``config.json`` adds the network name, the seed and the dataset (for class names).
Torch-free, so ``--engine caffe`` (and a remote engine) neither loads nor needs torch; the torch
engine resolves the Data layers' transform_param when it feeds them. Snapshot names are
:mod:`upcall.job.snapshots`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from upcall.data.listsfolder import read_labels
from upcall.errors import UpcallError
from upcall.job import snapshots, sources
from upcall.job.config import JobConfig
from upcall.network.phase import filter_net
from upcall.network.upgrade import read_net, read_solver
from upcall.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


@dataclass(frozen=True)
class DataSpec:
    """One phase's data layer (Data, ImageData, HDF5Data or DummyData): where its records are
    and how they are fed."""

    source: Path  # Data: the LMDB; ImageData, HDF5Data: the list file; DummyData: the job
    batch_size: int
    transform_param: caffe_pb2.TransformationParameter
    base: Path  # what a relative mean_file resolves against: the job directory
    tops: tuple[str, ...]  # (data, label)
    layer: caffe_pb2.LayerParameter | None = None  # None: a Data layer made by hand

    @property
    def kind(self) -> str:
        return self.layer.type if self.layer is not None else "Data"

    def count(self) -> int:
        """The records the layer's source holds (an LMDB's entries, a list's lines ...)."""
        if self.layer is None:
            from upcall.data.datum import open_db  # lmdb; only a run needs it

            with open_db(self.source) as env:
                return int(env.stat()["entries"])
        return sources.record_count(self.layer, self.base)


@dataclass(frozen=True)
class ValPass:
    """How every engine scores the validation set for upcall's figures: each record once.

    Caffe's test pass runs ``test_iter`` batches and wraps around the LMDB to fill the last one
    (DIGITS sets test_iter = ceil(N / batch)), so when N is not a multiple of the batch the first
    records count twice: 150 clips with batch 100 gave 200 scores, 50 of them repeats. Engines
    run :attr:`batches` batches from the first record, whatever test_iter says, and the run loop
    keeps the first :attr:`count` scores (:meth:`keep`): Caffe's wrapped tail is dropped.
    """

    count: int  # records in the validation LMDB
    batch_size: int

    @property
    def batches(self) -> int:
        return -(-self.count // self.batch_size)

    def keep(self, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The scores and labels of each record once: the first ``count`` of a pass that began
        at the first record (an engine gave too few is a bug, not a smaller validation set)."""
        if len(scores) < self.count or len(labels) != len(scores):
            raise UpcallError(
                f"a validation pass gave {len(scores)} scores and {len(labels)} labels for "
                f"{self.count} validation records"
            )
        return scores[: self.count], labels[: self.count]


@dataclass(frozen=True)
class JobSpec:
    """A job directory, parsed: the solver, the net and the two Data layers."""

    job: Path
    solver: caffe_pb2.SolverParameter
    net: caffe_pb2.NetParameter
    train_data: DataSpec
    test_data: DataSpec | None
    class_names: tuple[str, ...]
    network: str
    seed: int
    prefix: Path  # snapshot prefix, resolved against the job directory

    def snapshot_path(self, it: int, suffix: str) -> Path:
        return snapshots.path(self, it, suffix)

    @cached_property
    def val_pass(self) -> ValPass | None:
        """The validation pass (its source's size read once); None without a TEST data layer."""
        if self.test_data is None:
            return None
        return ValPass(count=self.test_data.count(), batch_size=self.test_data.batch_size)


def _data_spec(net: caffe_pb2.NetParameter, phase: int, job: Path) -> DataSpec | None:
    kinds = sources.DATA_LAYER_TYPES
    layers = [lay for lay in filter_net(net, phase=phase).layer if lay.type in kinds]
    if not layers:
        return None
    if len(layers) > 1:
        raise UpcallError(f"{job}: more than one data layer in phase {caffe_pb2.Phase.Name(phase)}")
    lay = layers[0]
    if lay.type != "Data":
        return _other_data(lay, job)
    p = lay.data_param
    if p.backend != caffe_pb2.DataParameter.LMDB:
        raise UpcallError(f"{job}: Data layer {lay.name!r} must use backend: LMDB")
    if len(lay.top) != 2:
        raise UpcallError(f"{job}: Data layer {lay.name!r} needs two tops (data, label)")
    return DataSpec(
        source=job / p.source,
        batch_size=int(p.batch_size),
        transform_param=lay.transform_param,
        base=job,
        tops=tuple(lay.top),
    )


def _other_data(lay: caffe_pb2.LayerParameter, job: Path) -> DataSpec:
    """An ImageData, HDF5Data or DummyData layer (Caffe's checks on its tops and parameters)."""
    where = f"{job}: {lay.type} layer {lay.name!r}"
    if lay.type == "ImageData" and len(lay.top) != 2:
        raise UpcallError(f"{where} needs two tops (data, label)")
    if not lay.top:
        raise UpcallError(f"{where} needs a top")
    if lay.type == "HDF5Data" and lay.HasField("transform_param"):
        raise UpcallError(f"{where}: HDF5Data does not transform data (Caffe refuses it)")
    size = sources.batch_size(lay)
    if size < 1:
        raise UpcallError(f"{where}: batch size must be at least 1, not {size}")
    source = {
        "ImageData": lay.image_data_param.source,
        "HDF5Data": lay.hdf5_data_param.source,
    }.get(lay.type, "")
    return DataSpec(
        source=job / source,
        batch_size=size,
        transform_param=lay.transform_param,
        base=job,
        tops=tuple(lay.top),
        layer=lay,
    )


def job_dir(path: Path) -> Path:
    """The job directory ``path`` names: itself, or the folder of a ``solver.prototxt`` given."""
    path = Path(path)
    return path.parent if path.name == "solver.prototxt" and path.is_file() else path


def load_job(job: Path) -> JobSpec:
    """Parse a job directory made by ``upcall nets`` (or by hand, with Caffe's files); its
    ``solver.prototxt`` names it too."""
    job = job_dir(job).resolve()
    solver_path = job / "solver.prototxt"
    if not solver_path.exists():
        raise UpcallError(f"{solver_path}: no such file (is {job} a job directory?)")
    solver = read_solver(solver_path)
    if not solver.net:
        raise UpcallError(f"{solver_path}: needs a 'net:' (train_val.prototxt)")
    net = read_net(job / solver.net)
    train = _data_spec(net, TRAIN, job)
    if train is None:
        raise UpcallError(f"{job / solver.net}: no Data layer for the TRAIN phase")
    config = JobConfig.read(job) or JobConfig(network=net.name)
    config.check_dataset(job)  # a dataset rebuilt under the job would feed it the wrong images
    # Caffe's meaning: a solver random_seed wins; a job made without a seed (a DIGITS form left
    # blank, an older upcall nets) records null
    seed = solver.random_seed if solver.random_seed >= 0 else int(config.seed or 0)
    labels = config.dataset_path() / "labels.txt" if config.dataset else None
    names = read_labels(labels) if labels is not None and labels.is_file() else None
    return JobSpec(
        job=job,
        solver=solver,
        net=net,
        train_data=train,
        test_data=_data_spec(net, TEST, job),
        class_names=tuple(names or ("not-whale", "whale")),
        network=config.network,
        seed=seed,
        prefix=job / (solver.snapshot_prefix or snapshots.DEFAULT_PREFIX),
    )


def classifier_head(net: caffe_pb2.NetParameter) -> caffe_pb2.LayerParameter | None:
    """The last SoftmaxWithLoss of the TEST phase, (scores, label) -> loss: the head AUC is
    taken from; None when there is none."""
    heads = [lay for lay in filter_net(net, phase=TEST).layer if lay.type == "SoftmaxWithLoss"]
    return heads[-1] if heads else None


def check_data(spec: JobSpec) -> None:
    """UpcallError naming the file unless every Data layer's LMDB opens and reads (size, first
    and last record): checked before an engine starts, so a bad database is blamed, not the
    net that names it."""
    from upcall.data.datum import open_db  # lmdb; only a run needs it

    for data in (spec.train_data, spec.test_data):
        if data is not None and data.kind == "Data":
            with open_db(data.source):
                pass
        elif data is not None:
            data.count()  # the list and the files it names read
