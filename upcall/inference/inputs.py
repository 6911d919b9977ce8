"""What a model takes: :class:`InputSpec` (the spectrogram mode, image size and resizing its
dataset used), and the images it makes from clips, spectrogram PNGs and windows of audio.

A job's spec comes from the dataset it was trained on; an exported model carries it in its
metadata; a model made elsewhere (a DIGITS download, a deploy.prototxt folder) gets the whale
tutorial's spectrograms at the size its mean image or info.json says (:mod:`.sources`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from upcall.audio.clip import AUDIO_SUFFIXES
from upcall.data.dataset import DatasetManifest
from upcall.data.pngroot import ReadOptions
from upcall.errors import UpcallError
from upcall.job.config import JobConfig


@dataclass(frozen=True)
class InputSpec:
    """How the model's inputs were made (from its dataset's description)."""

    height: int
    width: int
    native: bool  # images were stored at their own size, not resized
    resize_mode: str
    spectrogram_mode: str
    seed: int  # the fill / half_crop noise
    # How clips that are not 2 s, 2000 Hz mono are made to fit: the dataset's, plus the flags.
    read: ReadOptions = field(default_factory=ReadOptions)

    @classmethod
    def from_dataset_info(cls, info: DatasetManifest) -> InputSpec:
        return cls(
            height=info.image.height,
            width=info.image.width,
            native=info.native,
            resize_mode=info.resize_mode,
            spectrogram_mode=info.spectrograms.mode if info.spectrograms else "tutorial",
            seed=info.seed,
            read=info.spectrograms.read_options if info.spectrograms else ReadOptions(),
        )

    @classmethod
    def from_json(cls, value: dict) -> InputSpec:
        """From ``asdict(spec)``, as an exported model's metadata holds it."""
        return cls(**{**value, "read": ReadOptions(**value["read"])})


def dataset_info(job: Path) -> DatasetManifest:
    """The dataset description a job remembers: config.json's dataset_info, else dataset.json."""
    path = job / JobConfig.FILE
    config = JobConfig.require(job, f"is {job} a job directory from `upcall nets`?")
    info = config.dataset_info
    if info and "image" in info:
        return DatasetManifest.from_json(info, source=path)
    found = None
    if not info and config.dataset:
        found = DatasetManifest.read(Path(config.dataset))
    if found is None:
        raise UpcallError(f"{path}: has no dataset_info describing the input images")
    return found


def prepare(path: Path, spec: InputSpec) -> np.ndarray:
    """One input file (a clip or a PNG) as the dataset stored it: uint8 (1, H, W)."""
    from upcall.data.resize import load_image, resize

    if path.suffix.lower() in AUDIO_SUFFIXES:
        from upcall.audio.clip import read_clip
        from upcall.data.spectrogram import compute

        image = compute(read_clip(path, **asdict(spec.read)), mode=spec.spectrogram_mode)
    else:
        image = load_image(path, channels=1)
    if spec.native:
        if image.shape != (spec.height, spec.width):
            raise UpcallError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]}, the job was "
                f"trained on {spec.width}x{spec.height}"
            )
    else:
        rng = np.random.default_rng(spec.seed)
        image = resize(image, height=spec.height, width=spec.width, mode=spec.resize_mode, rng=rng)
    return image[None]


def window_images(samples: np.ndarray, spec: InputSpec) -> np.ndarray:
    """float64 clips (M, 4000) → uint8 (M, 1, H, W) as the dataset stored them (as
    :func:`prepare` makes them one by one)."""
    from upcall.data import spectrogram
    from upcall.data.resize import resize_stack

    images = spectrogram.compute_batch(samples, mode=spec.spectrogram_mode)
    if spec.native:
        if images.shape[1:] != (spec.height, spec.width):
            raise UpcallError(f"the job takes {spec.width}x{spec.height} native images")
    else:
        rngs = [np.random.default_rng(spec.seed) for _ in images]  # as prepare does
        images = resize_stack(
            images, height=spec.height, width=spec.width, mode=spec.resize_mode, rngs=rngs
        )
    return images[:, None]
