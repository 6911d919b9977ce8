"""Run a function over many items on all cores, in order, with progress; and the one way upcall
starts a process to work for it: :data:`START_METHOD` (forkserver), :func:`start_worker` first
in the process (it dies with its parent and leaves stop signals to it), started inside
:func:`starting_workers`.

Every process upcall starts to work for it comes from here: :func:`process_pool`'s workers
(``map_chunks``, ``upcall detect``) and :func:`start_process`'s (``upcall search``'s trial
workers, the DIGITS server's training children).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from typing import TypeVar

from upcall.errors import UpcallError
from upcall.progress import progress

T = TypeVar("T")
R = TypeVar("R")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what the parent handles for its workers
# Not fork: a forked child of a process that has run torch (or that serves on threads) can hang
# on a lock another thread held at the fork. The forkserver is a fresh interpreter, started once
# per process, that imports PRELOAD and the first work's modules once; each worker is a fork of
# it, so workers cost one import however many there are. benchmarks/bench_workers.py, 2 cores,
# median of 5, CPU of the whole process tree: `detect --workers 2` (two 5-min recordings)
# forkserver 0.84x spawn's wall time, 0.74x its CPU; `spectrograms --workers 2` on 3000 clips
# fork 4.7 s, forkserver 6.1 s, spawn 5.3 s wall, CPU alike (9.1 s, 9.2 s; fork 8.0 s); on 200
# clips forkserver took 0.68x spawn's CPU (2.3 s, 3.4 s; fork 1.3 s).
START_METHOD = "forkserver"
METHOD_ENV = "UPCALL_START_METHOD"  # hidden: fork|spawn|forkserver, for benchmarks/bench_workers
PRELOAD = ("numpy", "upcall.parallel")  # what nearly every worker imports


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


def start_method() -> str:
    return os.environ.get(METHOD_ENV) or START_METHOD


def context(preload: Sequence[str] = ()) -> BaseContext:
    """The multiprocessing context every worker starts from (:func:`start_method`).

    The forkserver starts here, once per process, inside :func:`starting_workers`: it keeps
    SIGINT and SIGTERM blocked for good (it goes when this process and its workers are gone),
    and every worker forked from it starts with them blocked. It imports :data:`PRELOAD` and
    ``preload`` (the modules of the first work that starts it) once, so its workers need not.
    """
    method = start_method()
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([*PRELOAD, *preload])
        with starting_workers():
            forkserver.ensure_running()  # started once; started again only if it died
    return ctx


def _origin() -> dict:
    """What :func:`start_worker` needs from the starting process: who may be the worker's
    parent (this process, or the forkserver it is forked from) and the environment now (the
    forkserver's is the one it was started with)."""
    server = getattr(forkserver._forkserver, "_forkserver_pid", None)
    parents = (os.getpid(),) if server is None else (os.getpid(), server)
    return {"parents": parents, "environ": dict(os.environ)}


def start_worker(
    parents: int | Sequence[int], *, interrupt: bool = False, environ: dict | None = None
) -> None:
    """First call in a worker process: die with its parent, leave stop signals to it.

    Ctrl-C reaches a terminal's whole process group and ``timeout`` signals its whole group; the
    parent stops its workers itself, so a worker ignores SIGINT rather than printing a
    KeyboardInterrupt traceback, and takes SIGTERM's default action (a group's SIGTERM ends it;
    its parent's pool ends it with SIGKILL). A Ctrl-C that came while it started (blocked by
    :func:`starting_workers`) is dropped here. ``interrupt``: its parent's SIGINT is how it is
    stopped, once (``upcall search``'s workers, the DIGITS server's training children: the run
    loop snapshots, then stops): it gets a session of its own, so a terminal's Ctrl-C or a
    group's SIGTERM reaches it only through its parent, and SIGINT raises KeyboardInterrupt.

    A parent killed outright (SIGKILL, the OOM killer) takes the worker with it: on Linux the
    kernel sends it SIGKILL (PR_SET_PDEATHSIG; a forkserver worker's parent is the forkserver,
    which ends when the starting process and its workers are gone); elsewhere the default SIGPIPE
    action ends it at its first write to the dead parent. ``parents``: the pids its parent may
    have; one that died before this call took effect makes the worker exit now. ``environ``:
    the starting process's environment, taken over.
    """
    parents = (parents,) if isinstance(parents, int) else tuple(parents)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    _leave_forkserver()
    if os.getppid() not in parents:  # the parent died before the lines above took effect
        os._exit(1)
    if environ is not None and environ != os.environ:
        os.environ.clear()
        os.environ.update(environ)
    if interrupt:
        with contextlib.suppress(OSError):
            os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _leave_forkserver() -> None:
    # A worker forked by the forkserver holds the write end of the pipe whose closing tells the
    # forkserver that everyone who could ask it for a process is gone; while a worker held it, a
    # killed parent's forkserver (and so, by PR_SET_PDEATHSIG, its workers) would live on.
    server = forkserver._forkserver
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None and getattr(server, "_forkserver_pid", None) is None:  # not its starter
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None


@contextlib.contextmanager
def starting_workers() -> Iterator[None]:
    """Start worker processes inside this block: they start with SIGINT and SIGTERM blocked
    (the signal mask is inherited through fork and exec), so a signal that comes while a worker
    imports, before :func:`start_worker`, neither prints a traceback nor reaches a half-made
    worker. This thread gets its own pending signals when the block ends; in the main thread, a
    stop signal that another thread took meanwhile (a C library's threads, OpenBLAS's, do not
    block it) is held back too and raised again then: else its KeyboardInterrupt could come in
    the middle of a start, leaving a worker its pool does not know of."""
    held: list[int] = []
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not None:  # (None: not set from Python; left alone)
                handlers[sig] = signal.signal(sig, lambda signum, _: held.append(signum))
    mask = None
    if hasattr(signal, "pthread_sigmask"):
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for sig in held:
            signal.raise_signal(sig)


def start_process(
    target: Callable[..., object],
    *args,
    interrupt: bool = True,
    output: str | os.PathLike | None = None,
) -> mp.process.BaseProcess:
    """``target(*args)`` in a worker process, started; set up by :func:`start_worker` (its
    ``interrupt``: by default the parent's SIGINT stops it). ``output``: a file (made anew) for
    its stdout and stderr. Join it, or signal its ``pid``, as a ``multiprocessing.Process``."""
    process = context([target.__module__]).Process(
        target=_process_main, args=(_origin(), interrupt, output, target, args)
    )
    with starting_workers():
        process.start()
    return process


def _process_main(origin: dict, interrupt: bool, output, target: Callable, args: tuple) -> None:
    start_worker(**origin, interrupt=interrupt)
    if output is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    target(*args)


def _pool_worker(origin: dict, init: Callable | None, *args) -> None:
    start_worker(**origin)
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
        manager = self.executor._executor_manager_thread
        self.executor.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.kill()  # not SIGTERM: one still starting has it blocked, and would go on to fail
        for p in processes:  # loudly (a traceback) once this process has cleaned up
            p.join()
        # The manager thread's clean-up (unlinking the queues' named semaphores) must end before
        # this process may die by a signal: else they leak, with a warning.
        if manager is not None:
            manager.join()


@contextlib.contextmanager
def process_pool(
    workers: int,
    *,
    init: Callable | None = None,
    initargs: tuple = (),
    preload: Sequence[str] = (),
) -> Iterator[ProcessPool]:
    """Up to ``workers`` processes from :func:`context`, each set up by :func:`start_worker` and
    then ``init(*initargs)``; ``preload``: the modules the work imports (``init``'s own is
    added), for a forkserver started here. Leaving the block normally waits for them; leaving
    it by an error, Ctrl-C or SIGTERM ends them at once, whatever they were doing. A worker that
    dies (the OOM killer) is an error here (BrokenProcessPool), not a hang."""
    ctx = context([*preload, *([init.__module__] if init is not None else [])])
    executor = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_pool_worker, initargs=(_origin(), init, *initargs)
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
    process. Processes come from :func:`process_pool`: they die with this process.
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
        with process_pool(workers, preload=_modules(fn)) as pool:
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


def _modules(fn: Callable) -> list[str]:
    """The module ``fn`` (or the function a ``functools.partial`` wraps) comes from."""
    module = getattr(getattr(fn, "func", fn), "__module__", None)
    return [module] if module else []
