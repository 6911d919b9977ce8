"""``upcall evaluate TRUTH DETECTIONS``: precision, recall, F1 and AP of detections.

Matching is one-to-one and greedy by score (as COCO / PASCAL VOC score detectors): detections are
taken from the highest score down, and each takes the unmatched truth selection of its recording
whose centre is nearest its own, among those it reaches: the two time spans, each widened by
``tolerance`` seconds, overlap. Because a detection's match does not depend on lower-scored ones,
one pass gives the matches at every threshold: the precision–recall curve, the average precision
(the sum over the curve's steps of recall gained × precision there), the best F1, and the lowest
threshold whose precision reaches ``--precision``.

Recordings are matched by file: a selection's ``Begin Path``, else its table's name, with the
suffixes ``.txt``, ``.selections``/``.detections`` and the audio suffix taken off
(``rec.wav.selections.txt`` → ``rec``). TRUTH and DETECTIONS are tables or folders of them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from upcall.audio.clip import AUDIO_SUFFIXES
from upcall.audio.raven import Selection, read_table
from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile

HELP = "precision, recall, F1 and AP of detections against a truth selection table"
COMBINED = ("detections.txt",)  # run.py's combined table: its rows name their files


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
    """``rec.wav.selections.txt`` / ``/x/rec.wav`` → ``rec``."""
    name = Path(name).name
    for suffix in (".txt", ".selections", ".detections", *AUDIO_SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def load(paths: list[Path]) -> dict[str, list[Selection]]:
    """Selections by recording key from tables or folders of tables."""
    tables = []
    for p in paths:
        if p.is_dir():
            tables += sorted(p.rglob("*.txt"))
        else:
            tables.append(p)
    found: dict[str, list[Selection]] = {}
    for table in tables:
        for s in read_table(table):
            key = recording_key(s.begin_path or table.name)
            found.setdefault(key, []).append(s)
    return found


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
    parser.add_argument("truth", type=Path, help="truth table(s): a file or a folder")
    parser.add_argument("detections", type=Path, help="detection table: a file or folder")
    parser.add_argument("--tolerance", type=float, default=1.0, help="seconds (1.0)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.0,
        help="score threshold for the single precision/recall/F1 (0: all)",
    )
    parser.add_argument(
        "--precision",
        type=float,
        default=0.9,
        help="report the threshold that reaches this precision (0.9)",
    )
    parser.add_argument("--out", type=Path, help="folder for evaluation.json and pr_curve.png")


def run(args: argparse.Namespace) -> int:
    det = args.detections
    if det.is_dir() and (det / COMBINED[0]).exists():
        det_paths = [det / COMBINED[0]]  # one table naming its files; not also the per-file ones
    else:
        det_paths = [det]
    truth, found = load([args.truth]), load(det_paths)
    unknown = sorted(set(found) - set(truth))
    if unknown:
        print(
            f"detections for recordings without truth (all false): {', '.join(unknown)}",
            file=sys.stderr,
        )
    if not truth:
        raise UpcallError(f"{args.truth}: no truth selections")
    result, c = evaluate(
        truth,
        found,
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
