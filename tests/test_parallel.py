"""map_chunks: order, chunking, a bad worker count refused at the call, never more workers
than the work or the cores; workers: never a fork of upcall, they die with their parent,
start_process's output and SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upcall.errors import UpcallError
from upcall.parallel import START_METHOD, cap_workers, default_workers, map_chunks, start_process


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


# A parent that starts one worker the way `upcall search` and the DIGITS server do
# (start_process), and a pool the way map_chunks and detect do; prints their pids, then waits.
_PARENT = """
import os, time
from upcall.parallel import process_pool, start_process

def work():
    time.sleep(600)

def pid(_):
    return os.getpid()

if __name__ == "__main__":
    child = start_process(work)
    with process_pool(1) as pool:
        print(child.pid, next(pool.map(pid, [None])), flush=True)
        time.sleep(600)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_their_killed_parent(tmp_path):
    """Whatever their parent is (the forkserver), the workers go when upcall is killed."""
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]  # both set up
    finally:
        parent.kill()
    assert len(workers) == 2
    parent.wait()
    deadline = time.monotonic() + 5
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers))


_MARK: list[int] = []  # set by a test in this process only: a fork would have it too


def _marks(items):
    return [len(_MARK) for _ in items]


def _environ(items):
    return [os.environ.get("UPCALL_TEST_PARALLEL") for _ in items]


def test_a_worker_is_never_a_fork_and_sees_the_environment_now(monkeypatch):
    _MARK.append(1)
    try:
        assert set(map_chunks(_marks, list(range(4)), workers=2, chunk=1)) == {0} or (
            default_workers() == 1
        )
    finally:
        _MARK.clear()
    assert START_METHOD in ("forkserver", "spawn")
    monkeypatch.setenv("UPCALL_TEST_PARALLEL", "now")  # after the forkserver started
    assert set(map_chunks(_environ, list(range(4)), workers=2, chunk=1)) == {"now"}


def _wait_for_sigint(ready: str) -> None:
    Path(ready).touch()
    print("own session:", os.getsid(0) == os.getpid(), flush=True)
    time.sleep(600)


def test_start_process_output_and_its_parents_sigint(tmp_path):
    """start_process: output to a file; its own session; the parent's SIGINT stops it."""
    out, ready = tmp_path / "out.txt", tmp_path / "ready"
    child = start_process(_wait_for_sigint, str(ready), output=out)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGINT)
        child.join(30)
    finally:
        if child.is_alive():  # never left behind by a failing test
            child.kill()
            child.join()
    assert child.exitcode == 1
    text = out.read_text()
    assert text.startswith("own session: True\n") and "KeyboardInterrupt" in text


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
