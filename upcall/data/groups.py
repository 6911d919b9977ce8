"""Group splits: training and validation lists that share no site, recording or time block.

Clips cut from the same minutes of one recording are near-duplicates, so a split of single clips
puts neighbours on both sides and the validation figures flatter the model. Where DATA/clips.csv
(:mod:`upcall.audio.clipscsv`, written by ``upcall clips``) says where each clip came from,
``upcall lists`` holds out whole groups instead: sites (the recordings' top folder, or the
``--start-times`` site column), recordings, or blocks of ``--group-seconds`` within a recording.
``auto`` takes sites where there are two or more that allow a split, else recordings, else time
blocks. Validation groups are drawn seeded, to hold about ``--val-fraction`` of the clips; both
classes must be on both sides, or the split is refused with what to change.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from upcall.audio.clipscsv import CLIPS_CSV, read_clips_csv
from upcall.errors import UpcallError

if TYPE_CHECKING:
    from upcall.audio.clipscsv import ClipOrigin
    from upcall.data.traincsv import Clip

GROUP_BYS = ("auto", "site", "recording", "block")
DEFAULT_GROUP_SECONDS = 300.0  # time blocks: 5 minutes of a recording
TRIES = 64  # seeded draws of validation groups; the one nearest --val-fraction is kept
CLASSES = ("not-whale", "whale")  # label i (upcall.data.listsfolder.LABELS)
_ADVICE = {
    "site": "use --group-by recording",
    "recording": "use --group-by block (time blocks within a recording), or add annotated "
    "recordings",
    "block": "use a smaller --group-seconds, or add annotated recordings",
}


@dataclass(frozen=True)
class GroupSplit:
    """Which clips (rows of train.csv) train and validate, and the groups behind them."""

    by: str  # "site", "recording" or "block"
    group_seconds: float | None  # the block length when by == "block"
    train_idx: np.ndarray  # ascending rows of train.csv
    val_idx: np.ndarray
    groups: dict[str, int]  # "train" / "val" -> number of groups
    why: str = ""  # auto's reason for this grouping ("" when it was asked for)

    def describe(self, source: Path) -> str:
        """One line for the user: the grouping, where it came from and the group counts."""
        what = f"time blocks of {self.group_seconds:g} s" if self.by == "block" else f"{self.by}s"
        n = len(self.train_idx) + len(self.val_idx)
        why = f" ({self.why})" if self.why else ""
        return (
            f"split by {what} from {source}{why}: {self.groups['train']} for training, "
            f"{self.groups['val']} for validation ({len(self.val_idx)} of {n} clips, "
            f"{len(self.val_idx) / n:.0%})"
        )


def split_by_groups(
    data_dir: Path,
    clips: Sequence[Clip],
    labels: np.ndarray,
    *,
    group_by: str,
    group_seconds: float | None,
    split: str,
    val_fraction: float,
    seed: np.random.SeedSequence,
) -> GroupSplit | None:
    """The split of whole groups where DATA/clips.csv says where the clips came from (said on
    stdout); None for Kaggle data, whose clips are split one by one as before."""
    path = data_dir / CLIPS_CSV
    if not path.is_file():
        if group_by != "auto":
            raise UpcallError(
                f"{path}: not found; --group-by {group_by} needs the clips' origins "
                "(`upcall clips` writes clips.csv)"
            )
        return None
    if split == "ordered":
        if group_by != "auto":
            raise UpcallError(f"--split ordered and --group-by {group_by}: choose one")
        print(
            f"upcall lists: note: --split ordered takes the last rows of train.csv, not whole "
            f"groups of {path}: neighbouring clips may be on both sides",
            flush=True,
        )
        return None
    grouped = group_split(
        labels,
        clip_origins(path, clips),
        by=group_by,
        group_seconds=group_seconds,
        val_fraction=val_fraction,
        seed=seed,
        source=path,
    )
    print(f"upcall lists: {grouped.describe(path)}", flush=True)
    return grouped


def clip_origins(csv_path: Path, clips: Sequence[Clip]) -> list[ClipOrigin]:
    """The clips.csv row of every train.csv clip, in train.csv's order."""
    rows: dict[str, ClipOrigin] = {}
    for origin in read_clips_csv(csv_path):
        rows.setdefault(origin.clip_name, origin)
        rows.setdefault(Path(origin.clip_name).name, origin)
    out = []
    for clip in clips:
        origin = rows.get(clip.name) or rows.get(Path(clip.name).name)
        if origin is None:
            raise UpcallError(
                f"{csv_path}: no row for clip {clip.name} (train.csv line {clip.line}); "
                "clips.csv must name every clip of train.csv (rerun `upcall clips`)"
            )
        out.append(origin)
    return out


def group_keys(origins: Sequence[ClipOrigin], by: str, seconds: float) -> list[str]:
    """Each clip's group. Time blocks: every placement of one selection goes to the block of
    its earliest clip, so copies of one call are never split."""
    if by == "site":
        return [o.site for o in origins]
    if by == "recording":
        return [str(o.rel) for o in origins]
    block = [int(o.start_s // seconds) for o in origins]
    first: dict[tuple[str, str, str], int] = {}
    for o, b in zip(origins, block, strict=True):
        if o.table:
            key = (str(o.rel), str(o.table), str(o.row))
            first[key] = min(first.get(key, b), b)
    return [
        f"{o.rel}@{(first.get((str(o.rel), str(o.table), str(o.row)), b) if o.table else b)}"
        for o, b in zip(origins, block, strict=True)
    ]


def choose_validation(
    labels: np.ndarray, keys: Sequence[str], *, val_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[str, int]] | None:
    """Rows (train, val) and group counts of a split of whole groups with both classes on both
    sides and the validation share nearest ``val_fraction`` over :data:`TRIES` seeded draws;
    None when no draw gives one (or there is a single group)."""
    names, inverse = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    n_groups = len(names)
    if n_groups < 2:
        return None
    sizes = np.bincount(inverse, minlength=n_groups)
    has = np.zeros((n_groups, len(CLASSES)), bool)
    has[inverse, labels] = True
    target = val_fraction * len(labels)
    best: tuple[float, list[int]] | None = None
    for _ in range(TRIES):
        order = [int(g) for g in rng.permutation(n_groups)]
        val: list[int] = []
        count = 0
        for g in order:
            if not val or abs(count + sizes[g] - target) < abs(count - target):
                val.append(g)
                count += sizes[g]
        if len(val) == n_groups:  # training keeps at least one group
            count -= sizes[val.pop()]
        for c in range(len(CLASSES)):  # a class missing from validation: add a group that has it
            if not has[val, c].any():
                for g in order:
                    rest = [h for h in order if h not in val and h != g]
                    if g not in val and has[g, c] and has[rest].all(axis=0).any():
                        val.append(g)
                        count += sizes[g]
                        break
        train = [g for g in order if g not in val]
        if train and has[val].any(axis=0).all() and has[train].any(axis=0).all():
            if best is None or abs(count - target) < best[0]:
                best = (abs(count - target), sorted(val))
    if best is None:
        return None
    in_val = np.isin(inverse, best[1])
    groups = {"train": n_groups - len(best[1]), "val": len(best[1])}
    return np.flatnonzero(~in_val), np.flatnonzero(in_val), groups


def group_split(
    labels: np.ndarray,
    origins: Sequence[ClipOrigin],
    *,
    by: str,
    group_seconds: float | None,
    val_fraction: float,
    seed: np.random.SeedSequence,
    source: Path,
) -> GroupSplit:
    """The split of whole groups (``by`` in :data:`GROUP_BYS`); UpcallError, one line saying
    what to change, when none keeps both classes on both sides."""
    labels = np.asarray(labels, np.int64)
    for c, name in enumerate(CLASSES):
        if not (labels == c).any():
            raise UpcallError(f"{source}: no {name} clips: a detector needs clips of both classes")
    seconds = group_seconds or DEFAULT_GROUP_SECONDS
    notes: list[str] = []
    candidates = ["site", "recording", "block"] if by == "auto" else [by]
    for cand in candidates:
        last = cand == candidates[-1]
        keys = group_keys(origins, cand, seconds)
        unit = f"time block of {seconds:g} s" if cand == "block" else cand
        if cand == "site" and not all(keys):
            row = next(i for i, k in enumerate(keys) if not k)
            if not last:
                notes.append("not every clip has a site")
                continue
            raise UpcallError(
                f"{source}: clip {origins[row].clip_name} has no site; {_ADVICE['site']}"
            )
        n_groups = len(set(keys))
        split = choose_validation(
            labels, keys, val_fraction=val_fraction, rng=np.random.default_rng(seed)
        )
        if split is not None:
            train_idx, val_idx, groups = split
            why = ("auto: " + "; ".join(notes)) if notes else ""
            block = seconds if cand == "block" else None
            return GroupSplit(cand, block, train_idx, val_idx, groups, why)
        if n_groups < 2:
            problem = f"one {unit} ({keys[0]})"
        else:
            problem = f"{n_groups} {unit}s, no split of whole ones keeps both classes on both sides"
        if not last:
            notes.append(problem)
            continue
        raise UpcallError(
            f"{source}: {_why_not(labels, keys, unit, problem)}; "
            f"{_ADVICE[cand]} (--group-by chooses the grouping, --val-fraction the share)"
        )
    raise AssertionError("unreachable: the last candidate returns or raises")


def _why_not(labels: np.ndarray, keys: Sequence[str], unit: str, problem: str) -> str:
    """The reason no split exists, naming the class held by a single group where that is it."""
    for c, name in enumerate(CLASSES):
        holding = sorted({k for k, y in zip(keys, labels, strict=True) if y == c})
        if len(holding) == 1 and len(set(keys)) > 1:
            return (
                f"every {name} clip comes from one {unit} ({holding[0]}), so it cannot be on "
                "both sides"
            )
    return problem


def add_group_arguments(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """--group-by and --group-seconds, as `lists`, `fit` and `search` take them."""
    parser.add_argument(
        "--group-by",
        choices=GROUP_BYS,
        default=default,
        help="where DATA/clips.csv (from `upcall clips`) says where each clip came from, "
        "validation holds out whole sites, recordings or time blocks, so that no neighbouring "
        "clips sit on both sides; auto: sites where there are two or more, else recordings, "
        "else time blocks (default auto; Kaggle data without clips.csv is split clip by clip)",
    )
    parser.add_argument(
        "--group-seconds",
        type=float,
        metavar="S",
        help=f"length of a time block within a recording (default {DEFAULT_GROUP_SECONDS:g})",
    )
