"""Where a training run starts: from scratch (refusing, or with ``--restart`` clearing, the results
of an earlier run) or, with ``--resume``, from the latest complete snapshot set. Shared by every
local engine, so each makes the same checks before it trains.
"""

from __future__ import annotations

import os
import shutil

from upcall.errors import UpcallError
from upcall.fsutil import pid_alive, sweep_leftovers
from upcall.job import snapshots as sets
from upcall.job.records import METRICS, SUMMARY, WallTimes
from upcall.job.spec import JobSpec
from upcall.job.writer import CURVES, LOG

WALL = WallTimes.FILE
# what a run writes besides its snapshots (the caffe engine's log, solver copy, initial weights)
RESULTS = (SUMMARY, METRICS, CURVES, LOG, WALL)
CAFFE_RESULTS = ("caffe_output.log", "caffe_solver.prototxt", "init_weights.caffemodel")
_TRASH = ".restart-"  # the hidden folder --restart moves old results into


def start_point(spec: JobSpec, *, resume: bool, restart: bool = False) -> int:
    """Check the job can train and return the iteration to start from.

    ``resume``: the latest complete snapshot set (incomplete later sets are named and removed).
    Otherwise iteration 0, refusing a job that holds results unless ``restart``, which clears
    them first.
    """
    if resume and restart:
        raise UpcallError("--resume and --restart exclude each other")
    solver_path = spec.job / "solver.prototxt"
    if not spec.solver.base_lr > 0:
        raise UpcallError(f"{solver_path}: base_lr must be positive, not {spec.solver.base_lr:g}")
    _remove_leftovers(spec)
    if not resume:
        found = earlier_results(spec)
        if found and not restart:
            raise UpcallError(
                f"{spec.job}: holds the results of an earlier run ({', '.join(found[:3])}"
                f"{', ...' if len(found) > 3 else ''}); continue it with --resume, or start over "
                "with --restart (deletes them)"
            )
        clear_results(spec)
        return 0
    it = sets.latest_complete(spec, warn=True)
    if it is None:
        raise UpcallError(
            f"{spec.job}: --resume asked for, but there is no "
            f"{sets.name(spec.prefix.name, 'N', '.solverstate')} to resume from (with its "
            ".caffemodel)"
        )
    sets.remove_after(spec, it)
    if it < spec.solver.max_iter:
        (spec.job / SUMMARY).unlink(missing_ok=True)  # the job is no longer done
    return it


def earlier_results(spec: JobSpec) -> list[str]:
    """The names that show an earlier run trained this job: summary.json, snapshots, records."""
    found = [SUMMARY] if (spec.job / SUMMARY).exists() else []
    found += [spec.snapshot_path(it, ".caffemodel").name for it in reversed(sets.iterations(spec))]
    metrics = spec.job / METRICS
    if metrics.exists() and metrics.stat().st_size:
        found.append(METRICS)
    return found


def clear_results(spec: JobSpec) -> None:
    """Delete every result of an earlier run: first moved into one hidden folder (so a crash
    leaves either the old results or none, under their names), then that folder is removed."""
    names = [*RESULTS, *CAFFE_RESULTS]
    doomed = [spec.job / n for n in names if (spec.job / n).exists()]
    doomed += [p for p in sets.members(spec.job) if p.is_file()]
    if spec.prefix.parent != spec.job:  # a folder other jobs may share: only this job's prefix
        doomed += sets.members(spec.prefix.parent, spec.prefix.name)
    if not doomed:
        return
    trash = spec.job / f"{_TRASH}{os.getpid()}"
    trash.mkdir(exist_ok=True)
    # snapshots first, summary.json before metrics.jsonl: cut short, what is left is still one run
    doomed.sort(key=lambda p: (p.name != METRICS, p.name != SUMMARY), reverse=True)
    for n, path in enumerate(doomed):
        os.replace(path, trash / f"{n}-{path.name}")
    shutil.rmtree(trash, ignore_errors=True)


def _remove_leftovers(spec: JobSpec) -> None:
    """Temporaries and --restart folders of processes that were killed."""
    for folder in dict.fromkeys([spec.job, spec.prefix.parent]):
        sweep_leftovers(folder)
    for trash in spec.job.glob(f"{_TRASH}*"):
        pid = trash.name[len(_TRASH) :]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(trash, ignore_errors=True)
