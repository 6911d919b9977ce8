"""Which audio the review server may read: only files inside the audio ROOT.

A recording is named by a path relative to ROOT (a detect folder's ``recordings.csv`` rel, or a
table's place in the detection tree). A name that is absolute, climbs out with ``..``, or leads
out of ROOT through a symbolic link is refused with one line, before any file is opened.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from upcall.errors import UpcallError


class Outside(UpcallError):
    """A path that would leave the audio ROOT."""


def inside(root: Path, rel: str, *, what: str = "the audio root") -> Path:
    """``root``/``rel`` when it stays inside ``root`` once resolved (links followed), else
    :class:`Outside` naming both (``root`` called ``what``). ``rel`` uses ``/`` (a ``\\``
    counts as one too)."""
    name = rel.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or PurePosixPath(name).is_absolute():
        raise Outside(f"{rel}: refused: an absolute path, not a path under {what} {root}")
    if ".." in parts:
        raise Outside(f"{rel}: refused: '..' leaves {what} {root}")
    base = Path(os.path.realpath(root))
    path = base.joinpath(*parts)
    real = Path(os.path.realpath(path))
    if real != base and base not in real.parents:
        raise Outside(f"{rel}: refused: it leads outside {what} {root} (a symbolic link)")
    return path


def root_of(path: str, rel: str) -> Path | None:
    """The folder ``rel`` is relative to, given the file's ``path`` (``/data/site1/rec.wav`` and
    ``site1/rec.wav`` -> ``/data``), or None when ``path`` does not end in ``rel``."""
    full = Path(os.path.abspath(path)).parts
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if not parts or len(parts) >= len(full) or tuple(full[-len(parts) :]) != parts:
        return None
    return Path(*full[: -len(parts)])
