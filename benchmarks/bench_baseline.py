"""Quality and speed of ``upcall baseline``, today's code against revision --rev, in one run.

For each training size N: ``upcall synth`` N hard clips (seed --seed) and ``upcall lists``
(outside the timings, shared by both versions), then each version's ``upcall baseline`` on
them and its ``upcall classify`` on --n-test held-out clips of seed --seed + 1000, which no
version ever trains, tunes or chooses a setting on (the settings were chosen on seed 2000).
Printed per N and version: held-out AUC, whale recall at 90 % precision, the feature pass's
seconds (train.log's "features … s": the template bank and every listed clip's features), the
fit's seconds, the whole command's wall time, and the ratios of the new figures to the old.
Then one clip's 24 template correlations as ``match`` computes them against scikit-image's
``match_template``, on the same images.

    nice -n 5 .venv/bin/python benchmarks/bench_baseline.py --sizes 6000,30000 --n-test 10000
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from _run import BASELINE_REV, baseline_upcall, upcall  # benchmarks/_run.py: timed processes

from upcall.classical import features
from upcall.metrics import auc


def held_out(test: Path) -> tuple[list[Path], dict[str, int]]:
    clips = sorted((test / "test").glob("*.aiff"))
    with open(test / "test_truth.csv", newline="") as f:
        truth = {r["clip_name"]: int(r["label"]) for r in csv.DictReader(f)}
    return clips, truth


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """The largest whale recall at a threshold where precision is at least ``precision``."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order] == 1)
    prec = hits / np.arange(1, len(order) + 1)
    ok = prec >= precision
    return float(hits[ok].max() / max(1, (labels == 1).sum())) if ok.any() else 0.0


def one_version(rev: str | None, data: Path, test: Path, work: Path) -> dict[str, float]:
    """Train and test one version (rev None: this checkout): its figures."""
    run = upcall if rev is None else (lambda *a: baseline_upcall(rev, *a))
    job, out = work / "job", work / "scores.csv"
    wall = run("baseline", data, "--out", job, "--seed", 0)
    log = (job / "train.log").read_text()
    feat = re.search(r"features ([\d.]+) s \((\d+) clips\), fit ([\d.]+) s", log)
    if feat is None:
        raise SystemExit(f"{job / 'train.log'}: no features line")
    clips, truth = held_out(test)
    run("classify", job, *clips, "--csv", out)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    scores = np.array([float(r["whale"]) for r in rows])
    labels = np.array([truth[Path(r["input"]).name] for r in rows])
    return {
        "auc": auc(scores, labels == 1),
        "recall90": recall_at_precision(scores, labels, 0.9),
        "features_s": float(feat.group(1)),
        "clips": int(feat.group(2)),
        "fit_s": float(feat.group(3)),
        "wall_s": wall,
    }


def correlation_ratio(rng: np.random.Generator, clips: int = 200) -> tuple[float, float]:
    """Seconds per clip of 24 correlations: (match, skimage's match_template)."""
    from skimage.feature import match_template

    s = features.FeatureSettings()
    noise = rng.normal(scale=0.05, size=(clips, 4000))  # 2 s at 2 kHz, as the clips
    images = [features.enhance(features.log_power(x), s) for x in noise]  # (H, V) per clip
    bank = rng.normal(size=(12, *s.template_shape)).astype(np.float32)
    with features.one_thread():
        t0 = time.perf_counter()
        for pair in images:
            for image in pair:
                features.match(image, bank)
        ours = (time.perf_counter() - t0) / clips
        t0 = time.perf_counter()
        for pair in images:
            for image in pair:
                for template in bank:
                    match_template(image, template)
        theirs = (time.perf_counter() - t0) / clips
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6000,30000", help="training sizes, comma-separated")
    parser.add_argument("--n-test", type=int, default=10000, help="held-out test clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rev", default=BASELINE_REV, help="today's revision to compare with")
    parser.add_argument("--no-today", action="store_true", help="skip the old version's runs")
    args = parser.parse_args()

    versions = [("new", None)] + ([] if args.no_today else [(f"today ({args.rev})", args.rev)])
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test"
        upcall("synth", test, "--n-train", 20, "--n-test", args.n_test, "--seed", args.seed + 1000)
        print(f"held-out: {args.n_test} hard clips (seed {args.seed + 1000}); training seed "
              f"{args.seed}; machine load (1 min) {os.getloadavg()[0]:.2f}")  # fmt: skip
        print(f"{'N':>6} {'version':<18} {'AUC':>7} {'R@P90':>6} {'features s':>10} "
              f"{'clips':>6} {'fit s':>7} {'wall s':>7}")  # fmt: skip
        for n in (int(s) for s in args.sizes.split(",")):
            data = Path(tmp) / f"data{n}"
            upcall("synth", data, "--n-train", n, "--n-test", 0, "--seed", args.seed)
            upcall("lists", data)  # makes the spectrograms too: outside the timings
            got = {}
            for name, rev in versions:
                work = Path(tmp) / f"{name.split()[0]}{n}"
                work.mkdir()
                got[name] = r = one_version(rev, data, test, work)
                print(f"{n:>6} {name:<18} {r['auc']:>7.4f} {r['recall90']:>6.3f} "
                      f"{r['features_s']:>10.1f} {r['clips']:>6} {r['fit_s']:>7.1f} "
                      f"{r['wall_s']:>7.1f}", flush=True)  # fmt: skip
            if len(got) == 2:
                new, old = got.values()
                print(f"{n:>6} new / today: AUC {new['auc'] / old['auc']:.3f}, features "
                      f"{new['features_s'] / old['features_s']:.2f}x the seconds, fit "
                      f"{new['fit_s'] / old['fit_s']:.2f}x, wall "
                      f"{new['wall_s'] / old['wall_s']:.2f}x", flush=True)  # fmt: skip
    ours, theirs = correlation_ratio(np.random.default_rng(args.seed))
    print(f"machine load (1 min) at the end: {os.getloadavg()[0]:.2f}")
    print(
        f"24 template correlations per clip: {ours * 1e3:.2f} ms (match) vs "
        f"{theirs * 1e3:.2f} ms (skimage match_template): {theirs / ours:.1f}x faster"
    )


if __name__ == "__main__":
    main()
