"""Run a function over many items on all cores, in order, with progress; and the one way a
worker process starts (:func:`start_worker`): it dies with its parent and leaves stop signals
to it.

Every process upcall starts to work for it calls :func:`start_worker` first (pool workers
through :func:`process_pool`'s initializer, ``upcall search``'s workers and the DIGITS server's
training children directly), and is started inside :func:`starting_workers`.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

from upcall.errors import UpcallError
from upcall.progress import progress

T = TypeVar("T")
R = TypeVar("R")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what the parent handles for its workers


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_workers(workers: int | None) -> None:
    """UpcallError unless ``workers`` is None (all cores) or at least 1."""
    if workers is not None and workers < 1:
        raise UpcallError(f"--workers must be at least 1, got {workers}")


def cap_workers(workers: int | None, work: int) -> int:
    """How many workers to start for ``work`` items (files, chunks): ``workers`` (None: all
    cores), but never more than the items nor than the cores, and at least 1. Idle workers
    cost their start-up and memory, and more than the cores only contend: ``detect --workers
    64`` on two files ran at 22x real time instead of about 490x."""
    return max(1, min(workers or default_workers(), work, default_workers()))


def start_worker(parent: int) -> None:
    """First call in a worker process: die with ``parent``, leave stop signals to it.

    Ctrl-C reaches a terminal's whole process group and ``timeout`` signals its whole group; the
    parent stops its workers itself, so a worker ignores SIGINT rather than printing a
    KeyboardInterrupt traceback, and takes SIGTERM's default action (its parent's pool ends it
    with SIGTERM). A Ctrl-C that came while it started (blocked by :func:`starting_workers`) is
    dropped here. A parent killed outright (SIGKILL, the OOM killer) takes the worker with it: on
    Linux the kernel sends it SIGKILL (PR_SET_PDEATHSIG); elsewhere the default SIGPIPE action
    ends it at its first write to the dead parent. A parent that died before this call took
    effect makes the worker exit now.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


@contextlib.contextmanager
def starting_workers() -> Iterator[None]:
    """Start worker processes inside this block: they start with SIGINT and SIGTERM blocked
    (the signal mask is inherited through fork and exec), so a signal that comes while a worker
    imports, before :func:`start_worker`, neither prints a traceback nor reaches a half-made
    worker; this process gets its own pending signals when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _pool_worker(parent: int, init: Callable | None, *args) -> None:
    start_worker(parent)
    if init is not None:
        init(*args)


class ProcessPool:
    """Worker processes for :func:`process_pool`: ``map`` runs a function over items in them."""

    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self.executor = executor

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """``fn(item)`` for each item, in input order; all are handed out at once."""
        with starting_workers():  # the executor starts its processes as work is handed out
            futures = [self.executor.submit(fn, item) for item in items]
        for future in futures:
            yield future.result()

    def terminate(self) -> None:
        # ProcessPoolExecutor only learns to end its workers in Python 3.14
        # (terminate_workers); before that its process table is the way to them.
        processes = list((self.executor._processes or {}).values())
        self.executor.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.terminate()
        for p in processes:
            p.join()


@contextlib.contextmanager
def process_pool(
    workers: int, *, start: str = "fork", init: Callable | None = None, initargs: tuple = ()
) -> Iterator[ProcessPool]:
    """Up to ``workers`` processes started the ``start`` way, each set up by
    :func:`start_worker` and then ``init(*initargs)``. Leaving the block normally waits for
    them; leaving it by an error, Ctrl-C or SIGTERM ends them at once, whatever they were doing.
    A worker that dies (the OOM killer) is an error here (BrokenProcessPool), not a hang."""
    executor = ProcessPoolExecutor(
        workers,
        mp_context=mp.get_context(start),
        initializer=_pool_worker,
        initargs=(os.getpid(), init, *initargs),
    )
    pool = ProcessPool(executor)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    executor.shutdown(wait=True)


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
    hand-off, imports, FFT plans) is paid once per chunk. ``workers`` (default all cores) is
    capped by :func:`cap_workers` (no more than the chunks or the cores); one runs in this
    process. Processes come from :func:`process_pool` (fork): they die with this process.
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
    workers = cap_workers(workers, len(chunks))
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
        with process_pool(workers) as pool:
            for c, results in zip(chunks, pool.map(fn, chunks), strict=True):
                bar.update(len(c))
                yield from results
    finally:
        bar.close()


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
