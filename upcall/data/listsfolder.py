"""A LISTS folder's contract (ARCHITECTURE.md §3): lists.json (:class:`ListsManifest`, with the
:class:`ListSettings` that made it), labels.txt (:data:`LABELS`, :func:`read_labels`) and the list
files' digests. ``upcall lists`` (:mod:`upcall.data.lists`) writes LISTS folders; datasets,
augmentation, spectrogram ROOTs and jobs read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from upcall.augment.clips import AugmentSettings
from upcall.data.groups import GROUP_BYS
from upcall.data.pngroot import ReadOptions, SpectrogramSettings
from upcall.errors import UpcallError
from upcall.fsutil import sha256_file
from upcall.jsonfile import JsonFile

LABELS = ("not-whale", "whale")  # label i is line i of labels.txt (DIGITS: 0-based)
PARTIAL_MARKER = ".upcall-lists.partial"  # present while `upcall lists` writes LISTS
SPLITS = ("random", "ordered")
BALANCES = ("none", "undersample", "oversample")


@dataclass(frozen=True)
class ListSettings:
    val_fraction: float = 0.1
    split: str = "random"  # "random": seeded, stratified; "ordered": the tutorial's first/last rows
    balance: str = "none"  # applied to the training list only
    seed: int = 0
    test: bool = False  # also list DATA/test/*.aiff (label 0: unknown)
    spectrogram_root: Path | None = None  # None: DATA, as the tutorial writes PNGs beside the clips
    mode: str | None = None  # spectrogram mode; None: whatever ROOT holds, else "tutorial"
    # How missing PNGs' clips are read; None: as ROOT's spectrograms.json says, else the default.
    read: ReadOptions | None = None
    # With DATA/clips.csv (upcall.data.groups): what validation holds out whole; a time block's
    # length in seconds (None: DEFAULT_GROUP_SECONDS). Kaggle data (no clips.csv): unused.
    group_by: str = "auto"
    group_seconds: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise UpcallError(
                f"--val-fraction must be between 0 and 1 (exclusive), not {self.val_fraction}"
            )
        if self.split not in SPLITS:
            raise UpcallError(f"--split must be one of {', '.join(SPLITS)}, not {self.split!r}")
        if self.balance not in BALANCES:
            raise UpcallError(
                f"--balance must be one of {', '.join(BALANCES)}, not {self.balance!r}"
            )
        if self.seed < 0:
            raise UpcallError(f"--seed must be zero or positive, got {self.seed}")
        if self.group_by not in GROUP_BYS:
            raise UpcallError(
                f"--group-by must be one of {', '.join(GROUP_BYS)}, not {self.group_by!r}"
            )
        if self.group_seconds is not None and not self.group_seconds > 0:
            raise UpcallError(f"--group-seconds must be positive, not {self.group_seconds}")


@dataclass(frozen=True)
class ListsManifest(JsonFile):
    """LISTS/lists.json (ARCHITECTURE.md §3), written last: its presence means the lists are whole."""

    FILE = "lists.json"

    data_dir: str
    spectrogram_root: str
    spectrograms: SpectrogramSettings  # ROOT's spectrograms.json when the lists were made
    split: str
    val_fraction: float
    balance: str
    seed: int
    counts: dict[str, dict[str, int]]  # "train" / "val" → class name → images (see class_counts)
    test_images: int = 0
    labels: tuple[str, ...] = LABELS
    # file name → SHA-256 of the list files written with this lists.json; empty in older files
    files: dict[str, str] = field(default_factory=dict)
    augmented: AugmentSettings | None = None  # `upcall augment`'s settings; None: not augmented
    augmented_from: str | None = None  # the LISTS folder it augmented
    # What the lists were made from, by content (None in older files): train.csv's rows
    # (upcall.data.traincsv.labels_digest) and the listed clips (upcall.data.stamps.clips_digest).
    # `upcall fit` compares them, never modification times, to tell whether DATA changed since.
    labels_digest: str | None = None
    clips_digest: str | None = None
    # The group split (upcall.data.groups) where DATA had clips.csv; None in the others and in
    # older files: "site", "recording" or "block", the block length, "train"/"val" → groups.
    group_by: str | None = None
    group_seconds: float | None = None
    groups: dict[str, int] | None = None

    def check_files(self, folder: Path) -> None:
        """UpcallError unless the list files are those this lists.json was written with."""
        for name, digest in self.files.items():
            if file_digest(folder / name) != digest:
                raise UpcallError(
                    f"{folder / name}: changed or missing since {folder / self.FILE} was "
                    f"written; rerun `upcall lists {self.data_dir} --out {folder}`"
                )


def file_digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes; None when it cannot be read."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def class_counts(labels: np.ndarray, names: Sequence[str] = LABELS) -> dict[str, int]:
    """Images per class name (label i is ``names[i]``), as lists.json and dataset.json hold them."""
    found = np.bincount(np.asarray(labels, np.int64), minlength=len(names))
    return {name: int(n) for name, n in zip(names, found, strict=False)}


def read_labels(path: Path) -> list[str]:
    """Class names from a DIGITS labels.txt, one a line (a name may contain spaces)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not a label
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise UpcallError(f"{path}: not UTF-8 text (byte {e.start})") from e
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UpcallError(f"{path}: no labels")
    return names
