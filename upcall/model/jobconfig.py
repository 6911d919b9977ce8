"""config.json: the settings of one job, written by ``upcall nets`` beside its prototxts.

Engines read the network name, seed and dataset from it; classification reads the dataset's
description; reports read the learning rate; the sweep compares it to decide whether a job
folder already holds the job it would write. All through :class:`JobConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from upcall.jsonfile import JsonFile


@dataclass(frozen=True)
class JobConfig(JsonFile):
    """ARCHITECTURE.md §5. Only ``network`` is required: a job written by hand may say no more."""

    FILE: ClassVar[str] = "config.json"

    network: str
    # how the net was made: {"registry", "options", "native_only"} or {"prototxt": path}
    network_source: dict = field(default_factory=dict)
    base_lr: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    val_batch_size: int | None = None
    dataset: str | None = None  # absolute path of the dataset folder
    dataset_info: dict = field(default_factory=dict)  # its dataset.json, as it was read
    solver: dict = field(default_factory=dict)  # the SolverSettings the solver was made from
    schedule: dict = field(default_factory=dict)  # iterations per epoch, test and snapshot cadence
    seed: int | None = None  # None: Caffe's own choice (solver random_seed unset)
    deploy_input: tuple[int, ...] = ()  # deploy.prototxt's Input shape (1, C, H, W)
    multiply_adds_per_image: int | None = None
    parameters: int | None = None
    # a new upcall release keeps the jobs an older one wrote: the version never makes jobs differ
    upcall_version: str = field(default="", compare=False)

    def dataset_path(self) -> Path | None:
        return Path(self.dataset) if self.dataset else None
