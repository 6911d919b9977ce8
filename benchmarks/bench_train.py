"""Training speed of the torch engine against real Caffe, and the tutorial-size runs.

Throughput (default): the same job (prototxt, LMDB, batch) trained for ``--iters`` iterations by
both engines, WhaleNet at the native 129×30 size and AlexNet at 256×256, on ``--threads`` CPU
threads. Each engine reports steady-state images/s (its first iteration excluded; Caffe's first
display interval excluded); the figure is the median of ``--repeats`` runs, and the ratio is
torch / Caffe.

    python benchmarks/bench_train.py --iters 20 --repeats 3
    python benchmarks/bench_train.py --tutorial --alexnet-iters 30   # long: 27,000 clips, 5 epochs

``--tutorial`` runs the tutorial-size WhaleNet training (30,000 synthetic clips → 27,000 train /
3,000 val, 5 epochs) with the torch engine and reports wall time and validation AUC; then AlexNet
on the same lists at 256×256 for ``--alexnet-iters`` iterations (of the 5 epochs' max_iter),
extrapolating the 5-epoch time from its steady-state speed, as it says.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import lmdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from upcall.data.datum import array_to_datum, write_mean
from upcall.engines import get_engine
from upcall.job.datasetinfo import load_dataset
from upcall.job.nets import make_job, write_job
from upcall.job.records import read_summary
from upcall.job.solver import SolverSettings
from upcall.proto import caffe_pb2, read_text, to_text

SIZES = {"whalenet": (129, 30), "alexnet": (256, 256)}


def random_dataset(folder: Path, *, height: int, width: int, n: int = 512, seed: int = 0) -> Path:
    """A dataset folder (train/val LMDB of random grey images, mean, dataset.json) for timing."""
    if (folder / "dataset.json").exists():
        return folder
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train", n), ("val", n // 4)):
        env = lmdb.open(str(folder / f"{name}_db"), map_size=1 << 32)
        with env.begin(write=True) as txn:
            for i in range(count):
                image = rng.integers(0, 256, (1, height, width), dtype=np.uint8)
                txn.put(b"%08d_%d" % (i, i % 2), array_to_datum(image, i % 2, encoding="none"))
        env.close()
    write_mean(folder / "mean.binaryproto", np.full((1, height, width), 127.0, np.float32))
    (folder / "labels.txt").write_text("not-whale\nwhale\n")
    size = "native" if (height, width) == SIZES["whalenet"] else f"{width}x{height}"
    info = {
        "image": {"height": height, "width": width, "channels": 1},
        "size": size,
        "counts": {"train": n, "val": n // 4},
        "labels": ["not-whale", "whale"],
    }
    (folder / "dataset.json").write_text(json.dumps(info))
    return folder


def timing_job(network: str, dataset: Path, out: Path, *, iters: int) -> Path:
    """A job that only trains: ``iters`` iterations, no tests, no snapshots, loss shown each time."""
    job = write_job(make_job(network, load_dataset(dataset), SolverSettings(epochs=1, seed=0)), out)
    solver = read_text(job / "solver.prototxt", caffe_pb2.SolverParameter())
    solver.max_iter, solver.display = iters, 1
    solver.test_interval, solver.test_initialization = iters + 1, False
    solver.snapshot, solver.snapshot_after_train = 0, False
    (job / "solver.prototxt").write_text(to_text(solver))
    return job


def rate(engine: str, job: Path, *, threads: int) -> float:
    """Steady-state training images/s of one fresh run of ``job``."""
    run = job.with_name(f"{job.name}-{engine}")
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(job, run)
    summary = get_engine(engine, threads=threads).train(run)
    shutil.rmtree(run)
    return float(summary.train_images_per_second)


def throughput(work: Path, *, networks: list[str], iters: int, repeats: int, threads: int) -> None:
    for network in networks:
        h, w = SIZES[network]
        dataset = random_dataset(work / f"data-{h}x{w}", height=h, width=w)
        job = timing_job(network, dataset, work / "jobs", iters=iters)
        rates = {"torch": [], "caffe": []}
        for _ in range(repeats):  # interleaved, so a busy spell hits both engines
            for engine in rates:
                rates[engine].append(rate(engine, job, threads=threads))
        torch_rate, caffe_rate = (statistics.median(rates[e]) for e in ("torch", "caffe"))
        print(
            f"{network} {h}×{w}, batch {load_batch(job)}, {iters} iterations, {threads} threads, "
            f"median of {repeats}: torch {torch_rate:.1f} img/s, caffe {caffe_rate:.1f} img/s, "
            f"ratio {torch_rate / caffe_rate:.2f}×  (runs: torch {rates['torch']}, "
            f"caffe {rates['caffe']})",
            flush=True,
        )


def load_batch(job: Path) -> int:
    net = read_text(job / "train_val.prototxt", caffe_pb2.NetParameter())
    return next(x.data_param.batch_size for x in net.layer if x.type == "Data")


def tutorial(work: Path, *, alexnet_iters: int, threads: int) -> None:
    from upcall.data.dataset import DatasetSettings, build_dataset
    from upcall.workflows.demo import DemoSettings, run_demo

    started = time.perf_counter()
    summary = run_demo(
        work / "tutorial", DemoSettings(n_train=30000, epochs=5, n_test=0), threads=threads
    ).summary
    final = summary.final
    print(
        f"WhaleNet, 27,000 clips × 5 epochs, {threads} threads: training {summary.wall_seconds:.0f} s "
        f"({summary.train_images_per_second:.0f} img/s), val AUC {final.val_auc:.4f}, "
        f"accuracy {final.val_accuracy:.4f}; whole demo pipeline {time.perf_counter() - started:.0f} s "
        f"(steps already done are skipped)",
        flush=True,
    )
    ds256 = work / "tutorial" / "dataset256"
    if not (ds256 / "dataset.json").exists():
        build_dataset(work / "tutorial" / "lists", out=ds256, settings=DatasetSettings(seed=0))
    job = make_job("alexnet", load_dataset(ds256), SolverSettings(base_lr=0.01, epochs=5, seed=0))
    folder = work / "tutorial" / "jobs" / job.name
    if not (folder / "summary.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_job(job, folder.parent)
        solver = read_text(folder / "solver.prototxt", caffe_pb2.SolverParameter())
        full = solver.max_iter
        solver.max_iter = min(alexnet_iters, full)
        solver.test_interval = solver.max_iter  # one validation, at the cap
        (folder / "solver.prototxt").write_text(to_text(solver))
        (folder / "full_max_iter.txt").write_text(f"{full}\n")
        get_engine("torch", threads=threads).train(folder)
    full = int((folder / "full_max_iter.txt").read_text())
    s = read_summary(folder)
    per_iter = load_batch(folder) / s.train_images_per_second
    print(
        f"AlexNet 256×256, {s.iterations} of {full} iterations (5 epochs) run, {threads} threads: "
        f"{s.train_images_per_second:.1f} img/s → 5 epochs extrapolated to {per_iter * full / 60:.0f} min "
        f"(training only); val AUC at iteration {s.iterations}: {s.final.val_auc:.4f} "
        f"(after {s.epochs:.2f} epochs, not 5)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/bench_train"))
    parser.add_argument("--networks", default="whalenet,alexnet")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tutorial", action="store_true", help="the long tutorial-size runs instead"
    )
    parser.add_argument("--alexnet-iters", type=int, default=30)
    args = parser.parse_args()
    if args.tutorial:
        tutorial(args.work, alexnet_iters=args.alexnet_iters, threads=args.threads)
    else:
        throughput(
            args.work,
            networks=args.networks.split(","),
            iters=args.iters,
            repeats=args.repeats,
            threads=args.threads,
        )


if __name__ == "__main__":
    main()
