"""DATA/train.csv, the labels of a Kaggle-layout data directory (``clip_name,label`` rows).

Read by ``upcall lists`` and checked by ``upcall fit`` before anything is made. Every problem is
one line naming the file and the row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from upcall.errors import UpcallError
from upcall.fsutil import read_csv_rows

HEADER = ["clip_name", "label"]


@dataclass(frozen=True)
class Clip:
    name: str  # e.g. "train17.aiff"
    label: int
    line: int  # 1-based line in train.csv, for error messages


def read_train_csv(path: Path) -> list[Clip]:
    """Parse ``clip_name,label`` rows; each malformed row is an error naming its line."""
    rows = read_csv_rows(path)
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise UpcallError(f"{path}:1: missing header 'clip_name,label' (found {found!r})")
    clips: list[Clip] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise UpcallError(f"{path}:{line}: expected 2 fields 'clip_name,label', got {len(row)}")
        name, label = row[0].strip(), row[1].strip()
        _check_name(path, line, name)
        if label not in ("0", "1"):
            raise UpcallError(f"{path}:{line}: label {label!r} of {name} is not 0 or 1")
        if name in seen:
            raise UpcallError(
                f"{path}:{line}: clip {name} is listed twice (first on line {seen[name]})"
            )
        seen[name] = line
        clips.append(Clip(name, int(label), line))
    if not clips:
        raise UpcallError(f"{path}: lists no clips")
    return clips


def _check_name(path: Path, line: int, name: str) -> None:
    """A clip name is a file name in DATA/train: an absolute path or one into another folder
    (``../test/test1.aiff``) would put a test clip, or any file, into the training lists."""
    if not name.isprintable():
        raise UpcallError(f"{path}:{line}: clip name {name!r} has control characters")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute():
        raise UpcallError(
            f"{path}:{line}: clip name {name!r} is an absolute path; give the file name of a "
            "clip in train/ (e.g. train1.aiff)"
        )
    if len(PureWindowsPath(name).parts) != 1 or name in (".", ".."):
        raise UpcallError(
            f"{path}:{line}: clip name {name!r} is a path into another folder; give the file "
            "name of a clip in train/ (e.g. train1.aiff; test/ clips are never training data)"
        )


def labels_digest(clips: Sequence[Clip], *, groups: bytes | None = None) -> str:
    """SHA-256 of the rows as read (order, names, labels): a label edit changes it, a file
    copied with its old modification time or rewritten with other line endings does not.
    ``groups``: DATA/clips.csv's bytes where it exists (the groups of the split depend on it)."""
    text = "".join(f"{clip.name},{clip.label}\n" for clip in clips)
    digest = hashlib.sha256(text.encode())
    if groups is not None:
        digest.update(b"\0clips.csv\0" + groups)
    return digest.hexdigest()


def groups_bytes(data_dir: Path) -> bytes | None:
    """DATA/clips.csv's bytes (what :func:`labels_digest` takes as ``groups``), or None."""
    try:
        return (data_dir / "clips.csv").read_bytes()
    except FileNotFoundError:
        return None
