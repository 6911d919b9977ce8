"""map_chunks: order, chunking, a bad worker count refused at the call, never more workers
than the work or the cores; a worker dies with its parent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upcall.errors import UpcallError
from upcall.parallel import cap_workers, default_workers, map_chunks


def _double(items):
    return [2 * x for x in items]


@pytest.mark.parametrize("threads", [False, True])
def test_results_in_input_order(threads):
    assert list(map_chunks(_double, list(range(10)), workers=2, chunk=3, threads=threads)) == [
        2 * x for x in range(10)
    ]


@pytest.mark.parametrize("workers", [0, -3])
def test_workers_below_one_refused_before_iteration(workers):
    with pytest.raises(UpcallError, match=f"^--workers must be at least 1, got {workers}$"):
        map_chunks(_double, [1, 2], workers=workers)  # not iterated: the call itself refuses


def _pid(items):
    return [os.getpid() for _ in items]


def test_never_more_workers_than_chunks_or_cores():
    pids = set(map_chunks(_pid, list(range(30)), workers=64, chunk=10))  # 3 chunks
    assert 1 <= len(pids) <= min(3, default_workers())
    assert os.getpid() not in pids or default_workers() == 1  # one core: in this process
    assert cap_workers(64, 3) == min(3, default_workers())
    assert cap_workers(None, 1000) == default_workers()
    assert cap_workers(2, 0) == 1


# A parent that starts one spawned worker the way `upcall search` and the DIGITS server do
# (start_worker first, started inside starting_workers), prints its pid, then waits.
_PARENT = """
import multiprocessing, os, sys, time
from upcall.parallel import start_worker, starting_workers

def work(parent):
    start_worker(parent)
    print(os.getpid(), flush=True)
    time.sleep(600)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=work, args=(os.getpid(),))
    with starting_workers():
        child.start()
    time.sleep(600)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_spawned_worker_dies_with_its_killed_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())  # set up: start_worker has run
    assert Path(f"/proc/{worker}").exists()
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
