"""``upcall evaluate TRUTH DETECTIONS``: precision, recall, F1 and AP of detections.

Matching is one-to-one and greedy by score (as COCO / PASCAL VOC score detectors): detections are
taken from the highest score down, and each takes the unmatched truth selection of its recording
whose centre is nearest its own, among those it reaches: the two time spans, each widened by
``tolerance`` seconds, overlap. Because a detection's match does not depend on lower-scored ones,
one pass gives the matches at every threshold: the precision–recall curve, the average precision
(the sum over the curve's steps of recall gained × precision there), the best F1, and the
lowest threshold whose precision reaches ``--precision``.

TRUTH and DETECTIONS are tables or folders of them, told apart by content
(:attr:`upcall.audio.raven.Table.kind`): a table with a ``Verified`` column is truth (its ``yes``
rows), an unreviewed one with a ``Score`` column is detections, one with neither is truth. In a
folder, tables of the other kind are passed over (detections written into a recordings folder,
truth kept beside detections); a file of the other kind is an error (the arguments swapped).
Recordings are matched by path relative to the folder given (a file's own folder): a table's
path less its ``.txt``, ``.selections``/``.detections`` and audio suffixes
(``site1/rec.wav.selections.txt`` → ``site1/rec``), or a selection's ``Begin Path`` (relative to
that folder when inside it; an absolute path outside matches the one truth recording whose
relative path ends it). Detections of a recording the truth does not cover are an error unless
``--only-truth-recordings`` skips them.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from upcall.audio import raven
from upcall.audio.clip import AUDIO_SUFFIXES
from upcall.audio.raven import Selection
from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile

HELP = "precision, recall, F1 and AP of detections against a truth selection table"
_NOUN = {"truth": "truth", "detections": "detection"}
COMBINED = "detections.txt"  # run.py's combined table beside detect.json: its rows are per-file


@dataclass(frozen=True)
class Curve:
    """Detections in descending score order, with cumulative matches."""

    scores: np.ndarray  # float64 (D,)
    hits: np.ndarray  # bool (D,): matched a truth selection
    n_truth: int

    def at(self, threshold: float) -> tuple[float, float, float]:
        """(precision, recall, F1) of the detections scoring ≥ ``threshold``."""
        keep = self.scores >= threshold
        tp, n = int(self.hits[keep].sum()), int(keep.sum())
        return _prf(tp, n, self.n_truth)

    def points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, threshold) after each detection."""
        tp = np.cumsum(self.hits)
        n = np.arange(1, len(self.hits) + 1)
        return tp / n, tp / max(self.n_truth, 1), self.scores


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


def _prf(tp: int, n: int, n_truth: int) -> tuple[float, float, float]:
    p = tp / n if n else 0.0
    r = tp / n_truth if n_truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def recording_key(name: str) -> str:
    """``site1/rec.wav.selections.txt`` / ``/x/rec.wav`` → ``site1/rec`` / ``/x/rec``."""
    path = PurePosixPath(name.replace(os.sep, "/"))
    stem = path.name
    for suffix in (".txt", ".selections", ".detections", *AUDIO_SUFFIXES):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return str(path.with_name(stem)) if stem else str(path)


def _tables(root: Path, kind: str) -> list[tuple[raven.Table, Path]]:
    """(table, folder its paths are relative to) of ``kind`` under ``root`` (a file or folder)."""
    other = "detections" if kind == "truth" else "truth"
    why = {
        "truth": "a Verified column, or no Score column",
        "detections": "a Score column and no Verified column",
    }
    if root.is_file():
        table = raven.read(root)
        if table.kind != kind:
            raise UpcallError(
                f"{root}: a {_NOUN[other]} table ({why[other]}), given as {kind}; "
                "the order is `upcall evaluate TRUTH DETECTIONS`"
            )
        return [(table, root.parent)]
    if not root.is_dir():
        raise UpcallError(f"{root}: no such file or folder")
    combined = root / COMBINED if (root / "detect.json").is_file() else None
    found, passed = [], 0
    for path in sorted(root.rglob("*.txt")):
        if path == combined:
            continue
        try:
            table = raven.read(path)
        except raven.NotATable:
            continue  # notes, lists: not selection tables
        if table.kind == kind:
            found.append((table, root))
        else:
            passed += 1
    if passed:
        print(f"{root}: {passed} {_NOUN[other]} table(s) passed over", file=sys.stderr)
    if not found:
        raise UpcallError(f"{root}: no {_NOUN[kind]} tables ({why[kind]}) in it")
    return found


def load(paths: list[Path], *, kind: str = "truth") -> dict[str, list[Selection]]:
    """Selections by recording key (see the module doc) from tables or folders of tables. Every
    recording a truth table covers has a key, even one without calls."""
    found: dict[str, list[Selection]] = {}
    for p in paths:
        for table, base in _tables(p, kind):
            rows = table.truth() if kind == "truth" else table.selections
            if raven.BEGIN_PATH not in table.columns:
                rel = os.path.relpath(table.path, base)
                found.setdefault(recording_key(rel), []).extend(rows)
                continue
            for s in rows:
                where = Path(s.begin_path) if s.begin_path else table.path
                if not where.is_absolute():
                    where = base / where
                inside = os.path.abspath(where).startswith(os.path.abspath(base) + os.sep)
                name = os.path.relpath(where, base) if inside else os.path.abspath(where)
                found.setdefault(recording_key(name), []).append(s)
    return found


def pair(truth: set[str], found: set[str]) -> dict[str, str | None]:
    """Each detection key → its truth key, or None: equal relative paths, or for an absolute
    path (a Begin Path outside the folder given) the one truth key its path ends with."""
    out: dict[str, str | None] = {}
    for key in found:
        if key in truth:
            out[key] = key
            continue
        match = None
        if PurePosixPath(key).is_absolute():
            parts = PurePosixPath(key).parts
            ends = [
                t for t in truth if parts[-len(PurePosixPath(t).parts) :] == PurePosixPath(t).parts
            ]
            match = ends[0] if len(ends) == 1 else None
        out[key] = match
    claimed: dict[str, list[str]] = {}
    for key, t in out.items():
        if t is not None:
            claimed.setdefault(t, []).append(key)
    for t, keys in claimed.items():
        if len(keys) > 1:
            raise UpcallError(
                f"truth recording {t!r} matches several recordings of the detections "
                f"({', '.join(sorted(keys))}); give the folders that hold their paths"
            )
    return out


def _reaches(d: Selection, t: Selection, tol: float) -> bool:
    return d.begin_s - tol <= t.end_s and t.begin_s - tol <= d.end_s


def match(truth: list[Selection], detections: list[Selection], *, tolerance: float) -> np.ndarray:
    """Greedy one-to-one matching of one recording: bool per detection (in the given order,
    which must be by descending score)."""
    used = np.zeros(len(truth), bool)
    centres = np.array([(t.begin_s + t.end_s) / 2 for t in truth])
    hits = np.zeros(len(detections), bool)
    for i, d in enumerate(detections):
        free = [j for j, t in enumerate(truth) if not used[j] and _reaches(d, t, tolerance)]
        if free:
            c = (d.begin_s + d.end_s) / 2
            j = min(free, key=lambda j: abs(centres[j] - c))
            used[j] = hits[i] = True
    return hits


def curve(
    truth: dict[str, list[Selection]], detections: dict[str, list[Selection]], *, tolerance: float
) -> Curve:
    scores, hits = [], []
    for key, found in detections.items():
        found = sorted(found, key=lambda s: -(s.score if s.score is not None else 1.0))
        hits.append(match(truth.get(key, []), found, tolerance=tolerance))
        scores.append([s.score if s.score is not None else 1.0 for s in found])
    s = np.concatenate([np.asarray(x, float) for x in scores]) if scores else np.zeros(0)
    h = np.concatenate(hits) if hits else np.zeros(0, bool)
    order = np.argsort(-s, kind="stable")
    return Curve(s[order], h[order], sum(len(v) for v in truth.values()))


def evaluate(
    truth: dict[str, list[Selection]],
    detections: dict[str, list[Selection]],
    *,
    tolerance: float = 1.0,
    threshold: float = 0.0,
    target_precision: float = 0.9,
) -> tuple[Evaluation, Curve]:
    c = curve(truth, detections, tolerance=tolerance)
    p, r, f1 = c.at(threshold)
    prec, rec, thr = c.points()
    # a threshold between equal scores is not one; keep the last point of each score
    last = np.r_[thr[1:] != thr[:-1], True] if len(thr) else np.zeros(0, bool)
    prec, rec, thr = prec[last], rec[last], thr[last]
    ap = float(np.sum(np.diff(np.r_[0.0, rec]) * prec))
    f1s = 2 * prec * rec / np.where(prec + rec > 0, prec + rec, 1)
    best = int(np.argmax(f1s)) if len(f1s) else None
    ok = np.flatnonzero(prec >= target_precision)
    reach = int(ok[-1]) if len(ok) else None
    return Evaluation(
        tolerance,
        threshold,
        c.n_truth,
        int((c.scores >= threshold).sum()),
        p,
        r,
        f1,
        ap,
        float(f1s[best]) if best is not None else 0.0,
        float(thr[best]) if best is not None else None,
        target_precision,
        float(thr[reach]) if reach is not None else None,
        float(rec[reach]) if reach is not None else None,
    ), c


def plot(c: Curve, result: Evaluation, path: Path) -> None:
    from upcall.plotting import pyplot, save_png

    plt = pyplot()
    prec, rec, _ = c.points()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(np.r_[0.0, rec], np.r_[1.0, prec], drawstyle="steps-post")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"AP {result.average_precision:.3f}, best F1 {result.best_f1:.3f} "
        f"(±{result.tolerance_s:g} s)",
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
    cliargs.add_out(parser, "folder for evaluation.json and pr_curve.png")


def check_args(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise UpcallError(f"--tolerance must be a number of seconds ≥ 0, got {args.tolerance}")
    if not 0 < args.precision <= 1:  # NaN fails too
        raise UpcallError(f"--precision must be in (0, 1], got {args.precision}")
    if not math.isfinite(args.threshold):
        raise UpcallError(f"--threshold must be a number, got {args.threshold}")


def run(args: argparse.Namespace) -> int:
    check_args(args)
    truth = load([args.truth], kind="truth")
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
    result, c = evaluate(
        truth,
        matched,
        tolerance=args.tolerance,
        threshold=args.threshold,
        target_precision=args.precision,
    )
    for k, v in asdict(result).items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        result.write(args.out)
        plot(c, result, args.out / "pr_curve.png")
    return 0
