"""The ablation table of issue 11: the classical baseline, WhaleNet before, each lever in turn.

For each training size N (default 6,000 and 30,000) this makes a Kaggle-layout folder of N
labelled clips (``upcall synth``, hard difficulty) and, once, a separate test folder of
--n-test clips from another seed whose labels (test_truth.csv) no model ever sees: not for
training, not for tuning, not for choosing a snapshot. (The levers and their settings were
chosen on a third synthetic set, seed 2000, never on this one.) Then, each through the real
commands:

* ``baseline``: ``upcall baseline`` (the 2013 winner's method: templates + gradient boosting);
* ``whalenet before``: the tutorial's 129×30 spectrogram, WhaleNet, lr 0.01, DIGITS's step
  policy over 5 epochs, as ``upcall demo`` trained before issue 11;
* one row per lever, each added to the rows above it (``upcall fit DATA --recipe ROW.json``).
  A lever marked "tried" is measured but not carried into the rows below: it did not pay for
  itself on the tuning set. The last carried row is ``upcall fit``'s default recipe;
* ``+ offline augmentation``: the carried recipe on lists grown by ``upcall augment``.

Printed per row: held-out test AUC, whale recall at 90 % precision, training time (s, on the
cores of this machine), inference cost (mult-adds per clip and classify's wall time per 1,000
clips) and the AUC ratio to the baseline at the same N, all measured in this run.

    .venv/bin/python benchmarks/bench_quality.py --sizes 6000,30000 --n-test 10000
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from _run import upcall  # benchmarks/_run.py: scripts here run from this folder

from upcall.metrics import auc
from upcall.workflows.recipe import DEFAULT_RECIPE

BEFORE = {  # the demo's recipe before issue 11
    "spectrogram_mode": "tutorial",
    "network": "whalenet",
    "network_params": {},
    "lr_policy": "step",
    "epochs": 5,
    "class_weights": None,
    "augment": None,
    "balance": "none",
}
# (row name, recipe keys it changes, carried into the rows below); "offline" is the carried
# recipe on lists grown by `upcall augment`
LEVERS: list[tuple[str, dict | str, bool]] = [
    ("+ fine spectrogram 65×59", {"spectrogram_mode": "fine"}, True),
    ("+ pool over time only", {"network_params": {"time_pool": True}}, True),
    ("+ poly lr, 15 epochs", {"lr_policy": "poly", "epochs": 15}, True),
    ("+ class weights", {"class_weights": "balanced"}, False),
    ("+ oversampled whales", {"balance": "oversample"}, False),
    ("+ undersampled not-whales", {"balance": "undersample"}, False),
    ("+ online augmentation", {"augment": "shift=6,freq=2,tmask=6,fmask=4,mix=0.5"}, False),
    ("+ offline augmentation", "offline", False),
    ("+ residual blocks, 10 epochs", {"network_params": {"convs": 2, "residual": True},
                                      "epochs": 10}, False),
]


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """The highest whale recall of any threshold whose precision is at least ``precision``."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order] == 1)
    kept = np.arange(1, len(order) + 1)
    ok = hits / kept >= precision
    return float(hits[ok].max() / max(1, labels.sum())) if ok.any() else 0.0


def test_scores(job: Path, test: Path, out: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(whale probability, true label) of every test clip from ``upcall classify``, and its
    wall time per 1,000 clips."""
    clips = sorted((test / "test").glob("*.aiff"))
    seconds = upcall("classify", job, *clips, "--csv", out)
    with open(test / "test_truth.csv", newline="") as f:
        truth = {r["clip_name"]: int(r["label"]) for r in csv.DictReader(f)}
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))  # classify's columns: input, label, one per class
    scores = np.array([float(r["whale"]) for r in rows])
    labels = np.array([truth[Path(r["input"]).name] for r in rows])
    return scores, labels, 1000 * seconds / len(clips)


def rows() -> list[tuple[str, dict, bool]]:
    """(name, recipe keys, offline?) of every network row: before, then each lever."""
    out, carried = [("whalenet before", dict(BEFORE), False)], dict(BEFORE)
    for name, changes, keep in LEVERS:
        label = name if keep else f"{name} (tried)"
        if changes == "offline":
            out.append((label, dict(carried), True))
            continue
        row = {**carried, **changes}
        if "network_params" in changes:
            row["network_params"] = {**carried["network_params"], **changes["network_params"]}
        out.append((label, row, False))
        carried = row if keep else carried
    return out


def recipe_file(keys: dict, path: Path) -> Path:
    """A recipe file: DEFAULT_RECIPE with ``keys`` (recipe.json's top-level names) over it."""
    solver_keys = {"lr_policy", "epochs", "base_lr", "solver_type", "seed"}
    recipe = replace(
        DEFAULT_RECIPE,
        **{k: v for k, v in keys.items() if k not in solver_keys},
        solver=replace(DEFAULT_RECIPE.solver, **{k: v for k, v in keys.items() if k in solver_keys}),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recipe.to_json(), indent=1))
    return path


def train_row(name: str, keys: dict, data: Path, work: Path, seed: int) -> tuple[Path, float]:
    """``upcall fit`` with the row's recipe; (job folder, training seconds from summary.json)."""
    out = work / name.split(" (")[0].replace(" ", "_").replace("+_", "").replace("×", "x")
    upcall("fit", data, "--out", out, "--recipe", recipe_file(keys, out.with_suffix(".json")),
           "--seed", seed)  # fmt: skip
    (job,) = (p for p in (out / "jobs").iterdir() if p.is_dir())
    return job, json.loads((job / "summary.json").read_text())["wall_seconds"]


def offline_row(keys: dict, data: Path, work: Path, seed: int, copies: int) -> tuple[Path, float]:
    """The recipe ``keys`` on lists grown by ``upcall augment`` (copies per training clip)."""
    base = work / "offline_base"
    upcall("fit", data, "--out", base, "--recipe", recipe_file(keys, base.with_suffix(".json")),
           "--seed", seed)  # fmt: skip
    out = work / "offline_augmentation"
    upcall("augment", base / "lists", "--copies", copies, "--seed", seed, "--out", out / "lists")
    upcall("lmdb", out / "lists", "--out", out / "dataset", "--size", "native", "--seed", seed)
    nets = ["--dataset", out / "dataset", "--networks", keys["network"], "--lr", 0.01,
            "--epochs", keys["epochs"], "--lr-policy", keys["lr_policy"], "--seed", seed,
            "--out", out / "jobs"]  # fmt: skip
    for key, value in keys["network_params"].items():
        nets += ["--net-param", f"{key}={json.dumps(value)}"]
    upcall("nets", *nets)
    (job,) = (out / "jobs").iterdir()
    upcall("train", job)
    return job, json.loads((job / "summary.json").read_text())["wall_seconds"]


def mult_adds(job: Path) -> float:
    """Mult-adds per clip of the job's deploy net (millions)."""
    from upcall.network.shapes import cost, infer_shapes
    from upcall.proto import caffe_pb2, read_text

    net = read_text(job / "deploy.prototxt", caffe_pb2.NetParameter())
    return cost(net, infer_shapes(net, {}))[0] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="6000,30000", help="training clips per run")
    parser.add_argument("--n-test", type=int, default=10000, help="held-out test clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copies", type=int, default=2, help="offline augmentation copies")
    parser.add_argument("--rows", default="", help="only rows whose name contains one of these")
    parser.add_argument("--work", type=Path, default=Path("/tmp/upcall-bench-quality"))
    args = parser.parse_args()
    wanted = [w for w in args.rows.split(",") if w]
    test = args.work / "test"
    upcall("synth", test, "--n-train", 20, "--n-test", args.n_test, "--seed", args.seed + 1000)

    print(f"held-out test set: {args.n_test} hard clips (seed {args.seed + 1000}), never trained on")
    print(f"{'N':>6}  {'model':<34} {'AUC':>7} {'rec@P90':>7} {'train s':>8} "
          f"{'M mult-adds':>11} {'s/1k clips':>11} {'AUC/baseline':>12}")  # fmt: skip
    for n in map(int, args.sizes.split(",")):
        work = args.work / f"n{n}"
        data = work / "data"
        upcall("synth", data, "--n-train", n, "--n-test", 0, "--seed", args.seed)
        base_auc = None
        for name, keys, offline in [("baseline", None, False), *rows()]:
            if wanted and name != "baseline" and not any(w in name for w in wanted):
                continue
            if keys is None:
                job = work / "baseline"
                seconds = upcall("baseline", data, "--out", job, "--seed", args.seed)
                cost = "classical"
            elif offline:
                job, seconds = offline_row(keys, data, work, args.seed, args.copies)
                cost = f"{mult_adds(job):.1f}"
            else:
                job, seconds = train_row(name, keys, data, work, args.seed)
                cost = f"{mult_adds(job):.1f}"
            slug = name.split(" (")[0].replace(" ", "_").replace("+_", "").replace("×", "x")
            scores, labels, per_1k = test_scores(job, test, work / f"{slug}-test.csv")
            value = auc(scores, labels == 1)
            base_auc = value if keys is None else base_auc
            ratio = f"{value / base_auc:.3f}" if base_auc else "n/a"
            print(
                f"{n:>6}  {name:<34} {value:>7.4f} {recall_at_precision(scores, labels, 0.9):>7.3f} "
                f"{seconds:>8.0f} {cost:>11} {per_1k:>11.1f} {ratio:>12}",
                flush=True,
            )


if __name__ == "__main__":
    main()
