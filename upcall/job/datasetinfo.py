"""What a Caffe job needs to know about its dataset: :class:`DatasetInfo`.

A job's prototxts name the dataset's LMDBs and mean file and are sized by its image shape,
image counts and labels. :func:`load_dataset` reads these from a folder made by ``upcall lmdb``
(DATASET/dataset.json, ARCHITECTURE.md §4) and checks that the files it names are there;
:func:`tutorial_dataset` describes the whale tutorial's 27,000/3,000-image dataset without
reading anything, for the tutorial's own jobs and for costing networks (``upcall nets --list``).
Kept apart from ``upcall.job.nets`` (the command and job writing) so the workflows that only
need a dataset's description do not pull in job writing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from upcall.data.dataset import DatasetManifest, fingerprint
from upcall.data.listsfolder import read_labels
from upcall.errors import UpcallError
from upcall.network.zoo.prepare import DataSource

# The whale tutorial's dataset: 27,000 / 3,000 images (first / last rows of train.csv).
TUTORIAL_COUNTS = {
    "train": {"not-whale": 20307, "whale": 6693},
    "val": {"not-whale": 2666, "whale": 334},
}


@dataclass(frozen=True)
class DatasetInfo:
    """What a job needs from DATASET/dataset.json; ``path`` is written into the prototxts."""

    path: str
    height: int
    width: int
    channels: int
    train_count: int
    val_count: int
    labels: tuple[str, ...]
    size: str  # "256x256" or "native"
    info: dict = field(default_factory=dict, compare=False)  # dataset.json as read (to_json())
    fingerprint: str | None = None  # upcall.data.dataset.fingerprint; None: not a built dataset

    def source(self) -> DataSource:
        return DataSource(
            train_db=f"{self.path}/train_db",
            val_db=f"{self.path}/val_db" if self.val_count else None,
            mean_file=f"{self.path}/mean.binaryproto",
            channels=self.channels,
            height=self.height,
            width=self.width,
            num_classes=len(self.labels),
            description=f"{self.height}×{self.width} ({self.size})",
        )


def load_dataset(folder: str | os.PathLike) -> DatasetInfo:
    """Read DATASET/dataset.json (ARCHITECTURE.md §4), checking the LMDBs and mean it names."""
    folder = Path(folder).resolve()
    info = DatasetManifest.require(folder, f"is {folder} a dataset made by `upcall lmdb`?")
    try:
        ds = DatasetInfo(
            str(folder),
            info.image.height,
            info.image.width,
            info.image.channels,
            info.count("train"),
            info.count("val") if "val" in info.counts else 0,  # none: a DIGITS train-only set
            info.labels or tuple(read_labels(folder / "labels.txt")),
            info.size,
            info.to_json(),
            fingerprint(folder),
        )
    except KeyError as e:
        raise UpcallError(f"{folder / info.FILE}: no image count for {e}") from None
    for part in ("train_db", "val_db", "mean.binaryproto"):
        if not (folder / part).exists() and (part != "val_db" or ds.val_count):
            raise UpcallError(f"{folder / part}: missing; rebuild the dataset with `upcall lmdb`")
    return ds


def tutorial_dataset(size: str, path: str) -> DatasetInfo:
    """The tutorial's 27,000/3,000-image dataset at "256x256" or "native" (129×30) size."""
    h, w = (256, 256) if size == "256x256" else (129, 30)
    info = {
        "image": {"height": h, "width": w, "channels": 1},
        "size": size,
        "counts": TUTORIAL_COUNTS,
        "labels": ["not-whale", "whale"],
        "tutorial": True,
    }
    return DatasetInfo(path, h, w, 1, 27000, 3000, ("not-whale", "whale"), size, info)
