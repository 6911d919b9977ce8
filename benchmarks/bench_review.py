"""Review and retrain (issue 23's figures): a detector trained on Kaggle-layout clips meets
recordings from another noise regime; a simulated analyst verifies its top detections, and the
model retrained with those verdicts is measured on other recordings of that regime.

* Model: --train-clips Kaggle-layout clips (``upcall synth``, hard, the default noise), ``upcall
  fit`` (the recipe; --epochs shortens it).
* Regime: ``synth-recording --regime`` (default shipping: a busy lane, loud drifting tonals,
  clicks about 4x as often; the calls are the same). --review-hours of it, cut into
  --file-minutes WAVs, are detected (at --review-threshold); the analyst marks the first
  --verify (200) detections by score from the truth (yes: its span, widened by the 1 s
  tolerance, overlaps a true up-call, as an analyst sees a call in the box; no: otherwise)
  and the tables go to VERIFIED/<rel>.selections.txt as ``upcall review`` writes them (the
  detection table with ``Verified`` and ``Note`` columns; rows not reviewed left empty).
* Retraining, one round: ``upcall fit KAGGLE --add-verified VERIFIED --recordings REVIEW`` from
  scratch, and the same with ``--init-weights RUN`` (fine-tuning the first model's weights).
* Test: --test-hours of OTHER recordings of the regime (other seeds). Each model runs ``upcall
  detect`` at --threshold (F1, false positives per hour) and at --curve-threshold (AP: the curve
  covers only what detect kept), ``upcall evaluate`` at 1 s tolerance.
* The sampling estimate (upcall.review.sampling): a stratified --sample (100) of the first
  model's review detections, its verdicts from the same analyst, the estimated precision (95 %
  interval) beside the true precision of all those detections.

Printed: F1, AP, false positives per hour before and after each retraining and the F1 gain
against the target (+0.05 after one round); the precision estimate per score band and overall
against the truth.

    nice -n 10 .venv/bin/python benchmarks/bench_review.py [--train-clips 6000]
        [--review-hours 4] [--test-hours 2] [--epochs E]
    (a smaller run, ~12 min on 2 busy cores: --train-clips 3000 --review-hours 1 --test-hours 0.5
    --epochs 5; its test set is too small to judge the target by)
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
from _run import upcall  # benchmarks/_run.py: scripts here run from this folder

from upcall.audio.raven import Selection, read, write_table
from upcall.review.sampling import draw_sample, estimate

TOLERANCE_S = 1.0
TARGET_GAIN = 0.05
JOB = Path("jobs") / "whalenet-lr0.01"


def make_recordings(folder: Path, truth: Path, hours: float, minutes: float, regime: str,
                    seed: int) -> int:  # fmt: skip
    """Hours of the regime as --file-minutes 2 kHz WAVs (two sites), their truth in TRUTH at the
    same relative paths (not beside the audio: fit --recordings must see the verdicts only).
    Returns the up-calls."""
    calls = 0
    for k in range(max(round(hours * 60 / minutes), 1)):
        rel = Path(f"site{k % 2 + 1}") / f"rec{k:03d}.wav"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (truth / rel).parent.mkdir(parents=True, exist_ok=True)
        upcall("synth-recording", folder / rel, "--minutes", minutes, "--seed", seed + k,
               "--regime", regime)  # fmt: skip
        table = truth / f"{rel}.selections.txt"
        shutil.move(folder / f"{rel}.selections.txt", table)
        calls += len(read(table).selections)
    return calls


def detections(det: Path) -> list[tuple[str, int, Selection]]:
    """Every detection of a detect folder: (rel, row in its table, selection)."""
    found = []
    for table in sorted(det.rglob("*.detections.txt")):
        rel = table.relative_to(det).as_posix().removesuffix(".detections.txt")
        found += [(rel, k, s) for k, s in enumerate(read(table).selections)]
    return found


def analyst(found: list[tuple[str, int, Selection]], truth: Path) -> list[bool]:
    """The simulated analyst's verdict on each detection: a true up-call in the box (±1 s)."""
    calls: dict[str, list[Selection]] = {}
    verdicts = []
    for rel, _, d in found:
        if rel not in calls:
            calls[rel] = read(truth / f"{rel}.selections.txt").selections
        verdicts.append(any(d.begin_s - TOLERANCE_S <= t.end_s and t.begin_s - TOLERANCE_S
                            <= d.end_s for t in calls[rel]))  # fmt: skip
    return verdicts


def write_verified(out: Path, found, verdicts: list[bool], n: int) -> tuple[int, int]:
    """VERIFIED/<rel>.selections.txt as ``upcall review`` writes them, the first ``n``
    detections by score verified; returns (yes, no)."""
    order = sorted(range(len(found)), key=lambda i: -(found[i][2].score or 0.0))[:n]
    marked = {i: "yes" if verdicts[i] else "no" for i in order}
    by_rel: dict[str, list[Selection]] = {}
    for i, (rel, _, s) in enumerate(found):
        note = "simulated analyst: an up-call in the box" if marked.get(i) == "yes" else ""
        cells = (("Verified", marked.get(i, "")), ("Note", note))
        by_rel.setdefault(rel, []).append(replace(s, extra=(*s.extra, *cells)))
    for rel, rows in by_rel.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        write_table(out / f"{rel}.selections.txt", rows, scores=True)
    yes = sum(v == "yes" for v in marked.values())
    return yes, len(marked) - yes


def measure(name: str, job: Path, work: Path, test: Path, truth: Path, args) -> dict:
    """F1 and false positives per hour at --threshold; AP from a detect at --curve-threshold."""
    figures = {}
    for kind, threshold in (("curve", args.curve_threshold), ("", args.threshold)):
        det, out = work / f"detect-{name}{kind}", work / f"eval-{name}{kind}"
        upcall("detect", job, test, "--out", det, "--threshold", threshold)
        upcall("evaluate", truth, det, "--tolerance", TOLERANCE_S, "--threshold", args.threshold,
               "--out", out)  # fmt: skip
        figures[kind] = json.loads((out / "evaluation.json").read_text())
    return {**figures[""], "average_precision": figures["curve"]["average_precision"]}


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def report(name: str, m: dict, base: dict | None) -> None:
    gain = "" if base is None else f" ({m['f1'] - base['f1']:+.3f}"
    if base is not None:
        met = "met" if m["f1"] - base["f1"] >= TARGET_GAIN else "NOT met"
        gain += f"; target +{TARGET_GAIN}: {met})"
    print(f"  {name}: F1 {_num(m['f1'])}{gain} (precision {_num(m['precision'])}, recall "
          f"{_num(m['recall'])}), AP {_num(m['average_precision'])}, false positives per hour "
          f"{_num(m.get('fp_per_hour'), 1)}")  # fmt: skip


def sample_check(found, verdicts: list[bool], n: int, seed: int) -> None:
    """The precision of all ``found`` estimated from a stratified sample of ``n``, vs the truth."""
    if not found:
        print("no review detections: nothing to sample")
        return
    scores = [s.score or 0.0 for _, _, s in found]
    sample = draw_sample(scores, n, seed)
    est = estimate(sample, {i: "yes" if verdicts[i] else "no" for i in sample.indices})
    truth = np.asarray(verdicts)
    band_of = np.asarray(sample.band_of)
    print(f"precision of the {len(found)} review detections from a {len(sample.indices)}-"
          f"detection stratified sample (seed {seed}):")  # fmt: skip
    for h, row in enumerate(est.bands):
        p = row.precision
        band = row.band
        print(f"  band {h + 1} (score {band.low:.3f}–{band.high:.3f}, {band.size} detections, "
              f"{row.yes + row.no} verified): {_num(p.value)} [{_num(p.low)}, {_num(p.high)}], "
              f"truth {truth[band_of == h].mean():.3f}")  # fmt: skip
    p, c = est.precision, est.true_calls
    inside = p.low is not None and p.low <= truth.mean() <= p.high
    print(f"  overall: {_num(p.value)} [{_num(p.low)}, {_num(p.high)}], truth "
          f"{truth.mean():.3f} ({'inside' if inside else 'OUTSIDE'} the 95 % interval); true "
          f"detections {_num(c.value, 0)} [{_num(c.low, 0)}, {_num(c.high, 0)}], truth "
          f"{int(truth.sum())}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-clips", type=int, default=6000, help="Kaggle-layout clips")
    parser.add_argument("--regime", default="shipping", help="synth-recording --regime")
    parser.add_argument("--review-hours", type=float, default=4.0, help="audio the analyst sees")
    parser.add_argument("--test-hours", type=float, default=2.0)
    parser.add_argument("--file-minutes", type=float, default=15.0)
    parser.add_argument("--verify", type=int, default=200, help="detections the analyst marks")
    parser.add_argument("--sample", type=int, default=100, help="the precision sample's size")
    parser.add_argument("--finetune-lr", type=float,
                        help="the fine-tune's base_lr (default: the recipe's, as from scratch)")  # fmt: skip
    parser.add_argument("--placements", type=int, default=1,
                        help="clips per verified up-call (fit --placements)")  # fmt: skip
    parser.add_argument("--epochs", type=int, help="the recipe's epochs (default: fit's)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument(
        "--curve-threshold",
        type=float,
        default=0.1,
        help="detect threshold of the run giving AP",
    )
    parser.add_argument(
        "--review-threshold",
        type=float,
        default=0.1,
        help="detect threshold of the recordings to review (the analyst takes the top --verify "
        "by score; a low one leaves the near misses in reach)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/upcall-bench-review"))
    args = parser.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    recipe = work / "recipe.json"
    recipe.write_text(json.dumps({} if args.epochs is None else {"epochs": args.epochs}))

    kaggle, run = work / "kaggle", work / "run"
    upcall("synth", kaggle, "--n-train", args.train_clips, "--seed", args.seed)
    took = upcall("fit", kaggle, "--out", run, "--recipe", recipe, "--seed", args.seed)
    print(f"fit on {args.train_clips} Kaggle-layout clips: {took:.0f} s")
    review, review_truth = work / "review", work / "review-truth"
    test, test_truth = work / "test", work / "test-truth"
    calls = make_recordings(review, review_truth, args.review_hours, args.file_minutes,
                            args.regime, seed=3000 + 100 * args.seed)  # fmt: skip
    test_calls = make_recordings(test, test_truth, args.test_hours, args.file_minutes,
                                 args.regime, seed=5000 + 100 * args.seed)  # fmt: skip
    print(f"regime {args.regime}: {args.review_hours:g} h to review ({calls} up-calls), "
          f"{args.test_hours:g} h to test on ({test_calls} up-calls), other seeds")  # fmt: skip

    det = work / "detect-review"
    upcall("detect", run / JOB, review, "--out", det, "--threshold", args.review_threshold)
    found = detections(det)
    verdicts = analyst(found, review_truth)
    verified = work / "verified"
    yes, no = write_verified(verified, found, verdicts, args.verify)
    print(f"analyst: the first {yes + no} of {len(found)} detections by score verified: "
          f"{yes} yes, {no} no")  # fmt: skip
    sample_check(found, verdicts, args.sample, args.seed)
    base = measure("before", run / JOB, work, test, test_truth, args)
    print(f"on the {args.test_hours:g} h test recordings ({TOLERANCE_S:g} s tolerance, threshold "
          f"{args.threshold:g}; AP from detect at {args.curve_threshold:g}):")  # fmt: skip
    report("before (Kaggle clips only)", base, None)

    tuned = recipe
    if args.finetune_lr is not None:
        tuned = work / f"recipe-lr{args.finetune_lr:g}.json"
        tuned.write_text(json.dumps({**json.loads(recipe.read_text()),
                                     "base_lr": args.finetune_lr}))  # fmt: skip
    fits, outs = {}, {"scratch": work / "run-scratch", "finetune": work / f"run-{tuned.stem}-ft"}
    for name, more, plan in (("scratch", (), recipe),
                             ("finetune", ("--init-weights", run), tuned)):  # fmt: skip
        fits[name] = upcall("fit", kaggle, "--out", outs[name], "--add-verified", verified,
                            "--recordings", review, "--recipe", plan, "--seed", args.seed,
                            "--placements", args.placements, *more)  # fmt: skip
    print(f"fit --add-verified: from scratch {fits['scratch']:.0f} s, fine-tuned "
          f"{fits['finetune']:.0f} s")  # fmt: skip

    # the job folder is named after the recipe's network and learning rate
    jobs = {n: next(p for p in (outs[n] / "jobs").iterdir() if p.is_dir()) for n in fits}
    after = {n: measure(n, jobs[n], work, test, test_truth, args) for n in fits}
    report("retrained from scratch with the verdicts", after["scratch"], base)
    report("fine-tuned from the first model (--init-weights)", after["finetune"], base)


if __name__ == "__main__":
    main()
