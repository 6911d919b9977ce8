"""``upcall nets``: one Caffe job folder per (network, learning rate), as DIGITS would write it.

Each JOBS/<network>-lr<lr>/ holds solver.prototxt, train_val.prototxt (data sources and mean as
absolute paths), deploy.prototxt and config.json (ARCHITECTURE.md §5). A network is a registry
name (``upcall nets --list``) or the path of a user's own DIGITS-style / Caffe train_val prototxt.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from google.protobuf import text_format

from upcall import __version__
from upcall.augment.batches import OnlineAugment
from upcall.data.dataset import DatasetManifest
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import OWN_MARK, atomic_dir, check_own_dir
from upcall.job.config import JobConfig
from upcall.job.datasetinfo import DatasetInfo, load_dataset, tutorial_dataset
from upcall.job.solver import LR_POLICIES, SOLVER_TYPES, SolverSettings, make_solver, schedule
from upcall.network import augment_layer
from upcall.network.classweights import (
    INFOGAIN_FILE,
    UNWEIGHTED,
    ClassWeights,
    infogain_blob,
    parse_class_weights,
    resolve,
    weigh_train_loss,
)
from upcall.network.load import load_network, parse_net_params
from upcall.network.shapes import cost, infer_shapes
from upcall.network.zoo import NETWORKS, get
from upcall.network.zoo.prepare import prepare
from upcall.proto import caffe_pb2, to_text

HELP = "write Caffe solver/train_val/deploy prototxts per network and learning rate"
JOB_FILES = (
    "solver.prototxt",
    "train_val.prototxt",
    "deploy.prototxt",
    "config.json",
    INFOGAIN_FILE,
    *augment_layer.FILES,  # online augmentation's modules (--augment)
)

TUTORIAL_LRS = (0.001, 0.005, 0.01, 0.05)
# `--engine`: upcall.engines.ENGINES' names (a test keeps them equal; job/ sits below engines/)
JOB_ENGINES = ("caffe", "digits", "torch")
TUTORIAL_NETWORKS = ("alexnet", "googlenet", "whalenet")


@dataclass(frozen=True)
class Job:
    name: str  # folder name: <network>-lr<lr>
    prototxts: dict[str, str]  # file name → text: solver, train_val, deploy
    config: JobConfig  # config.json
    files: dict[str, bytes] = field(default_factory=dict)  # binary files: infogain.binaryproto

    def holds(self, folder: Path) -> bool:
        """Whether ``folder`` holds this job already (config.json's upcall_version may differ:
        a new upcall release keeps the jobs an older one trained)."""
        for name, text in self.prototxts.items():
            path = folder / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                return False
        for name, data in self.files.items():
            path = folder / name
            if not path.is_file() or path.read_bytes() != data:
                return False
        try:
            return JobConfig.read(folder) == JobConfig.from_json(self.config.to_json())
        except UpcallError:
            return False


def make_job(
    spec: str,
    dataset: DatasetInfo,
    settings: SolverSettings,
    *,
    batch_size: int | None = None,
    class_weights: ClassWeights = UNWEIGHTED,
    net_params: Mapping[str, object] | None = None,
    augment: OnlineAugment | None = None,
    engine: str = "torch",
) -> Job:
    """All files of one job: network ``spec`` (with builder keywords ``net_params``) on
    ``dataset`` with ``settings``; ``class_weights`` other than none make the train-phase loss
    an InfogainLoss (``upcall.network.classweights``). For ``engine`` "torch" a layer the torch
    engine does not implement is refused here, before any training."""
    name, network, origin = load_network(spec, net_params)
    where = spec if "prototxt" in origin else name
    if origin.get("native_only") and dataset.size != "native":
        raise UpcallError(
            f"{name} is designed for the native spectrogram; this dataset is "
            f"{dataset.height}×{dataset.width} ({dataset.size}): rebuild it with "
            f"`upcall lmdb LISTS --size native`"
        )
    train_val, deploy = prepare(
        network, dataset.source(), batch_size=batch_size, where=where, engine=engine
    )
    files = {}
    if class_weights.active:
        class_weights = resolve(
            class_weights,
            _train_counts(dataset),
            dataset.labels,
            where=f"{dataset.path}/{DatasetManifest.FILE}",
        )
        train_val = weigh_train_loss(train_val, where=where)
        files[INFOGAIN_FILE] = infogain_blob(class_weights.weights)
    if augment is not None:  # train-only Python layer (upcall.network.augment_layer)
        train_val = augment_layer.add_layer(train_val, augment, where=where)
        files.update(augment_layer.job_files())
    batches = {
        x.include[0].phase: x.data_param.batch_size for x in train_val.layer if x.type == "Data"
    }
    sizes = dict(
        train_count=dataset.train_count,
        val_count=dataset.val_count,
        batch_size=batches[caffe_pb2.TRAIN],
        val_batch_size=batches.get(caffe_pb2.TEST, 0),  # none: a dataset without validation
    )
    solver = make_solver(settings, **sizes)
    macs, params = cost(deploy, infer_shapes(deploy, {}, lenient=engine != "torch"))
    config = JobConfig(
        network=name,
        network_source=origin,
        base_lr=settings.base_lr,
        epochs=settings.epochs,
        batch_size=sizes["batch_size"],
        val_batch_size=sizes["val_batch_size"],
        dataset=dataset.path,
        dataset_info=dataset.info,
        dataset_fingerprint=dataset.fingerprint,
        solver=asdict(settings),
        schedule=asdict(schedule(settings, **sizes)),
        seed=settings.seed,
        deploy_input=tuple(deploy.layer[0].input_param.shape[0].dim),
        multiply_adds_per_image=macs,
        parameters=params,
        class_weights=class_weights if class_weights.active else None,
        augment=augment.to_dict() if augment is not None else None,
        upcall_version=__version__,
    )
    prototxts = {
        "solver.prototxt": to_text(solver),
        "train_val.prototxt": to_text(train_val),
        "deploy.prototxt": to_text(deploy),
    }
    return Job(f"{name}-lr{settings.base_lr:g}", prototxts, config, files)


def _train_counts(dataset: DatasetInfo) -> list[int]:
    """Training images per class (label order) as dataset.json records them; [] if it does not."""
    counts = DatasetManifest.from_json(dataset.info).counts.get("train")
    if not isinstance(counts, dict):
        return []
    return [int(counts.get(name, 0)) for name in dataset.labels]


def make_jobs(
    specs: Sequence[str],
    dataset: DatasetInfo,
    base: SolverSettings,
    lrs: Sequence[float],
    *,
    report: BatchReport,
    batch_size: int | None = None,
    class_weights: ClassWeights = UNWEIGHTED,
    net_params: Mapping[str, object] | None = None,
    augment: OnlineAugment | None = None,
    engine: str = "torch",
) -> list[Job]:
    """Every (network, rate) job; a network that does not fit the dataset is reported once (not
    once per rate) and left out."""
    jobs = []
    for spec in specs:
        try:
            jobs += [
                make_job(
                    spec,
                    dataset,
                    replace(base, base_lr=lr),
                    batch_size=batch_size,
                    class_weights=class_weights,
                    net_params=net_params,
                    augment=augment,
                    engine=engine,
                )
                for lr in lrs
            ]
        except UpcallError as e:
            report.fail(spec, str(e))
    return jobs


def write_job(job: Job, out: Path) -> Path:
    """Write ``job`` under ``out`` all at once; never over a job that has training results."""
    folder = out / job.name
    check_own_dir(folder, kind="nets", legacy=(JobConfig.FILE,))  # never a folder of something else
    if folder.exists():
        extra = sorted(p.name for p in folder.iterdir() if p.name not in (*JOB_FILES, OWN_MARK))
        if extra:
            raise UpcallError(
                f"{folder}: already has training results ({extra[0]}, ...); "
                f"write to another --out or remove it"
            )
    with atomic_dir(folder, kind="nets", legacy=(JobConfig.FILE,)) as tmp:
        for fname, text in job.prototxts.items():
            (tmp / fname).write_text(text, encoding="utf-8")
        for fname, data in job.files.items():
            (tmp / fname).write_bytes(data)
        job.config.write(tmp)
    return folder


def write_tutorial(out: str | os.PathLike) -> list[Path]:
    """The tutorial's jobs (3 networks × 4 rates, 5 epochs) with paths relative to each job:
    ../whale_256 for AlexNet and GoogLeNet, ../whale_native for WhaleNet (prototxt/README.md)."""
    out = Path(out)
    written = []
    for name in TUTORIAL_NETWORKS:
        native = get(name).native_only
        dataset = tutorial_dataset(
            "native" if native else "256x256", "../whale_native" if native else "../whale_256"
        )
        for lr in TUTORIAL_LRS:
            written.append(
                write_job(make_job(name, dataset, SolverSettings(base_lr=lr, epochs=5)), out)
            )
    return written


# WhaleNet, as the README and `upcall demo` have it: it reads the native 129×30 spectrogram
# (`upcall lmdb --size native`); AlexNet and GoogLeNet are there by name, as in the tutorial.
DEFAULT_NETWORK = "whalenet"


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    d = SolverSettings()
    parser.add_argument("--dataset", help="dataset folder made by `upcall lmdb`")
    cliargs.add_networks(parser, NETWORKS, default=DEFAULT_NETWORK)
    parser.add_argument(
        "--lr",
        default="0.01",
        help="comma-separated base learning rates (default 0.01, DIGITS's form default)",
    )
    cliargs.add_epochs(
        parser,
        d.epochs,
        "DIGITS's form default, as the jobs DIGITS writes; `upcall sweep` keeps the tutorial's "
        "5, `upcall fit` its measured recipe's 15",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="override the networks' batch sizes, at least 1 (default: each network's own)",
    )
    parser.add_argument(
        "--net-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a registry network's builder parameter, e.g. width=32 or time_pool=true "
        "(repeatable; values are JSON numbers, true/false, or text; default: the network's own)",
    )
    parser.add_argument(
        "--solver-type",
        choices=SOLVER_TYPES,
        default=d.solver_type,
        help=f"Caffe solver type (default {d.solver_type}, DIGITS's)",
    )
    parser.add_argument(
        "--lr-policy",
        choices=LR_POLICIES,
        default=d.lr_policy,
        help=f"learning-rate policy, DIGITS's parameters (default {d.lr_policy}, DIGITS's)",
    )
    cliargs.add_seed(
        parser, "Caffe random_seed, written into solver.prototxt and config.json; seeds training"
    )
    parser.add_argument(
        "--class-weights",
        default="none",
        metavar="none|balanced|W0,W1",
        help="weight the training loss by class: balanced gives class k the weight "
        "n/(K*n_k) from the dataset's training counts; W0,W1 gives them in label order. "
        "Written as Caffe's InfogainLoss (train phase only; the val loss stays unweighted). "
        "(default none)",
    )
    parser.add_argument(
        "--augment",
        default="none",
        metavar="SPEC",
        help="online augmentation of each training batch, e.g. "
        "shift=4,freq=2,tmask=6,fmask=8,mix=0.5: time shift by up to 4 columns, frequency "
        "shift by up to 2 rows, a time mask of up to 6 columns, a frequency mask of up to 8 "
        "rows, mixing in a not-whale clip of the batch with a weight up to 0.5; p=PROB is "
        "each transform's chance per image (default 0.5), seed=N its seed (default --seed). "
        "Written as a train-phase Caffe Python layer; time is never mirrored (default none)",
    )
    parser.add_argument(
        "--engine",
        choices=JOB_ENGINES,
        default="torch",
        help="the engine the jobs are for: with torch (the default) a layer it does not "
        "implement is refused now, not when training starts; caffe and digits (real Caffe) "
        "take every Caffe 1.0 layer",
    )
    cliargs.add_gpu(
        parser, "write solver_mode GPU: the jobs train on CUDA device N (Caffe's device_id)"
    )
    cliargs.add_out(parser, "folder for the job folders (required, but for --list)")
    parser.add_argument(
        "--list", action="store_true", help="list the known networks with their cost, and exit"
    )


def on_device(job: Job, device: int) -> Job:
    """``job`` with Caffe's ``device_id`` in its solver: the GPU a plain ``caffe train`` uses
    (``upcall train --gpu N`` chooses its own)."""
    solver = text_format.Parse(job.prototxts["solver.prototxt"], caffe_pb2.SolverParameter())
    solver.device_id = device
    return replace(job, prototxts={**job.prototxts, "solver.prototxt": to_text(solver)})


def parse_lrs(text: str) -> list[float]:
    try:
        lrs = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UpcallError(f"--lr must be comma-separated numbers, not {text!r}") from None
    if not lrs or not all(math.isfinite(lr) and lr > 0 for lr in lrs):
        raise UpcallError(f"--lr needs positive learning rates, got {text!r}")
    return lrs


def check_batch_size(batch_size: int | None) -> None:
    """UpcallError for a ``--batch-size`` below 1 (0 would silently mean "the network's own")."""
    if batch_size is not None and batch_size < 1:
        raise UpcallError(f"--batch-size must be at least 1, not {batch_size}")


def _print_list() -> None:
    for name, n in NETWORKS.items():
        ds = tutorial_dataset("native" if n.native_only else "256x256", "DATASET")
        deploy = prepare(n.build(), ds.source(), where=name)[1]
        macs, params = cost(deploy, infer_shapes(deploy, {}))
        dims = "×".join(str(d) for d in deploy.layer[0].input_param.shape[0].dim[1:])
        print(
            f"{name:15s} input {dims:10s} {macs / 1e6:8.1f} M mult-adds "
            f"{params / 1e6:7.3f} M params  {n.description}"
        )


def run(args: argparse.Namespace) -> int:
    if args.list:
        _print_list()
        return 0
    if not args.dataset or not args.out:
        raise UpcallError("--dataset and --out are required (or use --list)")
    lrs = parse_lrs(args.lr)
    check_batch_size(args.batch_size)
    class_weights = parse_class_weights(args.class_weights)
    seed = args.seed  # `--seed random` was drawn and printed by the parser
    augment = augment_layer.parse_augment(args.augment, seed=seed)
    dataset = load_dataset(args.dataset)
    base = SolverSettings(
        epochs=args.epochs,
        solver_type=args.solver_type,
        lr_policy=args.lr_policy,
        seed=seed,
        gpu=args.gpu is not None,
    )
    report = BatchReport("jobs")
    out = Path(args.out).resolve()
    specs = [s.strip() for s in args.networks.split(",") if s.strip()]
    net_params = parse_net_params(args.net_param)
    jobs = make_jobs(
        specs,
        dataset,
        base,
        lrs,
        report=report,
        batch_size=args.batch_size,
        class_weights=class_weights,
        net_params=net_params,
        augment=augment,
        engine=args.engine,
    )
    if args.gpu:  # device 0 is Caffe's default: bare --gpu writes the solver it always did
        jobs = [on_device(job, args.gpu) for job in jobs]
    for job in jobs:
        try:
            print(write_job(job, out))
            report.ok()
        except UpcallError as e:
            report.fail(job.name, str(e))
    report.finish()
    return 0
