"""The one way the benchmark scripts run an ``upcall`` command: as a real process, timed."""

from __future__ import annotations

import subprocess
import sys
import time


def upcall(*args: object) -> float:
    """Run ``upcall ARGS``; returns its wall time. A failure stops the benchmark."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "upcall", *map(str, args)]
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start
