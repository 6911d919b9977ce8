"""From annotated recordings to a survey (issue 21's figures): train on Raven-annotated long
recordings, detect on others at another sample rate, and compare with Kaggle-layout training.

* Training: --hours of hard synthetic recordings (``synth-recording --label-others``: up-calls
  and other labelled sounds), 2 kHz WAV, --train-file-minutes per file, at --sites sites (a seed,
  so a noise regime, per file), with time-stamped names; ``upcall fit --recordings`` cuts the
  clips (``--positive upcall``) and trains the recipe.
* The same network and recipe trained on --train-clips Kaggle-layout clips (``upcall synth``,
  hard, then ``upcall fit``): the baseline of the ratios.
* Test: --test-hours of other hard recordings at 8 kHz FLAC, cut into --test-file-minutes
  files, one per clock hour (a duty-cycled deployment: hours with and without calls), named as
  a SoundTrap names them; both models run ``upcall detect``, ``upcall evaluate`` (1 s
  tolerance) and ``upcall presence``.

Printed per model: F1 at --threshold and the best F1, AP, false positives per hour at 90 %
recall, median |error| of the boxes' begin and end against the truth (each call's best-scoring
detection within the tolerance), hourly-presence precision and recall, and the ratio of each to
the Kaggle-trained model's, all from this run. Targets: F1 ≥ 0.85 at 1 s, box error ≤ 0.25 s.

    nice -n 10 .venv/bin/python benchmarks/bench_recordings.py [--hours 4] [--test-hours 2]
        [--train-clips 6000] [--epochs E]
    (a smaller run: --hours 1 --test-hours 0.5 --train-clips 2000 --epochs 5)
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile as sf
from _run import upcall  # benchmarks/_run.py: scripts here run from this folder

from upcall.audio.raven import Selection, read, write_table

TOLERANCE_S = 1.0
TARGET_F1, TARGET_BOX_S = 0.85, 0.25
TEST_RATE = 8000
DAY = datetime(2024, 3, 1, tzinfo=UTC)


def make_training(folder: Path, hours: float, file_minutes: float, sites: int, seed: int) -> int:
    """Annotated 2 kHz WAVs (truth beside each: REC.wav.selections.txt); returns the up-calls."""
    files = max(round(hours * 60 / file_minutes), 1)
    calls = 0
    for k in range(files):
        site, index = k % sites, k // sites
        start = DAY + timedelta(minutes=index * file_minutes)
        out = folder / f"site{site + 1}" / f"AM0{site + 1}_{start:%Y%m%d_%H%M%S}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        upcall("synth-recording", out, "--minutes", file_minutes, "--seed", seed + k,
               "--label-others")  # fmt: skip
        calls += sum(s.label == "upcall" for s in read(f"{out}.selections.txt").selections)
    return calls


def make_test(folder: Path, truth: Path, scratch: Path, hours: float, file_minutes: float,
              seed: int) -> tuple[int, int]:  # fmt: skip
    """--test-hours of 8 kHz FLAC files, one per clock hour, cut from two long recordings (two
    sites, days apart); the up-calls of each in TRUTH at the same relative path. Returns (files,
    up-calls)."""
    pieces = max(round(hours * 60 / file_minutes), 2)
    calls = 0
    for site in range(2):
        count = pieces // 2 + (site < pieces % 2)
        source = scratch / f"test{site}.flac"
        upcall("synth-recording", source, "--minutes", count * file_minutes,
               "--seed", seed + site, "--rate", TEST_RATE)  # fmt: skip
        calls += cut(source, folder, truth, site, count, file_minutes)
    return pieces, calls


def cut(source: Path, folder: Path, truth: Path, site: int, count: int, minutes: float) -> int:
    """Cut ``source`` into ``count`` files of ``minutes``, the k-th starting at hour k of day
    ``site`` + 2; a call belongs to a file when at least half of it lies inside (its box cut
    there)."""
    selections = read(f"{source}.selections.txt").selections
    length = minutes * 60
    calls = 0
    with sf.SoundFile(source) as f:
        frames = round(length * f.samplerate)
        for k in range(count):
            start = DAY + timedelta(days=site + 1, hours=k)
            rel = Path(f"siteT{site + 1}") / f"5763.{start:%y%m%d%H%M%S}.flac"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            f.seek(k * frames)
            sf.write(folder / rel, f.read(frames, dtype="int16"), f.samplerate, subtype="PCM_16")
            a, b = k * length, (k + 1) * length
            mine = [
                Selection(max(s.begin_s, a) - a, min(s.end_s, b) - a, s.low_hz, s.high_hz)
                for s in selections
                if min(s.end_s, b) - max(s.begin_s, a) >= 0.5 * (s.end_s - s.begin_s)
            ]
            (truth / rel).parent.mkdir(parents=True, exist_ok=True)
            write_table(truth / f"{rel}.selections.txt", mine)
            calls += len(mine)
    return calls


def box_errors(truth: Path, detections: Path, threshold: float) -> tuple[float, float, int]:
    """Median |begin error| and |end error| (s) of each truth call's best-scoring detection
    within the tolerance, and how many calls had one."""
    begins, ends = [], []
    for table in sorted(truth.rglob("*.selections.txt")):
        rel = table.relative_to(truth).as_posix().removesuffix(".selections.txt")
        found = [d for d in read(detections / f"{rel}.detections.txt").selections
                 if d.score is not None and d.score >= threshold]  # fmt: skip
        for call in read(table).selections:
            near = [d for d in found if d.begin_s - TOLERANCE_S <= call.end_s
                    and call.begin_s <= d.end_s + TOLERANCE_S]  # fmt: skip
            if near:
                best = max(near, key=lambda d: d.score)
                begins.append(abs(best.begin_s - call.begin_s))
                ends.append(abs(best.end_s - call.end_s))
    if not begins:
        return float("nan"), float("nan"), 0
    return float(np.median(begins)), float(np.median(ends)), len(begins)


def measure(name: str, job: Path, work: Path, test: Path, truth: Path, args) -> dict:
    """Detect at --threshold (F1, boxes, presence) and at --curve-threshold (AP, the false
    positives per hour at 90 % recall: the curve covers only what detect kept)."""
    figures = {}
    for kind, threshold in (("curve", args.curve_threshold), ("", args.threshold)):
        det, out = work / f"detect-{name}{kind}", work / f"eval-{name}{kind}"
        upcall("detect", job, test, "--out", det, "--threshold", threshold)
        upcall("evaluate", truth, det, "--tolerance", TOLERANCE_S, "--threshold", args.threshold,
               "--recall", 0.9, "--out", out)  # fmt: skip
        figures[kind] = json.loads((out / "evaluation.json").read_text())
    ev, curve = figures[""], figures["curve"]
    upcall("presence", det, "--out", work / f"presence-{name}", "--threshold", args.threshold)
    begin, end, matched = box_errors(truth, det, args.threshold)
    return {**ev, "average_precision": curve["average_precision"], "best_f1": curve["best_f1"],
            "best_f1_threshold": curve["best_f1_threshold"],
            "fp_per_hour_at_recall": curve["fp_per_hour_at_recall"],
            "box_begin_s": begin, "box_end_s": end, "boxed": matched}  # fmt: skip


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def report(name: str, m: dict, base: dict | None) -> None:
    def ratio(key: str) -> str:
        if base is None:
            return ""
        a, b = m.get(key), base.get(key)
        ok = a is not None and b is not None and a == a and b == b and b != 0
        return f" ({a / b:.2f}× kaggle)" if ok else ""

    print(f"  {name}:")
    print(f"    F1 at threshold {m['threshold']:g}: {_num(m['f1'])}{ratio('f1')} "
          f"(precision {_num(m['precision'])}, recall {_num(m['recall'])}; "
          f"{m['f1'] / TARGET_F1:.2f} of the target {TARGET_F1})")  # fmt: skip
    print(f"    best F1 {_num(m['best_f1'])}{ratio('best_f1')} at {m['best_f1_threshold']}, "
          f"AP {_num(m['average_precision'])}{ratio('average_precision')} (detect at "
          f"{m['curve_threshold']:g})")  # fmt: skip
    print(f"    false positives per hour at 90 % recall: "
          f"{_num(m.get('fp_per_hour_at_recall'), 1)}{ratio('fp_per_hour_at_recall')}; "
          f"at the threshold: {_num(m.get('fp_per_hour'), 1)}")  # fmt: skip
    print(f"    box median |error|: begin {_num(m['box_begin_s'])} s, end {_num(m['box_end_s'])} s "
          f"({m['boxed']} calls found; target ≤ {TARGET_BOX_S} s)")  # fmt: skip
    print(f"    hourly presence ({m.get('hourly_bins')}): precision "
          f"{_num(m.get('hourly_precision'))}, recall {_num(m.get('hourly_recall'))} "
          f"({m.get('detected_hours')} hours detected, {m.get('truth_hours')} with calls)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=4.0, help="annotated training audio")
    parser.add_argument("--train-file-minutes", type=float, default=30.0)
    parser.add_argument("--sites", type=int, default=4, help="training sites (noise regimes)")
    parser.add_argument("--test-hours", type=float, default=2.0)
    parser.add_argument("--test-file-minutes", type=float, default=10.0)
    parser.add_argument("--train-clips", type=int, default=6000, help="Kaggle-layout clips")
    parser.add_argument("--placements", type=int, default=4, help="clips per annotated call")
    parser.add_argument("--epochs", type=int, help="the recipe's epochs (default: fit's)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument(
        "--curve-threshold",
        type=float,
        default=0.1,
        help="detect threshold of the run giving AP and the 90 %% recall figure",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/upcall-bench-recordings"))
    args = parser.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    recipe = work / "recipe.json"
    recipe.write_text(json.dumps({} if args.epochs is None else {"epochs": args.epochs}))

    train = work / "recordings"
    calls = make_training(train, args.hours, args.train_file_minutes, args.sites,
                          seed=1000 + args.seed)  # fmt: skip
    test, truth = work / "test", work / "test-truth"
    files, test_calls = make_test(test, truth, work, args.test_hours, args.test_file_minutes,
                                  seed=2000 + args.seed)  # fmt: skip
    print(f"training: {args.hours:g} h of hard 2 kHz WAV at {args.sites} sites, {calls} "
          f"annotated up-calls among other labelled sounds; test: {files} × "
          f"{args.test_file_minutes:g} min of 8 kHz FLAC, one per hour, {test_calls} up-calls")  # fmt: skip

    took = upcall("fit", "--recordings", train, "--annotations", train, "--out", work / "run",
                  "--positive", "upcall", "--placements", args.placements,
                  "--recipe", recipe, "--seed", args.seed)  # fmt: skip
    clips = (work / "run" / "clips" / "train.csv").read_text().count("\n") - 1
    print(f"fit --recordings: {clips} clips, {took:.0f} s")
    kaggle = work / "kaggle"
    upcall("synth", kaggle, "--n-train", args.train_clips, "--seed", args.seed)
    took_k = upcall("fit", kaggle, "--out", work / "run-kaggle", "--recipe", recipe,
                    "--seed", args.seed)  # fmt: skip
    print(f"fit on {args.train_clips} Kaggle-layout clips: {took_k:.0f} s")

    job = Path("jobs") / "whalenet-lr0.01"
    base = measure("kaggle", work / "run-kaggle" / job, work, test, truth, args)
    mine = measure("recordings", work / "run" / job, work, test, truth, args)
    base["curve_threshold"] = mine["curve_threshold"] = args.curve_threshold
    print(f"on the {files} test files ({TOLERANCE_S:g} s tolerance):")
    report("trained on annotated recordings", mine, base)
    report(f"trained on {args.train_clips} Kaggle-layout clips", base, None)


if __name__ == "__main__":
    main()
