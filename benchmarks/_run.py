"""The one way the benchmark scripts run an ``upcall`` command: as a real process, timed.

``baseline_upcall`` runs the same command with an older revision's code (today's figure measured
in the same run): that revision is checked out once into a git worktree under /tmp and run with
the same virtualenv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = "7b20a1a"  # main when issue 24's work began: "today's figure"


def upcall(*args: object) -> float:
    """Run ``upcall ARGS``; returns its wall time. A failure stops the benchmark."""
    return upcall_measured(*args)[0]


def upcall_measured(*args: object, tree: Path | None = None) -> tuple[float, float]:
    """Run ``upcall ARGS`` (with the code of TREE when given); returns (wall seconds, peak
    resident memory in MB of the command or of any process it waited for, e.g. its workers).
    A failure stops the benchmark."""
    env, cwd = None, None
    if tree is not None:  # that tree's package first on the path, run from inside it
        env = {**os.environ, "PYTHONPATH": str(tree)}
        cwd = tree
        args = tuple(Path(a).absolute() if isinstance(a, Path) else a for a in args)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "upcall", *map(str, args)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
    )
    err = proc.stderr.read()  # read to the end first: a full pipe would block the command
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        where = f" (code of {tree})" if tree else ""
        sys.exit(f"failed{where}: {' '.join(cmd)}\n{err[-3000:]}")
    return took, usage.ru_maxrss / 1024


def baseline_tree(rev: str = BASELINE_REV) -> Path:
    """A checkout of REV at /tmp/upcall-base-REV (a detached git worktree), made once, reused."""
    tree = Path(f"/tmp/upcall-base-{rev}")
    if not (tree / "upcall" / "__init__.py").is_file():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return tree


def baseline_upcall(rev: str, *args: object) -> float:
    """Run ``upcall ARGS`` with revision REV's code; returns its wall time. Path arguments are
    made absolute (the command runs from the worktree); pass plain paths as Path objects."""
    return baseline_upcall_measured(rev, *args)[0]


def baseline_upcall_measured(rev: str, *args: object) -> tuple[float, float]:
    """``baseline_upcall`` that also returns the peak memory in MB, as ``upcall_measured``."""
    return upcall_measured(*args, tree=baseline_tree(rev))
