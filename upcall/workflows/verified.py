"""``upcall fit DATA --out RUN2 --add-verified VERIFIED --recordings DIR``: learn from a review
(run by :func:`upcall.workflows.fit.fit_verified`; its parts are here).

A review (``upcall review``) leaves one table per recording in VERIFIED, the detections with a
``Verified`` column. ``upcall clips`` cuts RUN2/verified-clips from them (the recordings found
under DIR by the pairing rule): ``yes`` rows become positives, ``no`` rows hard negatives,
``unsure`` rows nothing. RUN2/data is then one training set in the Kaggle layout: train.csv with
DATA's rows first and the verified clips' after, train/ of links to both, and clips.csv (DATA's
own rows, or for Kaggle clips one row each naming the clip as its own recording; then the
verified clips' rows). The recipe runs on it from scratch, or with ``--init-weights RUN`` from
RUN's latest snapshot (config.json's ``init_weights``, as ``caffe train --weights``).

The split keeps what the earlier run validated on: DATA's clips go where ``upcall fit DATA``
puts them (:func:`upcall.data.lists.choose_split`, same recipe), and the verified clips are held
out by whole recordings (sites with ``group_by`` site), so a reviewed recording never sits on
both sides. RUN2/verified.json records the inputs and the initial weights (with their SHA-256);
a rerun with others is refused. Every step resumes as ``upcall fit`` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile

if TYPE_CHECKING:
    from upcall.audio.clipscsv import ClipOrigin
    from upcall.data.groups import GroupSplit
    from upcall.workflows.recipe import Recipe

VERIFIED_CLIPS = "verified-clips"  # RUN2/verified-clips: `upcall clips` of the review
MERGED = "data"  # RUN2/data: DATA + the verified clips, the set the recipe runs on
SPLIT_TAG = 23  # seed-sequence tag of the verified recordings' split


@dataclass(frozen=True)
class VerifiedRecord(JsonFile):
    """RUN2/verified.json: what the run learnt from besides the recipe; a rerun must match."""

    FILE: ClassVar[str] = "verified.json"

    data: str  # DATA, absolute
    verified: str  # the review's tables (VERIFIED), absolute
    recordings: tuple[str, ...]  # where their recordings were found, absolute
    init_weights: str | None = None  # the .caffemodel fine-tuned from; None: from scratch
    init_weights_sha256: str | None = None

    def differences(self, other: VerifiedRecord) -> list[str]:
        mine, theirs = self.to_json(), other.to_json()
        return [f"{k} {mine[k]} → {theirs[k]}" for k in theirs if mine.get(k) != theirs[k]]


def run_job(run: Path) -> Path:
    """The job of ``run``: a job folder itself, or the one job of an ``upcall fit`` OUT."""
    from upcall.job.config import JobConfig

    run = Path(run)
    if (run / JobConfig.FILE).is_file():
        return run
    jobs = sorted(p for p in (run / "jobs").glob("*") if (p / JobConfig.FILE).is_file())
    if len(jobs) != 1:
        found = "no job" if not jobs else f"{len(jobs)} jobs ({', '.join(p.name for p in jobs)})"
        raise UpcallError(f"{run}: {found} in {run / 'jobs'}; name a job folder or a fit OUT")
    return jobs[0]


def latest_weights(run: Path) -> Path:
    """The .caffemodel of the latest complete snapshot of ``run``'s job (absolute)."""
    from upcall.job.deploy import snapshot_weights

    return snapshot_weights(run_job(run), None).resolve()


def check_record(out: Path, record: VerifiedRecord) -> None:
    before = VerifiedRecord.read(out) if out.is_dir() else None
    if before is not None and before != record:
        raise UpcallError(
            f"{out / VerifiedRecord.FILE}: {out} was made from other inputs or initial weights "
            f"({'; '.join(before.differences(record))}); use another --out"
        )


# --- the merged training set ---------------------------------------------------------------


def merge(data: Path, clips: Path, out: Path) -> int:
    """Write ``out`` (module docstring) from DATA and the verified clips; returns how many of
    its rows are DATA's (they come first). Content only changes when the inputs did, so the
    lists made from it stay valid across reruns."""
    from upcall.audio.clipscsv import CLIPS_CSV, read_clips_csv, write_clips_csv
    from upcall.data.traincsv import read_train_csv
    from upcall.fsutil import atomic_write_csv

    own = read_train_csv(data / "train.csv")
    added = read_train_csv(clips / "train.csv")
    names = {c.name for c in own}
    if clash := [c.name for c in added if c.name in names]:
        raise UpcallError(
            f"{clips / 'train.csv'}: clip {clash[0]} is also in {data / 'train.csv'}; were DATA's "
            "clips cut from the reviewed recordings? Give DATA without them"
        )
    origins = _data_origins(data, own) + read_clips_csv(clips / CLIPS_CSV)
    targets = [data / "train" / c.name for c in own] + [clips / "train" / c.name for c in added]
    _link_all(out / "train", targets)
    rows = [("clip_name", "label"), *((c.name, c.label) for c in [*own, *added])]
    atomic_write_csv(out / "train.csv", rows)
    write_clips_csv(out / CLIPS_CSV, origins)
    return len(own)


def _data_origins(data: Path, own: list) -> list[ClipOrigin]:
    """clips.csv's rows of DATA's clips: its own clips.csv's, or one per Kaggle clip naming the
    clip as its recording (each its own group, as ``lists`` splits such clips one by one)."""
    from upcall.audio.clipscsv import CLIPS_CSV, NEGATIVE, POSITIVE, ClipOrigin
    from upcall.data.groups import clip_origins

    if (data / CLIPS_CSV).is_file():
        return clip_origins(data / CLIPS_CSV, own)
    return [
        ClipOrigin(
            clip_name=c.name,
            label=c.label,
            kind=POSITIVE if c.label else NEGATIVE,
            recording=str(data / "train" / c.name),
            rel=f"train/{c.name}",
            channel=0,
            start_s=0.0,
        )
        for c in own
    ]


def _link_all(folder: Path, targets: list[Path]) -> None:
    """``folder`` holds a link to each target under its name, and nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {t.name: os.path.abspath(t) for t in targets}
    for entry in folder.iterdir():
        if entry.name not in wanted:
            entry.unlink()
    for name, target in wanted.items():
        link = folder / name
        if link.is_symlink() and os.readlink(link) == target:
            continue
        tmp = folder / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)  # atomic: a crash leaves the old link or the new one


# --- the split ----------------------------------------------------------------------------


def merged_split(data: Path, merged: Path, n_data: int, recipe: Recipe) -> GroupSplit:
    """DATA's rows as ``upcall fit DATA`` splits them; the verified rows by whole recordings
    (sites where the recipe groups by site), drawn seeded; with no split of the verified
    recordings that keeps both classes on both sides, they all train (said)."""
    from upcall.audio.clipscsv import CLIPS_CSV
    from upcall.data.groups import GroupSplit, choose_validation, clip_origins, group_keys
    from upcall.data.lists import choose_split
    from upcall.data.traincsv import read_train_csv

    settings = recipe.list_settings(None)
    own = read_train_csv(data / "train.csv")
    train, val, grouped = choose_split(data, own, np.array([c.label for c in own]), settings)
    rows = read_train_csv(merged / "train.csv")[n_data:]
    labels = np.array([c.label for c in rows], np.int64)
    by = "site" if recipe.group_by == "site" else "recording"
    keys = group_keys(clip_origins(merged / CLIPS_CSV, rows), by, 0.0)
    rng = np.random.default_rng([recipe.seed, SPLIT_TAG])
    chosen = choose_validation(labels, keys, val_fraction=recipe.val_fraction, rng=rng)
    if chosen is None:
        v_train, v_val = np.arange(len(rows)), np.array([], np.int64)
        counts = {"train": len(set(keys)), "val": 0}
        print(f"[fit] note: no split of the {len(set(keys))} verified {by}(s) keeps both classes "
              "on both sides: all their clips train", flush=True)  # fmt: skip
    else:
        v_train, v_val, counts = chosen
    base = grouped.groups if grouped is not None else {"train": len(train), "val": len(val)}
    print(f"[fit] split: {len(val)} of DATA's {n_data} clips validate, as `upcall fit DATA` "
          f"holds them out; of the {len(rows)} verified clips {len(v_val)} validate "
          f"({counts['val']} of {len(set(keys))} {by}s, whole)", flush=True)  # fmt: skip
    return GroupSplit(
        by,
        None,
        np.concatenate([train, n_data + v_train]).astype(np.int64),
        np.concatenate([val, n_data + v_val]).astype(np.int64),
        {k: base[k] + counts[k] for k in ("train", "val")},
        why=f"DATA's own split kept; the verified clips by {by}",
    )


def part_names(out: Path) -> dict[str, set[str]]:
    """The clip names of OUT/data by part: ``DATA`` (its own) and ``verified``."""
    from upcall.data.traincsv import read_train_csv

    added = {c.name for c in read_train_csv(out / VERIFIED_CLIPS / "train.csv")}
    every = {c.name for c in read_train_csv(out / MERGED / "train.csv")}
    return {"DATA": every - added, "verified": added}
