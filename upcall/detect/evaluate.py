"""``upcall evaluate TRUTH DETECTIONS``: precision, recall, F1 and AP of detections.

Matching is one-to-one and greedy by score, by the tolerance or the box overlap
(:mod:`upcall.detect.matching`); one pass gives the matches at every threshold: the
precision–recall curve, the average precision (the sum over the curve's steps of recall gained ×
precision there), the best F1, and the lowest threshold whose precision reaches ``--precision``.
As a survey states it (:mod:`upcall.detect.survey_figures`): false positives per hour of audio
(the hours from the detect folder's recordings.csv, or ``--hours``), recall at ``--fp-per-hour``,
figures per recording (OUT/per_recording.csv) and hourly-presence precision and recall.

TRUTH and DETECTIONS are tables or folders of them, told apart by content
(:attr:`upcall.audio.raven.Table.kind`): a table with a ``Verified`` column is truth (its ``yes``
rows), an unreviewed one with a ``Score`` column is detections, one with neither is truth. In a
folder, tables of the other kind are passed over (detections written into a recordings folder,
truth kept beside detections); a file of the other kind is an error (the arguments swapped).
Recordings are paired by the rule every command uses (:mod:`upcall.audio.pairing`), by path
relative to the folder given (a file's own folder): a table named for its recording
(``site1/rec.wav.selections.txt``, ``site1/rec.Table.1.selections.txt`` → ``site1/rec``), or a
selection's ``Begin Path`` / ``Begin File`` (a file sequence: each row in its file's own time
line); else the one truth recording whose path ends the other's. Detections of a recording the
truth does not cover are an error unless ``--only-truth-recordings`` skips them.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path, PurePosixPath

import numpy as np

from upcall.audio import pairing, raven
from upcall.audio.raven import Selection
from upcall.detect import survey_figures as sf
from upcall.detect.matching import RULES, Curve, Rule, curve, curve_of, match, match_recordings
from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile

__all__ = ["Curve", "Evaluation", "curve", "evaluate", "load", "match", "pair", "recording_key"]

HELP = "precision, recall, F1 and AP of detections against a truth selection table"
_NOUN = {"truth": "truth", "detections": "detection"}


@dataclass(frozen=True)
class Evaluation(JsonFile):
    """OUT/evaluation.json: the figures ``upcall evaluate`` prints."""

    FILE = "evaluation.json"
    tolerance_s: float
    threshold: float
    truth: int
    detections: int
    precision: float
    recall: float
    f1: float
    average_precision: float
    best_f1: float
    best_f1_threshold: float | None
    target_precision: float
    threshold_at_precision: float | None  # lowest threshold reaching target_precision
    recall_at_precision: float | None
    # as a survey states it (None: not known, e.g. no hours of audio given)
    match: str = "tolerance"  # the matching rule (upcall.detect.matching.RULES)
    min_overlap: float | None = None  # match "overlap": intersection over union, time spans
    hours: float | None = None  # hours of audio evaluated
    hours_source: str | None = None  # "recordings.csv" (the detect folder's) or "--hours"
    fp_per_hour: float | None = None  # at threshold
    target_fp_per_hour: float | None = None
    recall_at_fp_per_hour: float | None = None  # lowest threshold within target_fp_per_hour
    threshold_at_fp_per_hour: float | None = None
    target_recall: float | None = None
    fp_per_hour_at_recall: float | None = None  # at the highest threshold reaching target_recall
    positive: tuple[str, ...] | None = None  # the truth labels counted as calls; None: every one
    hourly_bins: str | None = None  # "UTC clock hours" or "hours from each file's start"
    truth_hours: int | None = None  # hours holding at least one call
    detected_hours: int | None = None  # hours holding a detection at threshold
    hourly_precision: float | None = None
    hourly_recall: float | None = None


def recording_key(name: str) -> str:
    """``site1/rec.wav.selections.txt`` / ``/x/rec.wav`` → ``site1/rec`` / ``/x/rec``: the
    recording a table's name (:data:`upcall.audio.pairing.TABLE_PATTERNS`) or a path names."""
    parts = pairing.key(name)
    if parts and (stem := pairing.table_recording(parts[-1])) is not None:
        parts = (*parts[:-1], stem)
    return _text(parts) if parts else name


def _text(key: pairing.Key) -> str:
    return str(PurePosixPath(*key))


def _tables(
    root: Path, kind: str, label_column: str | None = None
) -> list[tuple[raven.Table, Path]]:
    """(table, its path under ``root``) of ``kind`` under ``root`` (a file or a folder)."""
    other = "detections" if kind == "truth" else "truth"
    why = {
        "truth": "a Verified column, or no Score column",
        "detections": "a Score column and no Verified column",
    }
    if root.is_file():
        table = raven.read(root, label_column=label_column)
        if table.kind != kind:
            raise UpcallError(
                f"{root}: a {_NOUN[other]} table ({why[other]}), given as {kind}; "
                "the order is `upcall evaluate TRUTH DETECTIONS`"
            )
        return [(table, Path(root.name))]
    if not root.is_dir():
        raise UpcallError(f"{root}: no such file or folder")
    found, passed = [], 0
    for path, rel in pairing.find_tables([root]):  # passes over detect's combined table
        table = raven.read(path, label_column=label_column)
        if table.kind == kind:
            found.append((table, rel))
        else:
            passed += 1
    if passed:
        print(f"{root}: {passed} {_NOUN[other]} table(s) passed over", file=sys.stderr)
    if not found:
        raise UpcallError(f"{root}: no {_NOUN[kind]} tables ({why[kind]}) in it")
    return found


def load(
    paths: list[Path],
    *,
    kind: str = "truth",
    label_column: str | None = None,
    positive: tuple[str, ...] | None = None,
) -> dict[str, list[Selection]]:
    """Selections by recording key (see the module doc) from tables or folders of tables, in each
    recording's own time line (:func:`upcall.audio.pairing.places`). Every recording a truth
    table covers has a key, even one without calls. ``positive``: only selections with these
    labels (``label_column``: the tables' label column), an error when no table has one."""
    found: dict[str, list[Selection]] = {}
    labels: set[str] = set()
    for p in paths:
        for table, rel in _tables(p, kind, label_column):
            rows = table.truth() if kind == "truth" else table.selections
            labels |= {s.label for s in rows}
            if positive is not None:
                rows = [s for s in rows if s.label in positive]
            for place in pairing.places(table, rel, rows=rows):
                selections = found.setdefault(_text(place.name), [])
                if place.selection is not None:
                    selections.append(place.selection)
    if positive is not None and labels and not labels & set(positive):
        raise UpcallError(
            f"{', '.join(map(str, paths))}: no selection labelled {', '.join(positive)} "
            f"(the labels are {', '.join(sorted(labels))})"
        )
    return found


def pair(truth: set[str], found: set[str]) -> dict[str, str | None]:
    """Each detection key → its truth key, or None, by :func:`upcall.audio.pairing.resolve`: the
    same relative path, else the one truth key whose path ends it or is ended by it (a Begin
    Path outside the folder given; folders given at different depths). A detection key naming
    several truth keys, or a truth key claimed by several detection keys, is an error."""
    keys = {pairing.key(t): t for t in truth}
    out: dict[str, str | None] = {}
    for key in found:
        match = pairing.resolve(pairing.key(key), keys)
        if len(match) > 1:
            raise UpcallError(
                f"detections of {key!r} match several truth recordings "
                f"({', '.join(sorted(keys[m] for m in match))}); give the folders that hold "
                "their paths"
            )
        out[key] = keys[match[0]] if match else None
    claimed: dict[str, list[str]] = {}
    for key, t in out.items():
        if t is not None:
            claimed.setdefault(t, []).append(key)
    for t, keys_ in claimed.items():
        if len(keys_) > 1:
            raise UpcallError(
                f"truth recording {t!r} matches several recordings of the detections "
                f"({', '.join(sorted(keys_))}); give the folders that hold their paths"
            )
    return out


def evaluate(
    truth: dict[str, list[Selection]],
    detections: dict[str, list[Selection]],
    *,
    tolerance: float = 1.0,
    threshold: float = 0.0,
    target_precision: float = 0.9,
    rule: Rule | None = None,
    hours: float | None = None,
    hours_source: str | None = None,
    target_fp_per_hour: float = 1.0,
    target_recall: float = 0.9,
    starts: dict[str, datetime | None] | None = None,
    matched: dict[str, tuple[list[Selection], np.ndarray]] | None = None,
) -> tuple[Evaluation, Curve]:
    """The figures of ``detections`` against ``truth`` (both by recording key). ``rule``
    (default: the tolerance rule with ``tolerance``) says how they match; ``hours`` of audio
    give the per-hour figures; ``starts`` (recording start times) the clock hours of presence;
    ``matched``: the result of ``match_recordings`` when the caller has it already."""
    rule = rule or Rule(tolerance=tolerance)
    if matched is None:
        matched = match_recordings(truth, detections, rule)
    c = curve_of(matched, sum(len(v) for v in truth.values()))
    p, r, f1 = c.at(threshold)
    prec, rec, thr = c.points()
    last = c.steps()  # a threshold between equal scores is not one
    prec, rec, thr = prec[last], rec[last], thr[last]
    ap = float(np.sum(np.diff(np.r_[0.0, rec]) * prec))
    f1s = 2 * prec * rec / np.where(prec + rec > 0, prec + rec, 1)
    best = int(np.argmax(f1s)) if len(f1s) else None
    ok = np.flatnonzero(prec >= target_precision)
    reach = int(ok[-1]) if len(ok) else None
    n = int((c.scores >= threshold).sum())
    per_hour = {}
    if hours:
        r_fp, t_fp = sf.recall_at_fp_rate(c, hours, target_fp_per_hour)
        per_hour = dict(
            hours=hours, hours_source=hours_source, target_fp_per_hour=target_fp_per_hour,
            fp_per_hour=(n - int(c.hits[c.scores >= threshold].sum())) / hours,
            recall_at_fp_per_hour=r_fp, threshold_at_fp_per_hour=t_fp,
            target_recall=target_recall,
            fp_per_hour_at_recall=sf.fp_per_hour_at_recall(c, hours, target_recall),
        )  # fmt: skip
    hp = sf.hourly_presence(truth, detections, threshold=threshold, starts=starts or {})
    return Evaluation(
        tolerance_s=rule.tolerance,
        threshold=threshold,
        truth=c.n_truth,
        detections=n,
        precision=p,
        recall=r,
        f1=f1,
        average_precision=ap,
        best_f1=float(f1s[best]) if best is not None else 0.0,
        best_f1_threshold=float(thr[best]) if best is not None else None,
        target_precision=target_precision,
        threshold_at_precision=float(thr[reach]) if reach is not None else None,
        recall_at_precision=float(rec[reach]) if reach is not None else None,
        match=rule.kind,
        min_overlap=rule.min_overlap if rule.kind == "overlap" else None,
        **per_hour,
        hourly_bins=hp.bins,
        truth_hours=hp.truth_hours,
        detected_hours=hp.detected_hours,
        hourly_precision=hp.precision,
        hourly_recall=hp.recall,
    ), c


def plot(c: Curve, result: Evaluation, path: Path) -> None:
    from upcall.plotting import pyplot, save_png

    plt = pyplot()
    prec, rec, _ = c.points()
    how = f"±{result.tolerance_s:g} s"
    if result.match == "overlap":
        how = f"IoU ≥ {result.min_overlap:g}"
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(np.r_[0.0, rec], np.r_[1.0, prec], drawstyle="steps-post")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"AP {result.average_precision:.3f}, best F1 {result.best_f1:.3f} ({how})",
    )
    ax.grid(alpha=0.3)
    save_png(fig, path)
    plt.close(fig)


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    parser.add_argument(
        "truth", type=Path, help="truth table(s): a file or a folder (searched recursively)"
    )
    parser.add_argument("detections", type=Path, help="detection table(s): a file or folder")
    parser.add_argument("--tolerance", type=float, default=1.0, help="seconds, ≥ 0 (1.0)")
    parser.add_argument(
        "--match",
        choices=RULES,
        default="tolerance",
        help="tolerance: time spans widened by --tolerance overlap; overlap: their intersection "
        "over union is at least --min-overlap",
    )
    parser.add_argument(
        "--min-overlap", type=float, default=0.3, help="with --match overlap, in (0, 1]"
    )
    parser.add_argument(
        "--hours",
        type=float,
        metavar="H",
        help="hours of audio the detections cover, for false positives per hour (default: the "
        "durations in DETECTIONS/recordings.csv when DETECTIONS is a detect folder)",
    )
    parser.add_argument(
        "--fp-per-hour",
        type=float,
        default=1.0,
        metavar="R",
        help="report the recall at the lowest threshold with at most R false positives per hour",
    )
    parser.add_argument(
        "--recall",
        type=float,
        default=0.9,
        help="report the false positives per hour at the highest threshold reaching this recall",
    )
    cliargs.add_labels(parser, "truth selections of other labels are not calls to find")
    cliargs.add_threshold(
        parser,
        "the single precision/recall/F1 counts the detections at or above it (0: all; the "
        "curve and the average precision take every threshold)",
    )
    parser.add_argument(
        "--precision",
        type=float,
        default=0.9,
        help="report the threshold that reaches this precision, in (0, 1] (0.9)",
    )
    parser.add_argument(
        "--only-truth-recordings",
        action="store_true",
        help="skip detections of recordings the truth does not cover (else an error)",
    )
    cliargs.add_out(parser, "folder for evaluation.json, per_recording.csv and pr_curve.png")


def check_args(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise UpcallError(f"--tolerance must be a number of seconds ≥ 0, got {args.tolerance}")
    if not 0 < args.precision <= 1:  # NaN fails too
        raise UpcallError(f"--precision must be in (0, 1], got {args.precision}")
    if not math.isfinite(args.threshold):
        raise UpcallError(f"--threshold must be a number, got {args.threshold}")
    if not 0 < args.min_overlap <= 1:
        raise UpcallError(f"--min-overlap must be in (0, 1], got {args.min_overlap}")
    if args.hours is not None and not (math.isfinite(args.hours) and args.hours > 0):
        raise UpcallError(f"--hours must be a number of hours > 0, got {args.hours}")
    if not (math.isfinite(args.fp_per_hour) and args.fp_per_hour >= 0):
        raise UpcallError(f"--fp-per-hour must be a number ≥ 0, got {args.fp_per_hour}")
    if not 0 < args.recall <= 1:
        raise UpcallError(f"--recall must be in (0, 1], got {args.recall}")


def run(args: argparse.Namespace) -> int:
    from upcall.cliargs import positive_labels

    check_args(args)
    positive = positive_labels(args)
    truth = load([args.truth], kind="truth", label_column=args.label_column, positive=positive)
    found = load([args.detections], kind="detections")
    paired = pair(set(truth), set(found))
    unknown = sorted(k for k, t in paired.items() if t is None)
    if unknown and not args.only_truth_recordings:
        raise UpcallError(
            f"{args.detections}: detections of {len(unknown)} recording(s) the truth "
            f"{args.truth} does not cover ({', '.join(unknown[:3])}"
            + (", …" if len(unknown) > 3 else "")
            + "); paths are matched relative to the folders given "
            "(--only-truth-recordings skips them)"
        )
    if unknown:
        print(f"skipped detections of recordings without truth: {', '.join(unknown)}",
              file=sys.stderr)  # fmt: skip
    matched = {t: found[k] for k, t in paired.items() if t is not None}
    if not matched:
        raise UpcallError(f"{args.detections}: no recording matches one of the truth {args.truth}")
    rule = Rule(args.match, args.tolerance, args.min_overlap)
    hours, starts, source = sf.effort_of(args.detections, paired, args.hours, recording_key)
    by_rec = match_recordings(truth, matched, rule)
    result, c = evaluate(
        truth, matched, threshold=args.threshold, target_precision=args.precision, rule=rule,
        hours=sum(hours.values()) if source == "recordings.csv" else args.hours,
        hours_source=source, target_fp_per_hour=args.fp_per_hour, matched=by_rec,
        target_recall=args.recall,
        starts={**sf.starts_from_clocks(truth), **sf.starts_from_clocks(matched), **starts},
    )  # fmt: skip
    result = replace(result, positive=positive)
    names = {t: k for k, t in paired.items() if t is not None}
    rows = sf.per_recording(truth, by_rec, threshold=args.threshold, hours=hours, names=names)
    for k, v in asdict(result).items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    print(f"\nper recording (threshold {args.threshold:g}):\n{sf.format_per_recording(rows)}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        result.write(args.out)
        sf.write_per_recording(args.out / sf.PER_RECORDING_CSV, rows)
        plot(c, result, args.out / "pr_curve.png")
    return 0
