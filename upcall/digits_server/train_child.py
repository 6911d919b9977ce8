"""The server's training child: :func:`train`, the target of the worker process
:func:`upcall.digits_server.work.train_model_job` starts (:func:`upcall.parallel.start_process`);
a module of its own so that the forkserver preloads this, not the server.

It trains JOB with ``upcall.engines.get_engine(ENGINE)``, dies with the server
(:func:`upcall.parallel.start_worker`), and the server's SIGINT is the abort: the shared run loop
then snapshots and stops. Its output goes to the job's ``upcall_train.out``.
"""

from __future__ import annotations

from pathlib import Path


def train(engine: str, job: str) -> None:
    """Train ``job`` in this worker process (set up by start_worker: SIGINT stops it)."""
    from upcall.engines import get_engine  # in the child: the server need not import the engines

    get_engine(engine).train(Path(job))
