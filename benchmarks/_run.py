"""The one way the benchmark scripts run an ``upcall`` command: as a real process, timed."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def upcall(*args: object) -> float:
    """Run ``upcall ARGS``; returns its wall time. A failure stops the benchmark."""
    return upcall_measured(*args)[0]


def upcall_measured(*args: object) -> tuple[float, float]:
    """Run ``upcall ARGS``; returns (wall seconds, peak resident memory in MB of the command or
    of any process it waited for, e.g. its workers). A failure stops the benchmark."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "upcall", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()  # read to the end first: a full pipe would block the command
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err[-3000:]}")
    return took, usage.ru_maxrss / 1024
