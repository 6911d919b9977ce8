"""Run a function over many items on all cores, in order, with progress."""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from upcall.errors import UpcallError
from upcall.progress import progress

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_workers(workers: int | None) -> None:
    """UpcallError unless ``workers`` is None (all cores) or at least 1."""
    if workers is not None and workers < 1:
        raise UpcallError(f"--workers must be at least 1, got {workers}")


def map_chunks(
    fn: Callable[[Sequence[T]], list[R]],
    items: Sequence[T],
    *,
    workers: int | None = None,
    chunk: int = 256,
    desc: str = "",
    unit: str = "it",
    threads: bool = False,
    prefetch: int | None = None,
) -> Iterator[R]:
    """Yield ``fn(chunk)`` results item by item, in input order.

    ``fn`` takes a list of items and returns one result per item, so per-call overhead (process
    hand-off, imports, FFT plans) is paid once per chunk. ``workers=1`` runs in this process.
    ``threads=True`` runs chunks on threads instead of processes: for work that spends its time
    where the GIL is released (NumPy, BLAS, zlib) and returns large results, which then are
    never pickled. ``prefetch`` (threads only) caps the chunks finished or under way ahead of
    the consumer (default two per worker): raise it when the consumer works in bursts.
    Raises UpcallError at the call, not at the first item, if ``workers`` < 1.
    """
    check_workers(workers)  # here, not in the generator, so a bad value fails before any work
    return _map_chunks(
        fn,
        items,
        workers=workers or default_workers(),
        chunk=chunk,
        desc=desc,
        unit=unit,
        threads=threads,
        prefetch=prefetch,
    )


def _map_chunks(
    fn: Callable[[Sequence[T]], list[R]],
    items: Sequence[T],
    *,
    workers: int,
    chunk: int,
    desc: str,
    unit: str,
    threads: bool,
    prefetch: int | None,
) -> Iterator[R]:
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    bar = progress(total=len(items), desc=desc, unit=unit)
    try:
        if (workers == 1 and not threads) or len(chunks) <= 1:
            for c in chunks:
                results = fn(c)
                bar.update(len(c))
                yield from results
            return
        if threads:
            yield from _threaded(fn, chunks, workers, prefetch or 2 * workers, bar)
            return
        # fork keeps start-up cheap and inherits imported modules; the work is pure NumPy/IO.
        with mp.get_context("fork").Pool(workers, _quiet_worker, (os.getpid(),)) as pool:
            for c, results in zip(chunks, pool.imap(fn, chunks), strict=True):
                bar.update(len(c))
                yield from results
    finally:
        bar.close()


def _quiet_worker(parent: int) -> None:
    """Pool initializer: a worker leaves interrupts to the parent and dies quietly with it.

    Ctrl-C reaches the whole process group; the parent stops the pool, so workers ignore it
    rather than each printing a KeyboardInterrupt traceback. A parent killed outright
    (SIGKILL) must not leave workers that print BrokenPipeError tracebacks when they hand in
    their next result: on Linux the kernel kills them with it (PR_SET_PDEATHSIG), elsewhere
    the default SIGPIPE action ends a worker silently at its first write to the dead parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(0)


def _threaded(
    fn: Callable[[Sequence[T]], list[R]],
    chunks: list[Sequence[T]],
    workers: int,
    prefetch: int,
    bar,
) -> Iterator[R]:
    # At most `prefetch` chunks are queued or done ahead of the consumer, so a slow consumer
    # never lets finished results pile up in memory.
    pool = ThreadPoolExecutor(workers)
    pending: collections.deque = collections.deque()
    try:
        for c in chunks:
            pending.append((c, pool.submit(fn, c)))
            if len(pending) >= prefetch:
                yield from _take(pending, bar)
        while pending:
            yield from _take(pending, bar)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _take(pending: collections.deque, bar) -> list:
    c, future = pending.popleft()
    results = future.result()
    bar.update(len(c))
    return results
