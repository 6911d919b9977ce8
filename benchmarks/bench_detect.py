"""Detection speed, memory and quality on long synthetic recordings (issue 13's figures).

Every figure is × real time of a real ``upcall detect`` command (model load and process start
included) on a --minutes hard recording, with its ratio to the baseline measured in the same
run: the default network (WhaleNet, tutorial spectrograms: per-window scoring, one worker).

* JOB, the default network: per-window scoring with 1 and 2 workers (2 workers get two copies of
  the recording, so each has a file).
* --fine-job (WhaleNet on ``fine`` spectrograms, which allow a fully convolutional pass): per
  window (``--per-window``) against fully convolutional, 1 and 2 workers.
* peak memory (max RSS of the command or any of its workers) and × real time on a --long-hours
  recording (fully convolutional when --fine-job is given).
* quality: precision, recall, F1 (1 s tolerance) and AP of each job and scoring against the
  recording's truth table (``upcall evaluate``).

Target: ≥ 2,000× real time on 2 cores.

    nice -n 10 .venv/bin/python benchmarks/bench_detect.py JOB [--fine-job FINE_JOB]
        [--minutes 60] [--long-hours 24]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from _run import upcall, upcall_measured  # benchmarks/_run.py: scripts here run from this folder

TARGET = 2000.0  # × real time on 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", type=Path, help="the default network's trained job (tutorial mode)")
    parser.add_argument("--fine-job", type=Path, help="a WhaleNet job on fine spectrograms")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--long-hours", type=float, default=24.0, help="0: skip the memory run")
    parser.add_argument("--threshold", type=float, default=0.5)
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
    print(f"recording: {args.minutes:g} min of hard synthetic audio at 2 kHz; 2 workers: 2 copies")

    def run(name: str, job: Path, *flags: object, files: int = 1) -> float:
        """× real time of one detect command into work/NAME, printed with its ratios."""
        source = hour if files == 1 else work / "two"
        took = upcall("detect", job, source, "--out", work / name, "--threshold", args.threshold,
                      *flags)  # fmt: skip
        speed = files * seconds / took
        ratio = f"{speed / base:5.2f}× the baseline" if base else "the baseline"
        print(f"  {name:<22} {speed:7.0f}× real time ({took:5.1f} s); {ratio}; "
              f"{speed / TARGET:.2f} of the target")  # fmt: skip
        return speed

    base = 0.0
    print(f"default network ({args.job.name}, tutorial mode, per-window scoring):")
    base = run("tutorial-1w", args.job)
    run("tutorial-2w", args.job, "--workers", 2, files=2)
    if args.fine_job:
        print(f"WhaleNet on fine spectrograms ({args.fine_job}):")
        per = run("fine-per-window-1w", args.fine_job, "--per-window")
        fcn = run("fine-fcn-1w", args.fine_job)
        print(f"  fully convolutional / per-window, 1 worker: {fcn / per:.2f}")
        per2 = run("fine-per-window-2w", args.fine_job, "--per-window", "--workers", 2, files=2)
        fcn2 = run("fine-fcn-2w", args.fine_job, "--workers", 2, files=2)
        print(f"  fully convolutional / per-window, 2 workers: {fcn2 / per2:.2f}; "
              f"2 workers / 1 worker (fcn): {fcn2 / fcn:.2f}")  # fmt: skip

    print(f"quality at threshold {args.threshold} (1 s tolerance):")
    names = ["tutorial-1w"] + (["fine-per-window-1w", "fine-fcn-1w"] if args.fine_job else [])
    for name in names:
        out = work / f"eval-{name}"
        upcall("evaluate", Path(f"{hour}.selections.txt"), work / name / "a.wav.detections.txt",
               "--tolerance", 1.0, "--threshold", args.threshold, "--out", out)  # fmt: skip
        ev = json.loads((out / "evaluation.json").read_text())
        print(f"  {name:<22} precision {ev['precision']:.3f} recall {ev['recall']:.3f} "
              f"F1 {ev['f1']:.3f} AP {ev['average_precision']:.3f} "
              f"(best F1 {ev['best_f1']:.3f} at {ev['best_f1_threshold']})")  # fmt: skip

    if args.long_hours > 0:
        long = work / "long.wav"
        upcall("synth-recording", long, "--minutes", args.long_hours * 60, "--seed", args.seed + 1)
        job = args.fine_job or args.job
        took, peak = upcall_measured("detect", job, long, "--out", work / "long")
        speed = args.long_hours * 3600 / took
        print(f"{args.long_hours:g} h file ({'fine, fully convolutional' if args.fine_job else 'tutorial'}"
              f", 1 worker): {speed:.0f}× real time ({took:.0f} s), {speed / base:.2f}× the "
              f"baseline; peak memory {peak:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
