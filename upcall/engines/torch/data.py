"""Feed Caffe Data layers from our LMDBs with Caffe's DataTransformer semantics.

The whole LMDB is loaded once as uint8 (27,000 × 1×129×30 is 100 MB; 256×256 is 1.7 GB) and each
batch is converted and transformed in torch, vectorised:

- reading order: sequential in key order, wrapping around, as Caffe's DataLayer does. DIGITS
  shuffled the records when it built the DB, so this is Caffe's "shuffled" reading.
- TRAIN: per image a random mirror (if ``mirror``) and a random crop offset (if ``crop_size``);
  TEST: centre crop, no mirror.
- mean subtraction uses the full (pre-crop) mean image at the crop offset, or per-channel
  ``mean_value``; ``scale`` multiplies after the subtraction.

Randomness comes from one torch generator per feeder, seeded, so :meth:`Feeder.state` /
:meth:`Feeder.load_state` (cursor + generator) make a resumed run identical to an unbroken one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from upcall.errors import UpcallError
from upcall.job.spec import DataSpec
from upcall.proto import caffe_pb2


@dataclass(frozen=True)
class Transform:
    """Caffe's TransformationParameter, resolved (mean loaded, paths made absolute)."""

    scale: float = 1.0
    mirror: bool = False
    crop_size: int = 0  # 0: no crop
    mean: np.ndarray | None = None  # float32 (C, H, W) full-size mean image, or (C, 1, 1) values

    @classmethod
    def from_param(cls, param: caffe_pb2.TransformationParameter, *, base: Path) -> Transform:
        """Build from a layer's transform_param; a relative mean_file resolves against ``base``."""
        from upcall.data.datum import transform_mean

        return cls(
            scale=float(param.scale),
            mirror=bool(param.mirror),
            crop_size=int(param.crop_size),
            mean=transform_mean(param, base=base),
        )

    @classmethod
    def of(cls, data: DataSpec) -> Transform:
        """The transform of a job's Data layer (its mean file resolved against the job)."""
        return cls.from_param(data.transform_param, base=data.base)

    def output_shape(self, chw: tuple[int, int, int]) -> tuple[int, int, int]:
        c, h, w = chw
        return (c, self.crop_size, self.crop_size) if self.crop_size else (c, h, w)

    def check(self, chw: tuple[int, int, int], *, source: object) -> None:
        """Raise if images of shape ``chw`` cannot go through this transform (Caffe's CHECKs)."""
        c, h, w = chw
        if self.crop_size and (self.crop_size > h or self.crop_size > w):
            raise UpcallError(
                f"{source}: crop_size {self.crop_size} is larger than the {h}×{w} images"
            )
        if self.mean is not None:
            mc, mh, mw = self.mean.shape
            if mc not in (1, c) or ((mh, mw) != (1, 1) and (mh, mw) != (h, w)):
                raise UpcallError(
                    f"{source}: mean of shape {self.mean.shape} does not fit images of shape {chw}"
                )

    def apply(
        self, images: torch.Tensor, *, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Transform a uint8 (B, C, H, W) batch into float32 (B, C, h, w) network input.

        In TRAIN, crop offsets and mirrors are drawn from ``generator`` (mirror flags first,
        then offsets, one draw per image); in TEST the crop is centred and nothing is mirrored.
        """
        b = images.shape[0]
        flip = None
        if train and self.mirror:
            flip = torch.randint(0, 2, (b,), generator=generator).bool().to(images.device)
        x = images.float()
        if self.mean is not None:
            # full-size mean, so the crop below picks the mean at the same offset as the pixel
            x = x - torch.from_numpy(self.mean).to(x.device)
        if self.crop_size:
            x = self._crop(x, train=train, generator=generator)
        if flip is not None:
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.scale != 1.0:
            x = x * self.scale
        return x.contiguous()

    def _crop(
        self, x: torch.Tensor, *, train: bool, generator: torch.Generator | None
    ) -> torch.Tensor:
        b, c, h, w = x.shape
        k = self.crop_size
        if not train:
            top, left = (h - k) // 2, (w - k) // 2
            return x[:, :, top : top + k, left : left + k]
        tops = torch.randint(0, h - k + 1, (b,), generator=generator).to(x.device)
        lefts = torch.randint(0, w - k + 1, (b,), generator=generator).to(x.device)
        steps = torch.arange(k, device=x.device)
        rows = (tops[:, None] + steps)[:, None, :, None]  # (B, 1, k, 1)
        cols = (lefts[:, None] + steps)[:, None, None, :]  # (B, 1, 1, k)
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        return x[batch, chan, rows, cols]


class Feeder:
    """Batches for one Data layer: the LMDB in memory, a cursor, and a seeded generator."""

    def __init__(
        self,
        source: Path,
        *,
        batch_size: int,
        transform: Transform,
        train: bool,
        seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        from upcall.data.datum import load_db

        if batch_size <= 0:
            raise UpcallError(f"{source}: data_param.batch_size must be positive, not {batch_size}")
        images, labels = load_db(source)
        if len(images) == 0:
            raise UpcallError(f"{source}: the LMDB has no records")
        transform.check(tuple(images.shape[1:]), source=source)
        self.source = Path(source)
        self.batch_size = batch_size
        self.transform = transform
        self.train = train
        self.device = torch.device(device)
        # uint8 on the device: 4× less memory than float, converted per batch
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        self.labels = torch.from_numpy(np.asarray(labels, np.int64)).to(self.device)
        self.cursor = 0
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, *self.transform.output_shape(tuple(self.images.shape[1:])))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``batch_size`` records in key order (wrapping around), transformed."""
        idx = (torch.arange(self.batch_size) + self.cursor) % len(self)
        self.cursor = (self.cursor + self.batch_size) % len(self)
        idx = idx.to(self.device)
        data = self.transform.apply(self.images[idx], train=self.train, generator=self.generator)
        return data, self.labels[idx]

    def state(self) -> dict:
        """What resuming needs: the cursor and the generator state."""
        return {"cursor": self.cursor, "generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.cursor = int(state["cursor"]) % len(self)
        self.generator.set_state(state["generator"])
