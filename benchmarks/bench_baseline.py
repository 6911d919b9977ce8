"""Speed of ``upcall baseline``: the whole command on N clips, and its template correlation.

Prints the median wall and CPU seconds of ``upcall baseline DATA --out JOB`` over --repeats
fresh runs (lists and spectrograms made first, outside the timing), seconds per 1,000 clips, the
ratio to the README's budget (6,000 clips in a minute on 2 cores), and, measured in the same run
on the same images, the ratio of one clip's 24 template correlations as ``match`` computes them
(one matrix product) to scikit-image's ``match_template`` (one FFT each), the earlier code.

    nice .venv/bin/python benchmarks/bench_baseline.py --n 6000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _run import upcall  # benchmarks/_run.py: a real process, timed

from upcall.classical import features

BUDGET_S_PER_1000 = 60.0 / 6.0  # the README's "6,000 clips in about a minute"


def command_times(data: Path, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (children's user + system) of each fresh ``upcall baseline`` run."""
    walls, cpus = [], []
    for k in range(repeats):
        out = data / f"baseline{k}"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append(upcall("baseline", data, "--out", out, "--seed", 0))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        shutil.rmtree(out)
    return walls, cpus


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
    parser.add_argument("--n", type=int, default=6000, help="training clips")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        upcall("synth", data, "--n-train", args.n, "--n-test", 0, "--seed", args.seed)
        upcall("lists", data)  # makes the spectrograms too: both outside the timing
        walls, cpus = command_times(data, args.repeats)
    ours, theirs = correlation_ratio(np.random.default_rng(args.seed))

    wall, cpu = statistics.median(walls), statistics.median(cpus)
    per_1000 = wall * 1000 / args.n
    print(f"machine load (1 min) at the end: {os.getloadavg()[0]:.2f}")
    print(
        f"upcall baseline on {args.n} clips: median {wall:.1f} s wall, {cpu:.1f} s CPU "
        f"(runs: {', '.join(f'{w:.1f}' for w in walls)} s)"
    )
    print(
        f"{per_1000:.1f} s per 1,000 clips; ratio to the README budget "
        f"({BUDGET_S_PER_1000:.0f} s per 1,000): {per_1000 / BUDGET_S_PER_1000:.2f}"
    )
    print(
        f"24 template correlations per clip: {ours * 1e3:.2f} ms (match) vs "
        f"{theirs * 1e3:.2f} ms (skimage match_template): {theirs / ours:.1f}x faster"
    )


if __name__ == "__main__":
    main()
