"""Detection speed, memory and quality on long synthetic recordings (issue 24's figures).

Every figure is × real time of a whole ``upcall detect`` process (start-up and model load
included) on hard synthetic recordings, with its ratio to today's figure: the same command run,
in the same run of this script, with the code of git revision --baseline-rev (a worktree under
/tmp: benchmarks/_run.py). JOB is a WhaleNet job on ``fine`` spectrograms (the recipe's), which
detect scores fully convolutionally. It is copied into the work folder, so its first run here
pays for the one-time ONNX export (printed apart) and the others run the cached model.

Rows: --hours and --long-hours recordings (× real time, peak RSS of the process tree, new vs
baseline); --backend torch; the seconds of each stage (detect.json's ``stages``); --workers 2 on
two files and, with --ray, a local Ray cluster started here (and stopped); the job against its
``upcall export`` (scores and tables); quality (precision, recall, F1, AP at 1 s tolerance).
Target: ≥ 3,000× real time, peak ≤ 500 MB, on 2 cores.

    nice -n 5 .venv/bin/python benchmarks/bench_detect.py JOB [--hours 6] [--long-hours 24]
        [--ray] [--repeat 1] [--baseline-rev 7b20a1a]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

# benchmarks/_run.py: scripts here run from this folder
from _run import BASELINE_REV, baseline_upcall_measured, upcall, upcall_measured

TARGET = 3000.0  # × real time, whole process, 2 cores
PEAK_MB = 500.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("job", type=Path, help="a WhaleNet job on fine spectrograms")
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--long-hours", type=float, default=24.0, help="0: leave it out")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; the median counts")
    parser.add_argument("--ray", action="store_true", help="also time a local Ray cluster")
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--work", type=Path, default=Path("/tmp/upcall-bench-detect"))
    args = parser.parse_args()
    work, rev = args.work, args.baseline_rev
    work.mkdir(parents=True, exist_ok=True)
    for old in work.iterdir():  # the recordings are kept between runs (24 h takes a while)
        if old.name not in ("recordings",):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    job = work / "job"
    shutil.copytree(args.job, job, ignore=shutil.ignore_patterns(".cache"))
    short = recording(work, args.hours, args.seed)
    two = work / "two"
    two.mkdir()
    for name in ("a.wav", "b.wav"):
        (two / name).symlink_to(short)
    print(f"JOB {args.job}; baseline: revision {rev}; hard synthetic audio at 2 kHz")

    def detect(name: str, source: Path, *flags: object, base: bool = False) -> tuple[float, float]:
        """(median seconds over --repeat runs, the largest peak MB) of one detect command
        into work/NAME."""
        runs = []
        for _ in range(args.repeat):
            shutil.rmtree(work / name, ignore_errors=True)
            cmd = ("detect", job, source, "--out", work / name, "--threshold", args.threshold,
                   *flags)  # fmt: skip
            runs.append(baseline_upcall_measured(rev, *cmd) if base else upcall_measured(*cmd))
        seconds = sorted(t for t, _ in runs)[(len(runs) - 1) // 2]
        return seconds, max(mb for _, mb in runs)

    took, peak = detect("first", short)
    print(f"first run ({args.hours:g} h, exports the net to ONNX once): {took:.1f} s, "
          f"peak {peak:.0f} MB")  # fmt: skip

    def compare(name: str, source: Path, audio_h: float, *flags: object) -> None:
        old, old_mb = detect(f"base-{name}", source, *flags, base=True)
        new, new_mb = detect(name, source, *flags)
        a, b = audio_h * 3600 / old, audio_h * 3600 / new
        print(f"  {name:<16} new {b:6.0f}× real time ({new:5.1f} s, {new_mb:4.0f} MB)  "
              f"{rev} {a:6.0f}× ({old:5.1f} s, {old_mb:4.0f} MB)  ratio {b / a:4.2f}; "
              f"{b / TARGET:.2f} of the target{'' if new_mb <= PEAK_MB else '; OVER 500 MB'}")  # fmt: skip

    print("whole `upcall detect` process, 1 worker:")
    compare(f"{args.hours:g}h", short, args.hours)
    if args.long_hours > 0:
        compare(f"{args.long_hours:g}h", recording(work, args.long_hours, args.seed + 1),
                args.long_hours)  # fmt: skip
    torch_s, torch_mb = detect("torch", short, "--backend", "torch")
    print(f"  --backend torch  {args.hours * 3600 / torch_s:6.0f}× real time ({torch_s:5.1f} s, "
          f"{torch_mb:4.0f} MB)")  # fmt: skip
    stages(work / f"{args.hours:g}h", "ONNX Runtime")
    stages(work / "torch", "torch")

    print("scaling (two copies of the short recording):")
    compare("2 workers", two, 2 * args.hours, "--workers", 2)
    if args.ray:
        with ray_cluster() as address:
            compare("Ray (local)", two, 2 * args.hours, "--ray", address)

    print("the job against its export (`upcall export JOB --format onnx`):")
    model = work / "model.onnx"
    upcall("export", job, "--format", "onnx", "--out", model)
    for name, what in (("scores-job", job), ("scores-onnx", model)):
        upcall("detect", what, short, "--out", work / name, "--scores")
    a, b = (scores(work / n / f"{short.name}.scores.csv") for n in ("scores-job", "scores-onnx"))
    diff = max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)
    same = all(
        (work / "scores-job" / f).read_bytes() == (work / "scores-onnx" / f).read_bytes()
        for f in (f"{short.name}.detections.txt", f"{short.name}.scores.csv")
    )
    print(f"  {len(a)} windows: largest score difference {diff:.1e} (target ≤ 1e-5); "
          f"tables and scores files {'identical' if same else 'DIFFER'}")  # fmt: skip

    print(f"quality at threshold {args.threshold} (1 s tolerance):")
    truth = Path(f"{short}.selections.txt")
    for name in (f"{args.hours:g}h", f"base-{args.hours:g}h", "torch"):
        out = work / f"eval-{name}"
        upcall("evaluate", truth, work / name / f"{short.name}.detections.txt",
               "--tolerance", 1.0, "--threshold", args.threshold, "--out", out)  # fmt: skip
        ev = json.loads((out / "evaluation.json").read_text())
        print(f"  {name:<16} precision {ev['precision']:.3f} recall {ev['recall']:.3f} "
              f"F1 {ev['f1']:.3f} AP {ev['average_precision']:.3f}")  # fmt: skip


def recording(work: Path, hours: float, seed: int) -> Path:
    """A hard synthetic recording of ``hours`` (made once, kept in work/recordings)."""
    path = work / "recordings" / f"{hours:g}h-seed{seed}.wav"
    if not (path.is_file() and Path(f"{path}.selections.txt").is_file()):
        path.parent.mkdir(parents=True, exist_ok=True)
        upcall("synth-recording", "--out", path, "--minutes", hours * 60, "--seed", seed)
    return path


def stages(out: Path, what: str) -> None:
    """Print each stage's share of a run's recorded seconds (detect.json)."""
    found = json.loads((out / "detect.json").read_text()).get("stages") or {}
    total = sum(found.values()) or 1.0
    print(f"  stages ({what}; read and spectrograms overlap the network): "
          + ", ".join(f"{k} {v:.2f} s ({v / total:.0%})" for k, v in found.items()))  # fmt: skip


def scores(path: Path) -> list[float]:
    with open(path, newline="") as f:
        return [float(row["score"]) for row in csv.DictReader(f)]


class ray_cluster:
    """A local Ray head started here (its own process, stopped by its id on exit)."""

    def __enter__(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ray = Path(sys.executable).parent / "ray"
        self.proc = subprocess.Popen(
            [str(ray), "start", "--head", "--port", str(port), "--num-cpus", "2",
             "--include-dashboard", "false", "--block"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        address = f"127.0.0.1:{port}"
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(3)  # the GCS listens before the raylet is up
                return address
            except OSError:
                time.sleep(1)
        raise SystemExit("the local Ray head did not start")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


if __name__ == "__main__":
    main()
