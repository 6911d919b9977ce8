"""Training engines behind one interface.

An engine takes a job directory made by ``upcall nets`` (solver.prototxt, train_val.prototxt,
deploy.prototxt, config.json), trains it, and writes the job directory of ARCHITECTURE.md §6
through :class:`upcall.results.jobdir.JobWriter`. Reports and classification read that directory and
never ask which engine made it.

Engines register here by name; the module is imported only when the engine is asked for, so
``upcall --help`` does not import torch.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Protocol

from upcall.errors import UpcallError

# OpenMP worker threads that spin between parallel regions lose badly when the cores are shared
# (measured on 2 busy cores: 0.53 s per WhaleNet update passive, 2.3 s spinning). libgomp reads
# this once, when torch is first imported, which every engine does after this; a value the user
# set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class Engine(Protocol):
    """Trains one job directory and returns the summary it wrote to summary.json.

    ``resume``: continue from the latest snapshot in the job directory.
    ``gpu``: device index, or None for the CPU.
    ``threads``: CPU threads, or None for all available cores.
    An interrupted run (SIGINT) stops at the end of an iteration with a snapshot and raises
    :class:`Interrupted`.
    """

    name: str

    def train(
        self, job: Path, *, resume: bool = False, gpu: int | None = None, threads: int | None = None
    ) -> dict: ...


class Interrupted(UpcallError):
    """Training stopped on request after writing a snapshot; ``--resume`` continues it."""


# name -> "module:factory"; the factory takes no arguments and returns an Engine
ENGINES: dict[str, str] = {
    "torch": "upcall.engines.torch.engine:TorchEngine",
    "caffe": "upcall.engines.caffe.engine:CaffeEngine",
}


def get_engine(name: str) -> Engine:
    """The engine registered under ``name`` (UpcallError naming the known ones otherwise)."""
    if name not in ENGINES:
        raise UpcallError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}")
    module_name, factory = ENGINES[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise UpcallError(f"engine {name!r} is not installed in this build ({module_name})") from e
    return getattr(module, factory)()
