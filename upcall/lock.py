"""Folder locks: one writer at a time, or any number of readers, per folder (``fcntl.flock``).

A writer of a folder (``upcall spectrograms`` of ROOT, ``upcall lists`` of LISTS, ``upcall lmdb``
of DATASET) takes the exclusive lock; a step that reads a folder another may be rewriting
(``upcall lmdb`` reading ROOT's PNGs) takes a shared one. Nobody waits, and a thread may take a
lock it holds again (a step calling another); a lock held by another process, or by another
thread of this one (the DIGITS server's), is a one-line error, so two runs never interleave their
files: each holder has its own open file, and flock sets them against each other. The kernel
drops a lock when its process dies, so a killed run never leaves a folder locked. A writer
removes the lock file when it is done; whoever locked a file that has since been removed or
replaced locks the new one instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from upcall.errors import UpcallError

_HELD: set[tuple[int, Path]] = set()  # (thread, lock file): the locks this process's threads hold


@contextlib.contextmanager
def folder_lock(lock_file: str | os.PathLike, *, shared: bool = False) -> Iterator[None]:
    """Hold ``lock_file`` (created if missing) exclusively, or ``shared``, for the block.

    Raises UpcallError naming the file when another process, or another thread of this one,
    holds a conflicting lock.
    """
    lock_file = Path(lock_file).resolve()
    held = (threading.get_ident(), lock_file)
    if held in _HELD:  # this thread's already (a step calling another): flock would refuse it
        yield
        return
    try:
        fd = _lock(lock_file, shared)
    except OSError:
        if not shared:
            raise  # the writer cannot write there either: its own error names the folder
        yield  # a reader of a folder it may not write, nor may anyone it would race with
        return
    _HELD.add(held)
    try:
        yield
    finally:
        _HELD.discard(held)  # (the thread that took it, whichever thread leaves the block)
        if not shared:  # other readers may still hold a shared one
            lock_file.unlink(missing_ok=True)
        os.close(fd)  # closing releases the lock


def _lock(lock_file: Path, shared: bool) -> int:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            doing = "writing" if shared else "using"
            raise UpcallError(
                f"{lock_file}: another upcall is {doing} {lock_file.parent} (it holds this "
                "lock); wait for it to finish, or write somewhere else"
            ) from None
        try:
            if os.stat(lock_file).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # its writer removed it after we opened it: lock the file there now
    raise UpcallError(f"{lock_file}: keeps being replaced; is another upcall running?")


def is_locked(lock_file: str | os.PathLike) -> bool:
    """Whether another process, or another thread of this one, holds ``lock_file`` now (a writer
    is at work in its folder)."""
    lock_file = Path(lock_file)
    if (threading.get_ident(), lock_file.resolve()) in _HELD:
        return False
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return False  # no lock file: nobody writes there (or we may not look: say so later)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
