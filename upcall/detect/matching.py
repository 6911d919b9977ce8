"""Which detections found which calls: ``evaluate``'s one-to-one matching and its curve.

Matching is greedy by score (as COCO / PASCAL VOC score detectors): detections are taken from the
highest score down, and each takes one unmatched truth selection of its recording among those it
reaches. Two rules say what "reaches" means (``--match``):

- ``tolerance`` (default): the two time spans, each widened by ``tolerance`` seconds, overlap; the
  nearest centre wins.
- ``overlap``: the time spans' intersection over their union is at least ``min_overlap``; the
  largest overlap wins. Time only: a detector's band and an analyst's box are drawn differently.

Because a detection's match does not depend on lower-scored ones, one pass gives the matches at
every threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from upcall.audio.raven import Selection

RULES = ("tolerance", "overlap")


@dataclass(frozen=True)
class Rule:
    """How a detection reaches a truth selection (see the module doc)."""

    kind: str = "tolerance"  # one of RULES
    tolerance: float = 1.0  # seconds (kind "tolerance")
    min_overlap: float = 0.3  # intersection over union of the time spans (kind "overlap")


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
        return prf(tp, n, self.n_truth)

    def points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, threshold) after each detection."""
        tp = np.cumsum(self.hits)
        n = np.arange(1, len(self.hits) + 1)
        return tp / n, tp / max(self.n_truth, 1), self.scores

    def steps(self) -> np.ndarray:
        """bool (D,): the last point of each score (a threshold between equal scores is not one)."""
        s = self.scores
        return np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)


def prf(tp: int, n: int, n_truth: int) -> tuple[float, float, float]:
    """(precision, recall, F1) of ``n`` detections with ``tp`` hits against ``n_truth`` calls."""
    p = tp / n if n else 0.0
    r = tp / n_truth if n_truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score(s: Selection) -> float:
    """A selection's score; a table without scores counts every row as certain."""
    return s.score if s.score is not None else 1.0


def _iou(d: Selection, t: Selection) -> float:
    inter = min(d.end_s, t.end_s) - max(d.begin_s, t.begin_s)
    union = max(d.end_s, t.end_s) - min(d.begin_s, t.begin_s)
    return inter / union if inter > 0 and union > 0 else 0.0


def match(
    truth: list[Selection],
    detections: list[Selection],
    *,
    tolerance: float = 1.0,
    rule: Rule | None = None,
) -> np.ndarray:
    """Greedy one-to-one matching of one recording: bool per detection (in the given order,
    which must be by descending score). ``rule`` overrides ``tolerance`` when given."""
    rule = rule or Rule(tolerance=tolerance)
    used = np.zeros(len(truth), bool)
    centres = np.array([(t.begin_s + t.end_s) / 2 for t in truth])
    hits = np.zeros(len(detections), bool)
    tol = rule.tolerance
    for i, d in enumerate(detections):
        if rule.kind == "overlap":
            cost = {j: -_iou(d, t) for j, t in enumerate(truth) if not used[j]}
            free = [j for j, c in cost.items() if -c >= rule.min_overlap and -c > 0]
        else:
            c = (d.begin_s + d.end_s) / 2
            cost = {j: abs(centres[j] - c) for j in range(len(truth))}
            free = [
                j
                for j, t in enumerate(truth)
                if not used[j] and d.begin_s - tol <= t.end_s and t.begin_s - tol <= d.end_s
            ]
        if free:
            j = min(free, key=lambda j: cost[j])
            used[j] = hits[i] = True
    return hits


def match_recordings(
    truth: dict[str, list[Selection]], detections: dict[str, list[Selection]], rule: Rule
) -> dict[str, tuple[list[Selection], np.ndarray]]:
    """Per recording key of ``detections``: its detections by descending score and their hits."""
    out = {}
    for key, found in detections.items():
        found = sorted(found, key=lambda s: -score(s))
        out[key] = found, match(truth.get(key, []), found, rule=rule)
    return out


def curve_of(matched: dict[str, tuple[list[Selection], np.ndarray]], n_truth: int) -> Curve:
    """Every recording's matched detections as one curve, by descending score."""
    scores = [np.asarray([score(s) for s in found], float) for found, _ in matched.values()]
    hits = [h for _, h in matched.values()]
    s = np.concatenate(scores) if scores else np.zeros(0)
    h = np.concatenate(hits) if hits else np.zeros(0, bool)
    order = np.argsort(-s, kind="stable")
    return Curve(s[order], h[order], n_truth)


def curve(
    truth: dict[str, list[Selection]],
    detections: dict[str, list[Selection]],
    *,
    tolerance: float = 1.0,
    rule: Rule | None = None,
) -> Curve:
    """The curve of ``detections`` against ``truth`` (by recording key)."""
    matched = match_recordings(truth, detections, rule or Rule(tolerance=tolerance))
    return curve_of(matched, sum(len(v) for v in truth.values()))
