"""The walk of a job folder: which upcall modules ``TorchEngine.train`` runs through, and how often
it comes back to one it left.

A tiny job (a 3-layer net on 40 + 16 synthetic 129×30 images in LMDBs, 6 iterations: two display
points, two validation passes, two snapshots) is trained on the torch engine under
``sys.setprofile``. Definition: every Python function *entered* (a ``call`` event, a generator
resumed included; not what an import runs: module and class bodies) while ``train`` runs is
attributed to its module; modules outside ``upcall``
and the numerics (``upcall.proto`` and ``upcall.engines.torch.{layers,net,fillers,losses,base,
solver,pylayers}``, which compute, not keep a job) are left out. On that sequence of entered
modules, consecutive repeats are merged into one; then

    modules  = the number of distinct modules in it,
    returns  = the entries into a module seen before, after having been in another one,
    distinct = the distinct (from, to) pairs among those returns (independent of iterations),
    job      = the modules among them that define the job folder (``upcall.job.*``; before
               issue 20: engines.jobspec/jobstate/snapshots, model.jobconfig,
               results.records/jobdir/curves/tensorboard) and the packages they lie in.

The job is made here with nothing but ``upcall.data.datum`` and ``upcall.engines.get_engine``,
which exist in every layout, so the same script measures an older checkout too:

    python benchmarks/job_walk.py                       # this tree
    cd OLD && PYTHONPATH=OLD python /path/to/benchmarks/job_walk.py --json   # an older tree
    python benchmarks/job_walk.py --compare OLD         # both, and the ratio
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import lmdb
import numpy as np

H, W, CROP = 129, 30, 28
NUMERICS = {"upcall.proto"} | {
    f"upcall.engines.torch.{m}"
    for m in ("layers", "net", "fillers", "losses", "base", "solver", "pylayers")
}
NET = """name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { crop_size: 28 mirror: true mean_file: "MEAN" scale: 0.0078125 }
  data_param { source: "DS/train_db" batch_size: 8 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { crop_size: 28 mean_file: "MEAN" scale: 0.0078125 }
  data_param { source: "DS/val_db" batch_size: 8 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc1" type: "InnerProduct" bottom: "conv1" top: "fc1"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "fc1" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc1" bottom: "label" top: "loss" }
"""
SOLVER = """net: "train_val.prototxt"
test_iter: 2
test_interval: 3
base_lr: 0.05
lr_policy: "fixed"
momentum: 0.9
display: 3
max_iter: 6
snapshot: 3
snapshot_prefix: "snapshot"
solver_mode: CPU
random_seed: 7
"""


# the job folder's modules in the layout before issue 20 (f744364)
OLD_JOB = {
    "upcall.engines.jobspec",
    "upcall.engines.jobstate",
    "upcall.engines.snapshots",
    "upcall.model.jobconfig",
    "upcall.results.records",
    "upcall.results.jobdir",
    "upcall.results.curves",
    "upcall.results.tensorboard",
}


def make_job(root: Path) -> Path:
    """A dataset (train/val LMDB, mean, labels) and a job folder as ``upcall nets`` writes one."""
    from upcall.data.datum import array_to_datum, write_mean

    rng = np.random.default_rng(0)
    ds, job = root / "dataset", root / "job"
    ds.mkdir()
    job.mkdir()
    mean = None
    for name, n in (("train_db", 40), ("val_db", 16)):
        labels = np.arange(n) % 2
        images = rng.integers(0, 120, (n, 1, H, W)).astype(np.uint8)
        images[labels == 1, :, 40:50, 5:25] += 120
        mean = images.mean(axis=0).round() if mean is None else mean
        env = lmdb.open(str(ds / name), map_size=1 << 26)
        with env.begin(write=True) as txn:
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                txn.put(b"%08d_%d" % (i, label), array_to_datum(image, int(label)))
        env.close()
    write_mean(ds / "mean.binaryproto", mean)
    (ds / "labels.txt").write_text("not-whale\nwhale\n")
    net = NET.replace("MEAN", str(ds / "mean.binaryproto")).replace("DS", str(ds))
    (job / "train_val.prototxt").write_text(net)
    (job / "solver.prototxt").write_text(SOLVER)
    config = {"network": "tiny", "base_lr": 0.05, "dataset": str(ds), "seed": 7}
    (job / "config.json").write_text(json.dumps(config))
    return job


def walk(job: Path) -> list[str]:
    """The upcall modules entered while the torch engine trains ``job``, in order."""
    from upcall.engines import get_engine

    engine = get_engine("torch", threads=1)
    entered: list[str] = []

    def importing(frame) -> bool:
        """Whether ``frame`` runs inside a module's body: an import in progress."""
        while frame is not None:
            if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") != "__main__":
                return True
            frame = frame.f_back
        return False

    def profile(frame, event, arg) -> None:
        if event == "call":
            name = frame.f_globals.get("__name__", "")
            if (
                name.startswith("upcall.")
                and not (name in NUMERICS or name.startswith("upcall.proto."))
                and not importing(frame)
            ):
                entered.append(name)

    sys.setprofile(profile)
    try:
        engine.train(job)
    finally:
        sys.setprofile(None)
    return entered


def measure(entered: list[str]) -> dict:
    changes = [m for i, m in enumerate(entered) if i == 0 or entered[i - 1] != m]
    seen: set[str] = set()
    returns, pairs = 0, set()
    for i, m in enumerate(changes):
        if m in seen:
            returns += 1
            pairs.add((changes[i - 1], m))
        seen.add(m)
    job = sorted(m for m in seen if m.startswith("upcall.job.") or m in OLD_JOB)
    return {
        "modules": len(seen),
        "returns": returns,
        "distinct": len(pairs),
        "visited": sorted(seen),
        "job": job,
        "job_packages": sorted({m.split(".")[1] for m in job}),
    }


def run_here() -> dict:
    os.environ.setdefault("UPCALL_PROGRESS", "off")
    with tempfile.TemporaryDirectory() as tmp:
        return measure(walk(make_job(Path(tmp))))


def show(label: str, m: dict) -> None:
    print(
        f"{label}: {m['modules']} modules, {m['returns']} returns ({m['distinct']} distinct); "
        f"job folder: {len(m['job'])} modules in {len(m['job_packages'])} package(s) "
        f"({', '.join(m['job_packages'])})"
    )
    print("  " + ", ".join(v.removeprefix("upcall.") for v in m["visited"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--compare", type=Path, metavar="OLD", help="also measure checkout OLD")
    args = parser.parse_args()
    here = run_here()
    if args.json:
        print(json.dumps(here))
        return
    if args.compare:
        old = json.loads(
            subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--json"],
                cwd=args.compare,
                env={**os.environ, "PYTHONPATH": str(args.compare.resolve())},
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()[-1]
        )
        show(f"before ({args.compare})", old)
    show("now", here)
    if args.compare:
        print(
            f"ratio now/before: modules {here['modules'] / old['modules']:.2f}, "
            f"returns {here['returns'] / max(old['returns'], 1):.2f}, "
            f"distinct returns {here['distinct'] / max(old['distinct'], 1):.2f}"
        )


if __name__ == "__main__":
    main()
