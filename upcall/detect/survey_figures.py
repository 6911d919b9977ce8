"""``evaluate``'s figures as a survey states them: false positives per hour of audio, recall at a
chosen false-positive rate, figures per recording, and hourly presence (an hour counts as "calls
present" when it holds at least one call; precision and recall over such hours).

Hours of presence are clock hours in UTC where a recording's start time is known (from the
detect folder's recordings.csv, or the Begin Date / Begin Clock Time of its tables), so two
recordings of the same hour count as one hour; else hours from the start of each file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from upcall.audio.raven import Selection
from upcall.detect.matching import Curve, prf, score
from upcall.fsutil import atomic_write_csv
from upcall.survey.effort import read_effort

PER_RECORDING_CSV = "per_recording.csv"


def recall_at_fp_rate(c: Curve, hours: float, rate: float) -> tuple[float, float | None]:
    """(recall, threshold) at the lowest threshold whose false positives per hour are at most
    ``rate``; (0.0, None) when even the top score's are more (no threshold but above them all)."""
    tp = np.cumsum(c.hits)
    fp = np.arange(1, len(c.hits) + 1) - tp
    ok = np.flatnonzero(c.steps() & (fp / hours <= rate))
    if not len(ok):
        return 0.0, None
    i = int(ok[-1])  # fp only grows down the list: the last step within the rate
    return float(tp[i] / max(c.n_truth, 1)), float(c.scores[i])


def fp_per_hour_at_recall(c: Curve, hours: float, recall: float) -> float | None:
    """False positives per hour at the highest threshold that reaches ``recall``; None when no
    threshold does."""
    tp = np.cumsum(c.hits)
    fp = np.arange(1, len(c.hits) + 1) - tp
    ok = np.flatnonzero(c.steps() & (tp / max(c.n_truth, 1) >= recall))
    return float(fp[ok[0]] / hours) if len(ok) else None


@dataclass(frozen=True)
class RecordingFigures:
    """One recording's figures at the chosen threshold."""

    recording: str  # its key (the path under the folder given, less suffixes)
    truth: int
    detections: int
    true_positives: int
    hours: float | None  # audio length; None when unknown

    @property
    def false_positives(self) -> int:
        return self.detections - self.true_positives

    def prf(self) -> tuple[float, float, float]:
        return prf(self.true_positives, self.detections, self.truth)

    def fp_per_hour(self) -> float | None:
        return self.false_positives / self.hours if self.hours else None


def per_recording(
    truth: dict[str, list[Selection]],
    matched: dict[str, tuple[list[Selection], np.ndarray]],
    *,
    threshold: float,
    hours: dict[str, float],
    names: dict[str, str] | None = None,
) -> list[RecordingFigures]:
    """Figures of every recording the truth covers, in key order; ``names``: truth key → the
    name to show (the detections' key: a Begin Path of the analyst's machine reads badly)."""
    rows, names = [], names or {}
    for key in sorted(truth, key=str):
        found, hits = matched.get(key, ([], np.zeros(0, bool)))
        keep = np.asarray([score(s) >= threshold for s in found], bool)
        rows.append(
            RecordingFigures(
                names.get(key, "/".join(key) if isinstance(key, tuple) else str(key)),
                len(truth[key]),
                int(keep.sum()),
                int(hits[keep].sum()),
                hours.get(key),
            )
        )
    return rows


def _cells(r: RecordingFigures) -> list[str]:
    p, rec, f1 = r.prf()
    fph = r.fp_per_hour()
    return [
        r.recording, str(r.truth), str(r.detections), str(r.true_positives),
        str(r.false_positives), str(r.truth - r.true_positives), f"{p:.4f}", f"{rec:.4f}",
        f"{f1:.4f}", "" if r.hours is None else f"{r.hours:.4f}",
        "" if fph is None else f"{fph:.3f}",
    ]  # fmt: skip


HEADER = ["recording", "truth", "detections", "tp", "fp", "fn", "precision", "recall", "f1",
          "hours", "fp_per_hour"]  # fmt: skip


def write_per_recording(path: str | os.PathLike, rows: list[RecordingFigures]) -> None:
    atomic_write_csv(path, [HEADER, *(_cells(r) for r in rows)])


def format_per_recording(rows: list[RecordingFigures]) -> str:
    """The rows as an aligned text table."""
    table = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    )


def _hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _bins(
    selections: dict[str, list[Selection]], starts: dict[str, datetime | None]
) -> set[tuple[str, object]]:
    out: set[tuple[str, object]] = set()
    for key, rows in selections.items():
        start = starts.get(key)
        for s in rows:
            if start is not None:
                out.add(("utc", _hour(start + timedelta(seconds=s.begin_s))))
            else:
                out.add((key, int(s.begin_s // 3600)))
    return out


@dataclass(frozen=True)
class HourlyPresence:
    truth_hours: int  # hours holding at least one call
    detected_hours: int  # hours holding at least one detection at the threshold
    both: int
    bins: str  # "UTC clock hours", "hours from each file's start" or a mix

    @property
    def precision(self) -> float | None:
        return self.both / self.detected_hours if self.detected_hours else None

    @property
    def recall(self) -> float | None:
        return self.both / self.truth_hours if self.truth_hours else None


def hourly_presence(
    truth: dict[str, list[Selection]],
    detections: dict[str, list[Selection]],
    *,
    threshold: float,
    starts: dict[str, datetime | None],
) -> HourlyPresence:
    """Hour bins with calls in the truth against hour bins with detections at ``threshold``."""
    kept = {k: [s for s in v if score(s) >= threshold] for k, v in detections.items()}
    t, d = _bins(truth, starts), _bins(kept, starts)
    known = sum(starts.get(k) is not None for k in truth)
    bins = (
        "UTC clock hours" if known == len(truth) else
        "hours from each file's start" if not known else
        f"UTC clock hours ({known} of {len(truth)} recordings; the rest from each file's start)"
    )  # fmt: skip
    return HourlyPresence(len(t), len(d), len(t & d), bins)


def starts_from_clocks(tables: dict[str, list[Selection]]) -> dict[str, datetime]:
    """A recording's start from any of its selections with a clock time (Begin Date / Begin
    Clock Time): the clock less the selection's time in the file."""
    out = {}
    for key, rows in tables.items():
        for s in rows:
            if s.clock is not None:
                out[key] = s.clock - timedelta(seconds=s.begin_s)
                break
    return out


def effort_of(
    detections: Path,
    paired: dict[str, str | None],
    hours_flag: float | None,
    key: Callable[[str], str],
) -> tuple[dict[str, float], dict[str, datetime], str | None]:
    """(hours of audio, start time where known) by truth key, from the detect folder's
    recordings.csv (``paired``: detection key → truth key; ``key``: a rel path → its detection
    key), and where the total hours come from: "--hours", "recordings.csv" or None (unknown)."""
    effort = read_effort(detections) if detections.is_dir() else None
    rows = {key(r.rel): r for r in effort or []}
    hours = {t: rows[k].duration_s / 3600 for k, t in paired.items() if t and k in rows}
    starts = {
        t: rows[k].start_time
        for k, t in paired.items()
        if t and k in rows and rows[k].start_time is not None
    }
    if hours_flag is not None:
        return hours, starts, "--hours"
    if effort is not None and len(hours) == sum(t is not None for t in paired.values()):
        return hours, starts, "recordings.csv"
    missing = "no recordings.csv" if effort is None else "recordings.csv lacks some recordings"
    print(f"{detections}: {missing}: false positives per hour need --hours", file=sys.stderr)
    return hours, starts, None
