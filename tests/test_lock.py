"""Folder locks (upcall.lock): a thread may take again a lock it holds; another thread of the
same process is refused exactly as another process is (real threads, a real second process);
readers share; a killed holder leaves nothing locked."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from upcall.errors import UpcallError
from upcall.lock import folder_lock, is_locked

REFUSED = "another upcall is"


def in_thread(fn: Callable[[], object]) -> object:
    """``fn()`` in a new thread; what it returned, or the exception it raised."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(fn())
        except Exception as e:  # handed back to the test
            result.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result[0]


def try_lock(lock_file, *, shared: bool = False) -> str:
    """Take and drop the lock: "taken", or the refusal's message."""
    try:
        with folder_lock(lock_file, shared=shared):
            return "taken"
    except UpcallError as e:
        return str(e)


class Holder:
    """A thread that holds a lock until ``release()``."""

    def __init__(self, lock_file, *, shared: bool = False) -> None:
        self.held, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(lock_file, shared))
        self.thread.start()
        assert self.held.wait(30)

    def _hold(self, lock_file, shared: bool) -> None:
        with folder_lock(lock_file, shared=shared):
            self.held.set()
            self.done.wait(30)

    def release(self) -> None:
        self.done.set()
        self.thread.join(30)


def test_the_same_thread_takes_its_own_lock_again(tmp_path):
    lock = tmp_path / "out" / ".lock"
    with folder_lock(lock):
        with folder_lock(lock), folder_lock(lock, shared=True):  # a step calling another
            assert not is_locked(lock)
        assert lock.exists()  # the inner blocks did not release it
        assert "taken" not in in_thread(lambda: try_lock(lock))
    assert not lock.exists()  # the writer removed it
    assert try_lock(lock) == "taken"


@pytest.mark.parametrize("shared", [False, True], ids=["writer", "reader"])
def test_another_thread_is_refused_as_another_process_is(tmp_path, shared):
    lock = tmp_path / ".lock"
    holder = Holder(lock, shared=shared)
    try:
        assert REFUSED in try_lock(lock)  # this thread, not the holder: refused
        assert is_locked(lock) is not shared  # a reader does not block is_locked's reader
        if shared:
            assert try_lock(lock, shared=True) == "taken"  # readers share
        else:
            assert REFUSED in try_lock(lock, shared=True)
        assert in_thread(lambda: is_locked(lock)) is not shared
    finally:
        holder.release()
    assert try_lock(lock) == "taken"  # free once the holder is done
    assert not is_locked(lock)


_HOLD = """
import sys
from upcall.lock import folder_lock
with folder_lock(sys.argv[1], shared=sys.argv[2] == "shared"):
    print("held", flush=True)
    sys.stdin.readline()
"""

_TRY = """
import sys
from upcall.errors import UpcallError
from upcall.lock import folder_lock, is_locked
try:
    with folder_lock(sys.argv[1]):
        print("taken")
except UpcallError as e:
    print(is_locked(sys.argv[1]), e)
"""


def test_a_second_process_and_a_second_thread_are_alike(tmp_path):
    """A lock held by another process refuses each thread here; one held by a thread here
    refuses another process and another thread alike."""
    lock = tmp_path / ".lock"
    other = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock), "exclusive"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline() == "held\n"
        assert REFUSED in try_lock(lock)
        assert REFUSED in in_thread(lambda: try_lock(lock))
        assert is_locked(lock) and in_thread(lambda: is_locked(lock))
    finally:
        other.communicate("\n", timeout=30)
    holder = Holder(lock)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _TRY, str(lock)], capture_output=True, text=True, timeout=60
        ).stdout
        assert out.startswith("True ") and REFUSED in out, out
        assert REFUSED in try_lock(lock)
    finally:
        holder.release()
    assert subprocess.run(
        [sys.executable, "-c", _TRY, str(lock)], capture_output=True, text=True, timeout=60
    ).stdout == "taken\n"


def test_a_killed_holder_leaves_nothing_locked(tmp_path):
    lock = tmp_path / ".lock"
    other = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock), "exclusive"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout.readline() == "held\n"
    assert is_locked(lock)
    other.kill()
    other.wait()
    assert not is_locked(lock)
    assert in_thread(lambda: try_lock(lock)) == "taken"
