"""The engine interface: what ``train`` and ``sweep`` ask of the torch, caffe and (later) remote
engines. Torch-free; an engine's own module is imported only when it is used.
"""

from __future__ import annotations

import argparse
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from upcall.errors import UpcallError
from upcall.job.records import SUMMARY, Summary
from upcall.lock import is_locked

TRAIN_LOCK = ".upcall-train.lock"  # held by the process that trains a job on this machine


@dataclass(frozen=True)
class EngineOptions:
    """Options every engine takes; an engine subclasses it with its own (a URL, a binary...).

    Each field is a command-line flag of ``train`` and ``sweep`` whose ``dest`` is the field's
    name: the common ones here, an engine's own from :meth:`add_arguments`.
    """

    gpu: int | None = None  # CUDA device index; None: the CPU
    threads: int | None = None  # CPU threads; None: every available core
    # also write metrics.jsonl's records as TensorBoard scalars under DIR/<job name>/; None: not
    tensorboard: Path | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise UpcallError(f"--threads must be at least 1, not {self.threads}")
        if self.tensorboard is not None:  # fail before training, not at its first record
            from upcall.job.tensorboard import require_tensorboard

            require_tensorboard()

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """Add this engine's own flags (none for the base)."""


class JobStatus(enum.Enum):
    """Where a job stands for an engine; the sweep trains NEW, resumes RESUMABLE, skips the rest."""

    NEW = "new"
    RESUMABLE = "resumable"  # has a snapshot to continue from
    RUNNING = "running elsewhere"  # another process (or a remote server) is training it now
    DONE = "done"  # summary.json written


class Engine(Protocol):
    """Trains one job directory into the format of ARCHITECTURE.md §6.

    Made with its options (:func:`upcall.engines.get_engine`). ``train(resume=True)`` continues
    from the latest snapshot. An interrupted run (SIGINT) stops at the end of an iteration with a
    snapshot and raises :class:`upcall.errors.Interrupted`.
    """

    name: str
    options: EngineOptions

    def train(self, job: Path, *, resume: bool = False, restart: bool = False) -> Summary:
        """Train ``job``; a job holding earlier results needs ``resume`` or ``restart`` (which
        deletes them first)."""
        ...

    def status(self, job: Path) -> JobStatus: ...


def local_status(job: Path) -> JobStatus:
    """The status of a job trained on this machine, from its files: RESUMABLE only with a
    complete snapshot set (a job that cannot be read is NEW: training it says what is wrong)."""
    from upcall.job.snapshots import latest_complete
    from upcall.job.spec import job_dir, load_job

    job = job_dir(job)
    if is_locked(job / TRAIN_LOCK):
        return JobStatus.RUNNING
    if (job / SUMMARY).exists():
        return JobStatus.DONE
    try:
        spec = load_job(job)
    except UpcallError:
        return JobStatus.NEW
    return JobStatus.NEW if latest_complete(spec, deep=False) is None else JobStatus.RESUMABLE
