"""config.json: the settings of one job, written by ``upcall nets`` beside its prototxts.

Engines read the network name, seed and dataset from it; classification reads the dataset's
description; reports read the learning rate; the sweep compares it to decide whether a job
folder already holds the job it would write. All through :class:`JobConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile
from upcall.network.classweights import ClassWeights


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
    # upcall.data.dataset.fingerprint of that build; None in jobs made before it was recorded
    dataset_fingerprint: str | None = None
    solver: dict = field(default_factory=dict)  # the SolverSettings the solver was made from
    schedule: dict = field(default_factory=dict)  # iterations per epoch, test and snapshot cadence
    seed: int | None = None  # None: Caffe's own choice (solver random_seed unset)
    deploy_input: tuple[int, ...] = ()  # deploy.prototxt's Input shape (1, C, H, W)
    multiply_adds_per_image: int | None = None
    parameters: int | None = None
    # the train-phase loss's class weights (upcall.network.classweights); None: unweighted
    class_weights: ClassWeights | None = None
    # online augmentation (upcall.augment.batches.OnlineAugment settings); None: none
    augment: dict | None = None
    # the .caffemodel training starts from (absolute; `fit --init-weights`, as `caffe train
    # --weights`): copied into the TRAIN net by layer name; None: the fillers' weights
    init_weights: str | None = None
    # a new upcall release keeps the jobs an older one wrote: the version never makes jobs differ
    upcall_version: str = field(default="", compare=False)

    def dataset_path(self) -> Path | None:
        return Path(self.dataset) if self.dataset else None

    def check_dataset(self, job: Path) -> None:
        """UpcallError when the job's dataset was rebuilt since ``upcall nets`` made the job
        (the message says what changed and what to rerun). A job that recorded no fingerprint,
        or whose dataset is gone (its files are then named missing where they are read), passes.
        """
        from upcall.data.dataset import DatasetManifest, fingerprint

        folder = self.dataset_path()
        if not self.dataset_fingerprint or folder is None:
            return
        now = fingerprint(folder)
        if now is None or now == self.dataset_fingerprint:
            return
        changes = []
        try:
            was = DatasetManifest.from_json(self.dataset_info)
            new = DatasetManifest.require(folder)
            if was.size != new.size or was.image != new.image:
                changes.append(
                    f"size {was.image.width}x{was.image.height} ({was.size}) → "
                    f"{new.image.width}x{new.image.height} ({new.size})"
                )
            modes = [x.spectrograms.mode if x.spectrograms else None for x in (was, new)]
            if modes[0] != modes[1]:
                changes.append(f"spectrogram mode {modes[0]} → {modes[1]}")
        except UpcallError:
            pass  # the fingerprint alone says it changed
        raise UpcallError(
            f"{job / self.FILE}: the dataset {folder} was rebuilt after this job was made ("
            + (", ".join(changes) or "same settings, new images")
            + f"); remake the job with `upcall nets --dataset {folder} ...`, or rebuild the "
            "dataset it was made for"
        )


def init_weights(job: Path) -> Path | None:
    """The .caffemodel a new run of ``job`` starts from (config.json's ``init_weights``); None:
    the fillers' weights (or no config.json)."""
    config = JobConfig.read(job)
    return Path(config.init_weights) if config is not None and config.init_weights else None
