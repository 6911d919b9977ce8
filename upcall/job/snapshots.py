"""Snapshot sets: ``<prefix>_iter_N.caffemodel`` + ``.solverstate`` (+ the torch engine's
``.rng.pt``), usable only whole. The one home of the name pattern and the completeness rule.

The torch engine (and the digits engine, fetching a set) writes every member under a hidden
temporary name first and then renames them into place, the .caffemodel last (:func:`write_set`),
so a crash or a full disk never leaves a half-written file under a final name. Real Caffe writes
its own pair in place (.caffemodel, then .solverstate), so a set counts as complete only when
both files exist and parse (:func:`incomplete`): resume, status, summary.json, the DIGITS server
and inference skip a pair that was cut short.

Functions taking ``job`` need only its ``prefix``: the snapshot prefix resolved against the job
folder (:attr:`upcall.job.spec.JobSpec.prefix`, or :class:`Prefix` for a bare folder).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from google.protobuf.message import DecodeError

from upcall.errors import UpcallError
from upcall.fsutil import temp_sibling
from upcall.proto import caffe_pb2

PAIR = (".solverstate", ".caffemodel")  # what every engine's set holds (Caffe's snapshot)
SUFFIXES = (".caffemodel", ".solverstate", ".rng.pt")
DEFAULT_PREFIX = "snapshot"  # Caffe's and DIGITS's snapshot_prefix


class Prefixed(Protocol):
    """Anything that knows a job's snapshot prefix (a :class:`JobSpec`, a :class:`Prefix`)."""

    @property
    def prefix(self) -> Path: ...


@dataclass(frozen=True)
class Prefix:
    """A snapshot prefix alone: ``Prefix(folder / "snapshot")`` for a folder without a solver."""

    prefix: Path


def name(prefix: str, it: int | str, suffix: str) -> str:
    """The file name of member ``suffix`` of set ``it``: ``<prefix>_iter_<it><suffix>``."""
    return f"{prefix}_iter_{it}{suffix}"


def path(job: Prefixed, it: int, suffix: str) -> Path:
    """Where member ``suffix`` of set ``it`` of ``job`` is."""
    return job.prefix.with_name(name(job.prefix.name, it, suffix))


def pattern(prefix: str | None, suffixes: tuple[str, ...] = SUFFIXES) -> re.Pattern[str]:
    """A regex matching the member names (group 1: N); ``prefix=None``: any prefix."""
    stem = re.escape(prefix) if prefix is not None else ".*"
    return re.compile(rf"{stem}_iter_(\d+)(?:{'|'.join(map(re.escape, suffixes))})")


def iteration_of(filename: str | Path, suffixes: tuple[str, ...] = SUFFIXES) -> int | None:
    """N of a member's file name or path (any prefix; one of ``suffixes``), None for another
    file."""
    m = pattern(None, suffixes).fullmatch(Path(filename).name)
    return int(m.group(1)) if m else None


def find(
    folder: Path, prefix: str | None = DEFAULT_PREFIX, *, suffix: str = ".caffemodel"
) -> dict[int, Path]:
    """``{N: path}`` of the ``<prefix>_iter_N<suffix>`` files in ``folder``, complete or not, by
    iteration. ``prefix=None`` accepts any prefix (a job written by hand, a download)."""
    regex = pattern(prefix, (suffix,))
    found = {}
    for p in Path(folder).glob(f"*_iter_*{suffix}"):
        if m := regex.fullmatch(p.name):
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def members(folder: Path, prefix: str | None = None) -> list[Path]:
    """Every snapshot file in ``folder`` (``prefix=None``: of any prefix)."""
    regex = pattern(prefix)
    return sorted(p for p in Path(folder).glob("*_iter_*") if regex.fullmatch(p.name))


def write_set(job: Prefixed, it: int, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write snapshot ``it``: ``writers`` maps each suffix to a function writing that member to
    the path it is given. All are written under temporary names, then renamed into place with
    the .caffemodel last; a failure (a full disk) leaves no member under its final name and is
    an UpcallError naming the file."""
    order = sorted(writers, key=lambda s: (s == ".caffemodel", s == ".solverstate"))
    finals = {s: path(job, it, s) for s in order}
    # the names fsutil.sweep_leftovers clears after a SIGKILL
    temps = {s: temp_sibling(final) for s, final in finals.items()}
    try:
        for suffix in order:
            try:
                writers[suffix](temps[suffix])
            except OSError as e:
                raise UpcallError(
                    f"{finals[suffix]}: cannot write the snapshot: {e.strerror or e}"
                ) from e
        for suffix in order:
            os.replace(temps[suffix], finals[suffix])
    finally:
        for tmp in temps.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def incomplete(job: Prefixed, it: int, *, deep: bool = True) -> str | None:
    """Why snapshot ``it`` cannot be used (a member missing, empty or cut short); None when it
    can. ``deep=False`` parses only the .solverstate (a .caffemodel can be large)."""
    for suffix in PAIR:
        member = path(job, it, suffix)
        try:
            data = member.read_bytes() if deep or suffix == ".solverstate" else b"?"
        except FileNotFoundError:
            return f"{member.name} is missing"
        except OSError as e:
            return f"{member.name} cannot be read: {e.strerror or e}"
        if not data or (not deep and not member.stat().st_size):
            return f"{member.name} is empty"
        message = caffe_pb2.SolverState() if suffix == ".solverstate" else caffe_pb2.NetParameter()
        if deep or suffix == ".solverstate":
            try:
                message.ParseFromString(data)
            except DecodeError:
                return f"{member.name} is cut short or corrupt"
    return None


def iterations(job: Prefixed) -> list[int]:
    """Every N with some ``<prefix>_iter_N`` snapshot file, complete or not, ascending."""
    regex = pattern(job.prefix.name)
    found = set()
    for p in job.prefix.parent.glob(f"{job.prefix.name}_iter_*"):
        if m := regex.fullmatch(p.name):
            found.add(int(m.group(1)))
    return sorted(found)


def latest_complete(job: Prefixed, *, deep: bool = True, warn: bool = False) -> int | None:
    """The highest N whose set is complete; with ``warn``, each later, incomplete set is named
    on stderr (one line each)."""
    for it in reversed(iterations(job)):
        reason = incomplete(job, it, deep=deep)
        if reason is None:
            return it
        if warn:
            print(
                f"{path(job, it, '.solverstate')}: warning: snapshot {it} is "
                f"incomplete ({reason}); not used",
                file=sys.stderr,
            )
    return None


def complete(job: Prefixed) -> dict[int, Path]:
    """``{N: .caffemodel}`` of the complete sets, by iteration (a quick check: the .solverstate
    parses and the .caffemodel is not empty)."""
    return {
        it: path(job, it, ".caffemodel")
        for it in iterations(job)
        if incomplete(job, it, deep=False) is None
    }


def complete_names(job: Prefixed) -> list[str]:
    """The .caffemodel names of the complete sets, by iteration (summary.json's "snapshots")."""
    return [p.name for p in complete(job).values()]


def remove_after(job: Prefixed, it: int) -> None:
    """Delete every snapshot file past iteration ``it`` (incomplete sets a resume will redo)."""
    for later in iterations(job):
        if later > it:
            for suffix in SUFFIXES:
                path(job, later, suffix).unlink(missing_ok=True)
