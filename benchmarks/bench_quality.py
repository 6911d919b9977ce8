"""Detection quality on held-out hard synthetic clips: the classical baseline against WhaleNet.

For each training size N (default 6,000 and 30,000) this makes a Kaggle-layout folder of N
labelled clips (``upcall synth``, hard difficulty) and, once, a separate test folder of
--n-test clips from another seed whose labels (test_truth.csv) no model ever sees: not for
training, not for tuning, not for choosing a snapshot. Then, each through the real commands:

* ``baseline``: ``upcall baseline`` (the 2013 winner's method: templates + gradient boosting);
* ``whalenet/tutorial`` and ``whalenet/enhanced``: spectrograms in that mode → lists → native
  LMDB → WhaleNet job (lr 0.01, 5 epochs, the tutorial's step policy) → ``upcall train``;

and each model's last snapshot classifies the test clips (``upcall classify --csv``). Printed
per row: test AUC, whale recall at 90 % precision, training time (seconds, 2 CPU cores here)
and the AUC ratio to the baseline at the same N, both measured in this run.

    .venv/bin/python benchmarks/bench_quality.py --sizes 6000,30000 --n-test 10000
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from _run import upcall  # benchmarks/_run.py: scripts here run from this folder

from upcall.results.metrics import auc

MODELS = ("baseline", "whalenet/tutorial", "whalenet/enhanced")


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """The highest whale recall of any threshold whose precision is at least ``precision``."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order] == 1)
    kept = np.arange(1, len(order) + 1)
    ok = hits / kept >= precision
    return float(hits[ok].max() / max(1, labels.sum())) if ok.any() else 0.0


def test_scores(job: Path, test: Path, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(whale probability, true label) of every test clip, from ``upcall classify``."""
    upcall("classify", job, *sorted((test / "test").glob("*.aiff")), "--csv", out)
    with open(test / "test_truth.csv", newline="") as f:
        truth = {r["clip_name"]: int(r["label"]) for r in csv.DictReader(f)}
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))  # classify's columns: input, label, one per class
    scores = np.array([float(r["whale"]) for r in rows])
    labels = np.array([truth[Path(r["input"]).name] for r in rows])
    return scores, labels


def train_model(model: str, data: Path, work: Path, *, epochs: int, seed: int) -> tuple[Path, float]:
    """Train ``model`` on ``data``; returns its job folder and the training time (s)."""
    if model == "baseline":
        job = work / "baseline"
        return job, upcall("baseline", data, "--out", job, "--seed", seed)
    mode = model.split("/")[1]
    root, lists, ds, jobs = (work / f"{x}-{mode}" for x in ("png", "lists", "ds", "jobs"))
    upcall("spectrograms", data, "--mode", mode, "--out", root)
    upcall("lists", data, "--spectrogram-root", root, "--out", lists, "--seed", seed)
    upcall("lmdb", lists, "--out", ds, "--size", "native", "--seed", seed)
    upcall("nets", "--dataset", ds, "--networks", "whalenet", "--lr", "0.01",
           "--epochs", epochs, "--seed", seed, "--out", jobs)  # fmt: skip
    (job,) = jobs.iterdir()
    return job, upcall("train", job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="6000,30000", help="training clips per run")
    parser.add_argument("--n-test", type=int, default=10000, help="held-out test clips")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/upcall-bench-quality"))
    args = parser.parse_args()
    models = args.models.split(",")
    test = args.work / "test"
    upcall("synth", test, "--n-train", 20, "--n-test", args.n_test, "--seed", args.seed + 1000)

    print(f"held-out test set: {args.n_test} hard clips (seed {args.seed + 1000}), never trained on")
    print(f"{'N':>6}  {'model':<18} {'AUC':>7} {'recall@P90':>10} {'train s':>8} {'AUC/baseline':>12}")
    for n in map(int, args.sizes.split(",")):
        work = args.work / f"n{n}"
        data = work / "data"
        upcall("synth", data, "--n-train", n, "--seed", args.seed)
        base_auc = None
        for model in models:
            job, seconds = train_model(model, data, work, epochs=args.epochs, seed=args.seed)
            scores, labels = test_scores(job, test, work / f"{model.replace('/', '-')}-test.csv")
            value = auc(scores, labels == 1)
            base_auc = value if model == "baseline" else base_auc
            ratio = f"{value / base_auc:.3f}" if base_auc else "n/a"
            print(
                f"{n:>6}  {model:<18} {value:>7.4f} {recall_at_precision(scores, labels, 0.9):>10.3f} "
                f"{seconds:>8.0f} {ratio:>12}",
                flush=True,
            )


if __name__ == "__main__":
    main()
