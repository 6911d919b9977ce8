"""Snapshot sets: ``<prefix>_iter_N.caffemodel`` + ``.solverstate`` (+ the torch engine's
``.rng.pt``), usable only whole.

The torch engine writes every member under a hidden temporary name first and then renames them
into place, the .caffemodel last (:func:`write_set`), so a crash or a full disk never leaves a
half-written file under a final name, and a .caffemodel beside its .solverstate means the whole
set is there. Real Caffe writes its own pair in place (.caffemodel, then .solverstate), so a set
counts as complete only when both files exist and parse (:func:`latest_complete`): resume,
status and summary.json skip a pair that was cut short.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from upcall.errors import UpcallError
from upcall.fsutil import temp_sibling
from upcall.proto import caffe_pb2

if TYPE_CHECKING:
    from upcall.engines.jobspec import JobSpec

PAIR = (".solverstate", ".caffemodel")  # what every engine's set holds (Caffe's snapshot)
SUFFIXES = (".caffemodel", ".solverstate", ".rng.pt")


def _temp(final: Path) -> Path:
    return temp_sibling(final)  # the name fsutil.sweep_leftovers clears after a SIGKILL


def write_set(spec: JobSpec, it: int, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write snapshot ``it``: ``writers`` maps each suffix to a function writing that member to
    the path it is given. All are written under temporary names, then renamed into place with
    the .caffemodel last; a failure (a full disk) leaves no member under its final name and is
    an UpcallError naming the file."""
    order = sorted(writers, key=lambda s: (s == ".caffemodel", s == ".solverstate"))
    temps = {s: _temp(spec.snapshot_path(it, s)) for s in order}
    try:
        for suffix in order:
            final = spec.snapshot_path(it, suffix)
            try:
                writers[suffix](temps[suffix])
            except OSError as e:
                raise UpcallError(f"{final}: cannot write the snapshot: {e.strerror or e}") from e
        for suffix in order:
            os.replace(temps[suffix], spec.snapshot_path(it, suffix))
    finally:
        for tmp in temps.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def incomplete(spec: JobSpec, it: int, *, deep: bool = True) -> str | None:
    """Why snapshot ``it`` cannot be resumed from (a member missing, empty or cut short); None
    when it can. ``deep=False`` parses only the .solverstate (a .caffemodel can be large)."""
    for suffix in PAIR:
        path = spec.snapshot_path(it, suffix)
        try:
            data = path.read_bytes() if deep or suffix == ".solverstate" else b"?"
        except FileNotFoundError:
            return f"{path.name} is missing"
        except OSError as e:
            return f"{path.name} cannot be read: {e.strerror or e}"
        if not data or (not deep and not path.stat().st_size):
            return f"{path.name} is empty"
        message = caffe_pb2.SolverState() if suffix == ".solverstate" else caffe_pb2.NetParameter()
        if deep or suffix == ".solverstate":
            try:
                message.ParseFromString(data)
            except DecodeError:
                return f"{path.name} is cut short or corrupt"
    return None


def iterations(spec: JobSpec) -> list[int]:
    """Every N with some ``<prefix>_iter_N`` snapshot file, complete or not, ascending."""
    pattern = re.compile(
        rf"{re.escape(spec.prefix.name)}_iter_(\d+)(?:{'|'.join(map(re.escape, SUFFIXES))})"
    )
    found = set()
    for p in spec.prefix.parent.glob(f"{spec.prefix.name}_iter_*"):
        if m := pattern.fullmatch(p.name):
            found.add(int(m.group(1)))
    return sorted(found)


def latest_complete(spec: JobSpec, *, deep: bool = True, warn: bool = False) -> int | None:
    """The highest N whose set is complete; with ``warn``, each later, incomplete set is named
    on stderr (one line each)."""
    for it in reversed(iterations(spec)):
        reason = incomplete(spec, it, deep=deep)
        if reason is None:
            return it
        if warn:
            print(
                f"{spec.snapshot_path(it, '.solverstate')}: warning: snapshot {it} is "
                f"incomplete ({reason}); not used",
                file=sys.stderr,
            )
    return None


def complete_names(spec: JobSpec) -> list[str]:
    """The .caffemodel names of the complete sets, by iteration (summary.json's "snapshots")."""
    return [
        spec.snapshot_path(it, ".caffemodel").name
        for it in iterations(spec)
        if incomplete(spec, it, deep=False) is None
    ]


def remove_after(spec: JobSpec, it: int) -> None:
    """Delete every snapshot file past iteration ``it`` (incomplete sets a resume will redo)."""
    for later in iterations(spec):
        if later > it:
            for suffix in SUFFIXES:
                spec.snapshot_path(later, suffix).unlink(missing_ok=True)
