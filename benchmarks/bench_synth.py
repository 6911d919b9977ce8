"""Speed of ``upcall synth``: clips per second and seconds for a Kaggle-sized set (30,000 clips).

The requirement is 30,000 clips in under 60 s on 2 cores; this prints the measured time and its
ratio to that budget (median of --repeats fresh runs), and, measured in the same run on a tenth
of the clips, the single-worker rate as the baseline the workers are compared with.

    .venv/bin/python benchmarks/bench_synth.py --n 30000 --workers 2 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from upcall.audio.synth import SynthSettings, synthesize

BUDGET_S = 60.0  # the requirement for 30,000 clips on 2 cores


def timed_run(n: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synthesize(Path(tmp) / "data", SynthSettings(n_train=n, seed=0), workers=workers)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    single = timed_run(max(args.n // 10, 1), 1) / max(args.n // 10, 1)
    runs = [timed_run(args.n, args.workers) for _ in range(args.repeats)]
    seconds = statistics.median(runs)
    per_30k = seconds * 30000 / args.n
    print(
        f"synth: {args.n} clips, {args.workers} workers: median {seconds:.1f} s over "
        f"{args.repeats} runs ({', '.join(f'{r:.1f}' for r in runs)}) = "
        f"{args.n / seconds:.0f} clips/s"
    )
    print(f"30,000 clips: {per_30k:.1f} s = {per_30k / BUDGET_S:.2f} × the {BUDGET_S:.0f} s budget")
    print(
        f"baseline, 1 worker: {1 / single:.0f} clips/s; speed-up with {args.workers} workers "
        f"{single * args.n / seconds:.2f}×"
    )


if __name__ == "__main__":
    main()
