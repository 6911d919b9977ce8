"""Where the 2-s clips of recordings go (``upcall clips``): positives around calls, negatives
away from every selection, hard negatives around the sounds of other labels; and ClipSettings,
what chooses them. Pure and seeded: the same selections, lengths, relative paths and settings
give the same starts; each recording's draws come from the seed and its relative path alone.

Starts are whole milliseconds (the clip's name carries them) and every window lies inside the
file. A positive window holds at least :data:`MIN_INSIDE` of its call (a call longer than the
window: the window lies inside the call), at a uniformly drawn place, as the Kaggle clips hold
theirs. A negative window keeps ``guard_s`` from every selection of any label. A hard negative
is placed around a selection of a label that is not a positive one, as a positive is around its
call, and keeps ``guard_s`` from every positive selection. Negatives number K per positive clip;
a recording without positives gets them at the positive clips' rate per second of annotated
audio. A reviewed table's ``no`` rows (the detector's false alarms, :func:`raven.verdict`) are
not calls whatever their label: each gives ``placements`` hard negatives of its own, beside
those K, as the most useful negatives there are; its ``yes`` rows are calls; its unsure (and
unreviewed) rows give no clip, but negatives keep ``guard_s`` from them as from any selection.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from upcall.audio.clipscsv import HARD_NEGATIVE, NEGATIVE, POSITIVE
from upcall.audio.raven import Selection, verdict
from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile

WINDOW_S = 2.0  # the clip length the models take
MIN_INSIDE = 0.6  # share of a call a positive window holds at least
TRIES = 20  # draws per hard-negative window before its selection is given up
STREAM = 3  # seed-sequence tag of clip placement (synth and synth-recording use 0-2)


@dataclass(frozen=True)
class Box:
    """A selection as the planner sees it: times in this file and its label."""

    begin_s: float
    end_s: float
    label: str
    index: int = 0  # the selection's place in the recording's list (for provenance)
    false_alarm: bool = False  # a reviewer said no: never a call, always a hard negative
    doubtful: bool = False  # a reviewer was unsure (or did not look): no clip, only the guard


@dataclass(frozen=True)
class Planned:
    """One clip to cut: its start (s, whole ms), kind and the box it came from (None: none)."""

    start_ms: int
    kind: str
    box: int | None = None

    @property
    def start_s(self) -> float:
        return self.start_ms / 1000

    @property
    def label(self) -> int:
        return 1 if self.kind == POSITIVE else 0


def last_start_ms(duration_s: float) -> int:
    """The latest whole-ms start whose window still ends inside the file (-1: none fits)."""
    return _floor_ms(duration_s - WINDOW_S)


def place(rng: np.random.Generator, begin_s: float, end_s: float, duration_s: float) -> int:
    """A window start (ms) holding at least MIN_INSIDE of the call ``begin_s..end_s`` (a longer
    call: a window inside it), drawn uniformly, kept inside the file (which keeps the share)."""
    length = end_s - begin_s
    if length > WINDOW_S:
        lo, hi = begin_s, end_s - WINDOW_S
    else:
        lo, hi = begin_s - WINDOW_S + MIN_INSIDE * length, end_s - MIN_INSIDE * length
    lo_ms, hi_ms = _ceil_ms(lo), _floor_ms(hi)
    ms = int(rng.integers(lo_ms, max(lo_ms, hi_ms) + 1))
    return min(max(ms, 0), max(last_start_ms(duration_s), 0))


def positives(
    rng: np.random.Generator, boxes: list[Box], duration_s: float, *, placements: int
) -> list[Planned]:
    """``placements`` windows around each box (a repeated start is kept once)."""
    if last_start_ms(duration_s) < 0:
        return []
    out, seen = [], set()
    for box in boxes:
        for _ in range(placements):
            ms = place(rng, box.begin_s, box.end_s, duration_s)
            if ms not in seen:
                seen.add(ms)
                out.append(Planned(ms, POSITIVE, box.index))
    return out


def free_starts(boxes: list[Box], duration_s: float, guard_s: float) -> list[tuple[int, int]]:
    """The whole-ms starts (inclusive ranges, in order) of windows inside the file that keep
    ``guard_s`` from every box."""
    # a window starting after (begin - guard - WINDOW) and before (end + guard) comes too close
    banned = sorted(
        (_floor_ms(b.begin_s - guard_s - WINDOW_S) + 1, _ceil_ms(b.end_s + guard_s) - 1)
        for b in boxes
    )
    free, lo, last = [], 0, last_start_ms(duration_s)
    for a, b in banned:
        if min(a - 1, last) >= lo:
            free.append((lo, min(a - 1, last)))
        lo = max(lo, b + 1)
    if last >= lo:
        free.append((lo, last))
    return free


def _floor_ms(s: float) -> int:
    return math.floor(s * 1000 + 1e-6)  # the tolerance keeps 1.2 s at 1200 ms


def _ceil_ms(s: float) -> int:
    return math.ceil(s * 1000 - 1e-6)


def negatives(
    rng: np.random.Generator,
    boxes: list[Box],
    duration_s: float,
    count: int,
    *,
    guard_s: float,
    taken: set[int],
) -> list[Planned]:
    """``count`` windows (fewer where the free time runs out) uniformly over the starts that keep
    ``guard_s`` from every box, none at a start in ``taken`` (which grows). Drawn one by one, so
    the first ones stay when ``count`` changes."""
    free = free_starts(boxes, duration_s, guard_s)
    sizes = np.array([hi - lo + 1 for lo, hi in free], dtype=np.int64)
    total = int(sizes.sum())
    out: list[Planned] = []
    if total == 0:
        return out
    ends = np.cumsum(sizes)
    count, misses = min(count, total), 0
    while len(out) < count and misses < 2 * count + 1000:  # a start drawn twice is drawn again
        k = int(rng.integers(total))
        i = int(np.searchsorted(ends, k, side="right"))
        ms = free[i][0] + k - (int(ends[i - 1]) if i else 0)
        if ms in taken:
            misses += 1
            continue
        taken.add(ms)
        out.append(Planned(ms, NEGATIVE))
    return out


def hard_negatives(
    rng: np.random.Generator,
    others: list[Box],
    positive_boxes: list[Box],
    duration_s: float,
    count: int,
    *,
    guard_s: float,
    placements: int,
    taken: set[int],
) -> list[Planned]:
    """Up to ``count`` windows around the ``others`` (each used at most ``placements`` times, in
    a seeded order), each ``guard_s`` from every positive box and at a start not in ``taken``."""
    out: list[Planned] = []
    if last_start_ms(duration_s) < 0 or not others:
        return out
    order = rng.permutation(len(others))
    for _ in range(placements):
        for i in order:
            if len(out) >= count:
                return out
            box = others[int(i)]
            for _ in range(TRIES):
                ms = place(rng, box.begin_s, box.end_s, duration_s)
                if ms not in taken and _clear(ms, positive_boxes, guard_s):
                    taken.add(ms)
                    out.append(Planned(ms, HARD_NEGATIVE, box.index))
                    break
    return out


def _clear(ms: int, boxes: list[Box], guard_s: float) -> bool:
    """Whether the window starting at ``ms`` keeps ``guard_s`` from every box."""
    begin, end = ms / 1000, ms / 1000 + WINDOW_S
    return all(
        end <= b.begin_s - guard_s + 1e-9 or begin >= b.end_s + guard_s - 1e-9 for b in boxes
    )


# --- the clips of a set of recordings ---------------------------------------------------


@dataclass(frozen=True)
class ClipSettings(JsonFile):
    """DATA/clips.json: what chose the clips."""

    FILE = "clips.json"
    label_column: str | None = None  # None: Annotation, else Tags/Species/... (upcall.audio.raven)
    positive: tuple[str, ...] | None = None  # labels that are up-calls; None: every label
    negatives_per_positive: float = 2.0
    guard_s: float = 2.0  # a negative window keeps this far from every selection
    placements: int = 1  # windows per positive selection (each placed at random)
    # 0-based channel read; selections count whatever Raven channel they were drawn on (a call
    # reaches every hydrophone of a recorder; analysts mark it on one)
    channel: int = 0
    unannotated_negatives: bool = False  # a recording without a table: negatives from all of it
    seed: int = 0
    start_times: Path | None = None  # --start-times CSV (absolute)
    hard_negative_share: float = 0.5  # of the negatives, drawn around other labels' selections

    def check(self) -> None:
        for name, value in (
            ("--negatives-per-positive", self.negatives_per_positive),
            ("--guard", self.guard_s),
            ("--channel", self.channel),
            ("--seed", self.seed),
        ):
            if not value >= 0 or value == float("inf"):
                raise UpcallError(f"{name} must be zero or positive, got {value}")
        if self.placements < 1:
            raise UpcallError(f"--placements must be 1 or more, got {self.placements}")
        if not 0.0 <= self.hard_negative_share <= 1.0:
            raise UpcallError(
                f"--hard-negative-share must be between 0 and 1, got {self.hard_negative_share}"
            )
        if self.positive is not None and (not self.positive or "" in self.positive):
            raise UpcallError(f"--positive needs labels (LABEL[,LABEL]), got {self.positive}")


@dataclass
class Recording:
    """One recording's plan and outcome."""

    path: Path
    rel: Path
    duration_s: float
    selections: list[Selection] | None  # its table's, None: no table
    boxes: list[Box] = field(default_factory=list)
    clips: list[Planned] = field(default_factory=list)
    failed: bool = False

    def name(self, clip: Planned) -> str:
        return f"{self.rel.as_posix().replace('/', '__')}_{clip.start_ms:09d}.aiff"


def _rng(settings: ClipSettings, rel: Path, tag: int) -> np.random.Generator:
    """The generator of one recording's draws of one kind: from the seed and ``rel`` alone."""
    digest = hashlib.sha256(rel.as_posix().encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([settings.seed, STREAM, tag, *words])


def _positive(settings: ClipSettings, box: Box) -> bool:
    if box.false_alarm or box.doubtful:
        return False
    return settings.positive is None or box.label in settings.positive


def _plan_positives(rec: Recording, settings: ClipSettings) -> None:
    if rec.selections is not None:
        rec.boxes = [
            Box(
                s.begin_s,
                s.end_s,
                s.label,
                i,
                verdict(s) == "no",
                verdict(s) not in (None, "yes", "no"),
            )
            for i, s in enumerate(rec.selections)
        ]
    mine = [b for b in rec.boxes if _positive(settings, b)]
    rng = _rng(settings, rec.rel, 0)
    rec.clips = positives(rng, mine, rec.duration_s, placements=settings.placements)


def _plan_negatives(rec: Recording, settings: ClipSettings, count: int) -> None:
    taken = {c.start_ms for c in rec.clips}
    positives = [b for b in rec.boxes if _positive(settings, b)]
    others = [b for b in rec.boxes if not (_positive(settings, b) or b.false_alarm or b.doubtful)]
    alarms = [b for b in rec.boxes if b.false_alarm]
    reviewed = hard_negatives(  # every false alarm, beside the K per positive clip
        _rng(settings, rec.rel, 3),
        alarms,
        positives,
        rec.duration_s,
        len(alarms) * settings.placements,
        guard_s=settings.guard_s,
        placements=settings.placements,
        taken=taken,
    )
    hard = hard_negatives(
        _rng(settings, rec.rel, 1),
        others,
        positives,
        rec.duration_s,
        round(settings.hard_negative_share * count),
        guard_s=settings.guard_s,
        placements=settings.placements,
        taken=taken,
    )
    plain = negatives(
        _rng(settings, rec.rel, 2),
        rec.boxes,
        rec.duration_s,
        count - len(hard),
        guard_s=settings.guard_s,
        taken=taken,
    )
    rec.clips = sorted(rec.clips + reviewed + hard + plain, key=lambda c: c.start_ms)


def plan(recordings: list[Recording], settings: ClipSettings) -> None:
    """Every recording's clips: positives, then negatives (K per positive clip; a recording
    without positives at the positive clips' rate per second of annotated audio)."""
    for rec in recordings:
        _plan_positives(rec, settings)
    annotated = [r for r in recordings if r.selections is not None]
    n_pos = sum(len(r.clips) for r in annotated)
    if not n_pos and not any(b.false_alarm for r in annotated for b in r.boxes):
        labels = ", ".join(map(repr, sorted({b.label for r in annotated for b in r.boxes})))
        wanted = "any label" if settings.positive is None else ", ".join(settings.positive)
        raise UpcallError(
            f"no selection of {wanted} in the tables of "
            f"{len(annotated)} recording(s) (labels there: {labels or 'none'})"
        )
    rate = n_pos / max(sum(r.duration_s for r in annotated), 1e-9)
    for rec in recordings:
        pos = len(rec.clips)
        count = pos if pos else rate * rec.duration_s
        _plan_negatives(rec, settings, round(settings.negatives_per_positive * count))
