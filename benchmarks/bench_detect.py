"""Detection speed and quality on long synthetic recordings (issue 13's figures).

Speed: × real time of ``upcall detect`` on a --minutes recording with the given job, with 1 and 2
workers (two copies of the recording, so two workers have two files), and peak memory (max RSS of
the command and its children) on a --long-hours recording. The target is ≥ 2,000× real time on 2
cores; the baseline in the same run is per-window scoring with one worker, which is what detect
does today (both spectrogram modes normalise per image, so a block cannot be cut into windows).
Quality: precision, recall, F1 (1 s tolerance) and AP on a hard recording against its truth table
(``upcall evaluate``). Target: F1 ≥ 0.8.

    .venv/bin/python benchmarks/bench_detect.py JOB [--minutes 60] [--long-hours 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
from pathlib import Path

from _run import upcall  # benchmarks/_run.py: scripts here run from this folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", type=Path, help="a trained job folder (e.g. runs/demo/jobs/...)")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--long-hours", type=float, default=4.0, help="0: skip the memory run")
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/upcall-bench-detect"))
    args = parser.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    (work / "two").mkdir(parents=True)
    hour = work / "two" / "a.wav"
    upcall("synth-recording", hour, "--minutes", args.minutes, "--seed", args.seed)
    shutil.copy(hour, work / "two" / "b.wav")
    seconds = args.minutes * 60

    one = upcall("detect", args.job, hour, "--out", work / "one", "--threshold", args.threshold)
    two = upcall("detect", args.job, work / "two", "--out", work / "w2", "--workers", 2,
                 "--threshold", args.threshold)  # fmt: skip
    print(f"recording: {args.minutes:g} min of hard synthetic audio at 2 kHz")
    print(f"1 worker,  per-window scoring: {seconds / one:8.0f}× real time ({one:.1f} s)")
    print(f"2 workers, per-window scoring: {2 * seconds / two:8.0f}× real time ({two:.1f} s, "
          f"2 files); ratio to 1 worker {(2 * seconds / two) / (seconds / one):.2f}")  # fmt: skip
    print(f"target ≥ 2,000× real time: ratio to target {(2 * seconds / two) / 2000:.2f}")

    table = next((work / "one").rglob("a.wav.selections.txt"), None) or next(
        p for p in (work / "one").rglob("*.txt") if "combined" not in p.name
    )
    upcall("evaluate", Path(f"{hour}.selections.txt"), table, "--tolerance", 1.0,
           "--out", work / "eval")  # fmt: skip
    found = json.loads((work / "eval" / "evaluation.json").read_text())
    print(f"quality at threshold {args.threshold}: {json.dumps(found)[:400]}")

    if args.long_hours > 0:
        long = work / "long.wav"
        upcall("synth-recording", long, "--minutes", args.long_hours * 60, "--seed", args.seed + 1)
        took = upcall("detect", args.job, long, "--out", work / "long")
        print(f"{args.long_hours:g} h file: {args.long_hours * 3600 / took:.0f}× real time, "
              f"peak memory of any child {peak_rss_mb():.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
