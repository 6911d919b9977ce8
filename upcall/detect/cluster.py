"""``upcall detect --ray ADDRESS``: the per-file work as tasks on a running Ray cluster.

Each recording is one task running the function ``detect`` gives
(:func:`upcall.detect.work.ray_task`: the very work a local worker does), so a task writes the
same table files, byte for byte, and a failed file is reported the same way; this module knows
nothing of the work itself. A Ray worker process keeps its loaded model between tasks. The model,
the recordings and the output folder must be at the same paths on every node (a shared
filesystem); the client only collects the results and writes the combined tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from upcall.errors import UpcallError

TASK_CPUS = 1  # cores a task asks of Ray, and the threads its network uses
T = TypeVar("T")
R = TypeVar("R")


def connect(address: str):
    """``ray`` connected to the cluster at ``address``; one-line errors when it cannot be."""
    try:
        import ray
    except ImportError:
        raise UpcallError(
            "--ray needs the ray package (pip install 'upcall[ray]', or pip install ray)"
        ) from None
    reachable(address)
    try:
        # log_to_driver off: the tasks' own stderr would interleave with this process's progress
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UpcallError(
            f"--ray {address}: cannot connect to a Ray cluster there ({first})"
        ) from None
    return ray


def reachable(address: str) -> None:
    """UpcallError at once when nothing listens at HOST:PORT (ray.init would retry for
    minutes); other address forms (``auto``, ``ray://``) are left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise UpcallError(
            f"--ray {address}: no Ray cluster answers there ({e.strerror or e}); start one with "
            "`ray start --head --port=PORT` or give the head's address"
        ) from None


def ray_results(
    address: str,
    task: Callable[[str, T], R],
    model: str,
    items: Sequence[T],
    failed: Callable[[T, str], R],
) -> Iterator[R]:
    """``task(model, item)`` for each of ``items``, computed on Ray, in order; ``failed(item,
    problem)`` stands for a task whose process died or that Ray lost. ``task`` must be a
    module-level function (Ray's workers import it by name)."""
    ray = connect(address)
    try:
        remote = ray.remote(num_cpus=TASK_CPUS, max_retries=1)(task)
        refs = [remote.remote(model, item) for item in items]
        for item, ref in zip(items, refs, strict=True):
            try:
                yield ray.get(ref)
            except ray.exceptions.RayError as e:  # the task's process died, or Ray lost it
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                yield failed(item, f"Ray task failed: {first}")
    finally:
        ray.shutdown()
