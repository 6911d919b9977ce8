"""Clip quality through the real commands: the levers of issues 11 and 24, and the ceilings.

For each training size N (default 6,000 and 30,000) this makes a Kaggle-layout folder of N
labelled clips (``upcall synth``, hard difficulty, seed 0) and, once, a separate test folder of
--n-test clips from another seed whose labels (test_truth.csv) no model ever sees: the held-out
set (seed 1000, 10,000 clips), never used for choosing; or, with ``--tuning``, the tuning set
(seed 2000, 5,000 clips) on which levers and their settings are chosen. Then two tables
(``--table``), every row as data below, each network row through ``upcall fit DATA --recipe``:

* ``levers`` (issue 24): today's recipe (run with the code of revision 7b20a1a), the recipe of
  this version (``upcall fit``'s default), then today's recipe with one lever each (LEVERS_24),
  and the ceilings of benchmarks/ceilings.py on the same test set; ratios to today's row;
* ``ablation`` (issue 11): the classical baseline (``upcall baseline``), WhaleNet as ``upcall
  demo`` trained before issue 11, then one lever per row added to the rows above; a lever
  marked "tried" is measured but not carried (it did not pay on the tuning set); the offline
  row is the carried recipe on lists grown by ``upcall augment``. Ratios to the baseline.

Printed per row: test AUC, whale recall at 90 % precision, training time (s, on the cores of
this machine), inference cost (mult-adds per clip and classify's wall time per 1,000 clips) and
the AUC ratio to the table's reference row at the same N, all measured in this run.

    .venv/bin/python benchmarks/bench_quality.py --sizes 6000,30000 --n-test 10000
    .venv/bin/python benchmarks/bench_quality.py --tuning --sizes 6000 --rows smoothing
    .venv/bin/python benchmarks/bench_quality.py --table ablation
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _run import BASELINE_REV, baseline_upcall, upcall  # benchmarks/: scripts run from here
from ceilings import ceilings, recall_at_precision

from upcall.metrics import auc

# recipe.json of `upcall fit`'s default recipe at 7b20a1a ("today's recipe"): every row's recipe
# is this with the row's keys over it, so a later default changes no row but "this version"
TODAY = {
    "spectrogram_mode": "fine", "val_fraction": 0.1, "split": "random", "balance": "none",
    "size": "native", "resize_mode": "squash", "network": "whalenet", "base_lr": 0.01,
    "epochs": 15, "solver_type": "SGD", "lr_policy": "poly", "step_pct": None,
    "multistep_pct": [50.0, 85.0], "gamma": None, "power": None, "rms_decay": 0.99,
    "iter_size": 1, "snapshot_epochs": 1.0, "val_epochs": 1.0, "seed": 0, "gpu": False,
    "network_params": {"time_pool": True}, "batch_size": None, "class_weights": None,
    "augment": None, "resample": False, "mixdown": False, "fit": "strict", "group_by": "auto",
    "group_seconds": None,
}  # fmt: skip
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
# issue 11's ablation: (row name, recipe keys it changes, carried into the rows below);
# "offline" is the carried recipe on lists grown by `upcall augment`
LEVERS: list[tuple[str, dict | str, bool]] = [
    ("+ fine spectrogram 65×59", {"spectrogram_mode": "fine"}, True),
    ("+ pool over time only", {"network_params": {"time_pool": True}}, True),
    ("+ poly lr, 15 epochs", {"lr_policy": "poly", "epochs": 15}, True),
    ("+ class weights", {"class_weights": "balanced"}, False),
    ("+ oversampled whales", {"balance": "oversample"}, False),
    ("+ undersampled not-whales", {"balance": "undersample"}, False),
    ("+ online augmentation", {"augment": "shift=6,freq=2,tmask=6,fmask=4,mix=0.5"}, False),
    ("+ offline augmentation", "offline", False),
    (
        "+ residual blocks, 10 epochs",
        {"network_params": {"convs": 2, "residual": True}, "epochs": 10},
        False,
    ),
]
# issue 24: (row name, recipe keys over today's recipe), each lever alone
LEVERS_24: list[tuple[str, dict]] = [
    ("+ label smoothing 0.05", {"network_params": {"label_smoothing": 0.05}}),
    ("+ label smoothing 0.1", {"network_params": {"label_smoothing": 0.1}}),
    ("+ background front end W 15", {"network_params": {"background": 15}}),
    ("+ background front end W 31", {"network_params": {"background": 31}}),
    ("+ mixup with not-whales 0.5", {"augment": "mix=0.5"}),
    ("+ masks 4 cols, 3 rows", {"augment": "tmask=4,fmask=3"}),
    ("+ poly power 1", {"power": 1.0}),
    ("+ 25 epochs", {"epochs": 25}),
]
CEILINGS = ("oracle: call present", "oracle: present, then SNR", "matched filter, true call")


@dataclass(frozen=True)
class Row:
    """One row of a table: how it is made, and with which recipe keys."""

    name: str
    # "baseline", "fit", "offline", "default" (fit's own recipe), "today" (7b20a1a's code and
    # its default recipe), "ceiling"
    run: str
    keys: dict = field(default_factory=dict)  # recipe keys over TODAY (fit, offline)


def over(base: dict, changes: dict) -> dict:
    """``changes`` over ``base``; network_params merged key by key."""
    out = {**base, **changes}
    if "network_params" in changes:
        out["network_params"] = {**base.get("network_params", {}), **changes["network_params"]}
    return out


def ablation_rows() -> list[Row]:
    """Issue 11's table: the baseline, before, then each lever (carried or tried)."""
    out, carried = [Row("baseline", "baseline"), Row("whalenet before", "fit", BEFORE)], BEFORE
    for name, changes, keep in LEVERS:
        label = name if keep else f"{name} (tried)"
        if changes == "offline":
            out.append(Row(label, "offline", carried))
            continue
        row = over(carried, changes)
        out.append(Row(label, "fit", row))
        carried = row if keep else carried
    return out


def lever_rows() -> list[Row]:
    """Issue 24's table: today's recipe, this version's, each lever alone, the ceilings."""
    return [
        Row("today's recipe (7b20a1a)", "today"),
        Row("recipe (this version)", "default"),
        *(Row(name, "fit", over(TODAY, changes)) for name, changes in LEVERS_24),
        *(Row(name, "ceiling") for name in CEILINGS),
    ]


TABLES = {
    "levers": (lever_rows, "today's recipe (7b20a1a)"),
    "ablation": (ablation_rows, "baseline"),
}


def slug(name: str) -> str:
    """A folder name for a row."""
    keep = name.split(" (")[0].replace("+ ", "").replace("×", "x").replace("'", "")
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in keep)


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


def recipe_file(keys: dict, path: Path) -> Path:
    """A recipe file: ``keys`` (recipe.json's top-level names) over TODAY."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(over(TODAY, keys), indent=1))
    return path


def only_job(out: Path) -> tuple[Path, float]:
    """The one job folder under OUT/jobs and its training seconds (summary.json)."""
    (job,) = (p for p in (out / "jobs").iterdir() if p.is_dir())
    return job, json.loads((job / "summary.json").read_text())["wall_seconds"]


def train_row(row: Row, data: Path, work: Path, seed: int) -> tuple[Path, float]:
    """``upcall fit`` with the row's recipe (today's: with 7b20a1a's code and its default)."""
    out = work / slug(row.name)
    if row.run == "today":
        baseline_upcall(BASELINE_REV, "fit", data, "--out", out, "--seed", seed)
    elif row.run == "default":
        upcall("fit", data, "--out", out, "--seed", seed)
    else:
        upcall("fit", data, "--out", out, "--recipe",
               recipe_file(row.keys, work / f"{out.name}.recipe.json"), "--seed", seed)  # fmt: skip
    return only_job(out)


def offline_row(keys: dict, data: Path, work: Path, seed: int, copies: int) -> tuple[Path, float]:
    """The recipe ``keys`` on lists grown by ``upcall augment`` (copies per training clip)."""
    keys = over(TODAY, keys)
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
    parser.add_argument(
        "--n-test",
        type=int,
        default=None,
        help="test clips (default 10,000 held-out; 5,000 with --tuning)",
    )
    parser.add_argument(
        "--tuning",
        action="store_true",
        help="score on the tuning set (seed 2000), for choosing levers",
    )
    parser.add_argument("--table", choices=[*TABLES, "all"], default="levers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copies", type=int, default=2, help="offline augmentation copies")
    parser.add_argument("--rows", default="", help="only rows whose name contains one of these")
    parser.add_argument("--work", type=Path, default=Path("/tmp/upcall-bench-quality"))
    args = parser.parse_args()
    wanted = [w for w in args.rows.split(",") if w]
    test_seed = 2000 if args.tuning else args.seed + 1000
    n_test = args.n_test or (5000 if args.tuning else 10000)
    test = args.work / (f"tuning{n_test}" if args.tuning else f"test{n_test}")
    upcall("synth", test, "--n-train", 20, "--n-test", n_test, "--seed", test_seed)
    tables = list(TABLES) if args.table == "all" else [args.table]
    chosen = [(row, ref) for t in tables for row in TABLES[t][0]() for ref in [TABLES[t][1]]
              if row.name == ref or not wanted or any(w in row.name for w in wanted)]  # fmt: skip
    known: dict[str, tuple[float, float]] = {}  # ceiling row -> (AUC, recall), this test set
    if any(row.run == "ceiling" for row, _ in chosen):
        known = {name: (a, r) for name, a, r in ceilings(test_seed, n_test).table()}

    which = "tuning set" if args.tuning else "held-out test set, never trained or tuned on"
    print(f"{n_test} hard test clips (seed {test_seed}): {which}")
    print(f"{'N':>6}  {'model':<34} {'AUC':>7} {'rec@P90':>7} {'train s':>8} "
          f"{'M mult-adds':>11} {'s/1k clips':>11} {'AUC ratio':>9}")  # fmt: skip
    for n in map(int, args.sizes.split(",")):
        work = args.work / f"n{n}"
        data = work / "data"
        upcall("synth", data, "--n-train", n, "--n-test", 0, "--seed", args.seed)
        reference: dict[str, float] = {}
        for row, ref in chosen:
            seconds, cost, per_1k = "", "truth", ""
            if row.run == "ceiling":
                value, recall = known[row.name]
            else:
                if row.run == "baseline":
                    job = work / "baseline"
                    took = upcall("baseline", data, "--out", job, "--seed", args.seed)
                    cost = "classical"
                elif row.run == "offline":
                    job, took = offline_row(row.keys, data, work, args.seed, args.copies)
                    cost = f"{mult_adds(job):.1f}"
                else:
                    job, took = train_row(row, data, work, args.seed)
                    cost = f"{mult_adds(job):.1f}"
                scores, labels, each = test_scores(job, test, work / f"{slug(row.name)}.csv")
                seconds, per_1k = f"{took:.0f}", f"{each:.1f}"
                value = auc(scores, labels == 1)
                recall = recall_at_precision(scores, labels, 0.9)
            if row.name == ref:
                reference[ref] = value
            ratio = f"{value / reference[ref]:.3f}" if ref in reference else "n/a"
            print(f"{n:>6}  {row.name:<34} {value:>7.4f} {recall:>7.3f} {seconds:>8} "
                  f"{cost:>11} {per_1k:>11} {ratio:>9}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
