"""Online augmentation of a training batch of spectrograms: one numpy implementation.

The torch engine (``upcall.engines.torch.pylayers``) and real Caffe's Python layer
(``upcall.augment.caffe_layer``) both call :meth:`OnlineAugment.apply` on the mean-subtracted
batch that the Data layer makes, in the TRAIN phase only. Images are (N, C, H, W) with row 0 the
lowest frequency and columns in time order. Per image, each transform fires with probability
``p``:

- mix: add a negative (label 0) clip of the same batch with a weight up to ``mix``; the label
  stays the first clip's, since noise added to a call is still a call and to noise still noise;
- time shift by up to ``shift`` columns, frequency shift by up to ``freq`` rows;
- time mask of up to ``tmask`` columns, frequency mask of up to ``fmask`` rows.

Vacated and masked cells become 0, which after mean subtraction is the dataset's mean image:
the neutral background. Repeating the edge column instead would draw a flat band that looks
like a tonal, and wrapping around would split a call into two unphysical halves. The time axis
is never mirrored: that turns an up-call into a down-call.

The draws for batch ``index`` come from ``batch_rng(seed, index)``, so a resumed run continues
with the same draws. Only ``Generator.random`` is used (its bits are the same in every numpy
since 1.17) and all arithmetic is float32, so the host's numpy and the Caffe root's numpy 1.19
give the same images.

This file imports only the standard library and numpy, and runs on Python 3.9: ``upcall nets``
copies it into a job folder as ``upcall_augment.py``, where the Caffe root's Python imports it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

import numpy as np

SPEC_HELP = "shift=COLS,freq=ROWS,tmask=COLS,fmask=ROWS,mix=WEIGHT,p=PROB,seed=N"
_INTS = ("shift", "freq", "tmask", "fmask", "seed")
# one block of uniform draws per image, one column per decision (fixed layout: see apply)
_DRAWS = 13


@dataclass(frozen=True)
class OnlineAugment:
    """Settings of the online transforms (0 turns one off)."""

    shift: int = 0  # time shift: up to this many columns, either way
    freq: int = 0  # frequency shift: up to this many rows (bins), either way
    tmask: int = 0  # time mask: up to this many consecutive columns
    fmask: int = 0  # frequency mask: up to this many consecutive rows
    mix: float = 0.0  # weight of the added negative clip: uniform in [0, mix]
    p: float = 0.5  # probability of each transform, per image
    seed: int = 0  # with the batch index, seeds each batch's draws

    def __post_init__(self) -> None:
        for name in _INTS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number ≥ 0, not {value!r}")
        for name in ("mix", "p"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number from 0 to 1, not {value!r}")

    @classmethod
    def parse(cls, spec: str, *, seed: int = 0) -> OnlineAugment:
        """Settings from ``"shift=4,freq=2,tmask=6,fmask=8,mix=0.5"`` (ValueError if malformed);
        ``seed`` is used unless the text sets one."""
        values: dict[str, object] = {"seed": seed}
        names = {f.name for f in fields(cls)}
        for item in (x.strip() for x in spec.split(",")):
            if not item:
                continue
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise ValueError(f"{item!r} is not NAME=VALUE with NAME one of {', '.join(names)}")
            try:
                values[key] = int(text) if key in _INTS else float(text)
            except ValueError:
                raise ValueError(f"{item!r}: {text.strip()!r} is not a number") from None
        return cls(**values)

    @classmethod
    def from_dict(cls, value: dict) -> OnlineAugment:
        """Settings from :meth:`to_dict`'s output (config.json, a layer's param_str)."""
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown augmentation settings {sorted(unknown)}")
        return cls(**value)

    def to_dict(self) -> dict:
        return asdict(self)

    def param_str(self) -> str:
        """The Caffe Python layer's ``param_str``: these settings as JSON."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_param_str(cls, text: str) -> OnlineAugment:
        return cls.from_dict(json.loads(text))

    @property
    def active(self) -> bool:
        return self.p > 0 and any((self.shift, self.freq, self.tmask, self.fmask, self.mix))

    def check(self, shape: tuple[int, ...]) -> None:
        """ValueError unless (N, C, H, W) batches of ``shape`` can take these settings."""
        if len(shape) != 4:
            raise ValueError(f"augmentation needs N×C×H×W images, got shape {tuple(shape)}")
        height, width = shape[2], shape[3]
        if max(self.shift, self.tmask) >= width or max(self.freq, self.fmask) >= height:
            raise ValueError(
                f"shift/tmask must be below the image width ({width}) and freq/fmask below "
                f"its height ({height}); got {self.to_dict()}"
            )

    def apply(self, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A new float32 batch: ``images`` (N, C, H, W) transformed; ``labels`` (N,) pick the
        negatives to mix in and are not changed."""
        x = np.asarray(images, dtype=np.float32)
        self.check(x.shape)
        n, height, width = x.shape[0], x.shape[2], x.shape[3]
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} images")
        u = rng.random((n, _DRAWS))  # drawn even when nothing fires: the stream stays in step
        negatives = np.flatnonzero(labels == 0)
        out = x.copy()
        for i in range(n):
            d = u[i]
            if self.mix and d[0] < self.p:
                others = negatives[negatives != i]
                if len(others):
                    j = others[_pick(d[1], len(others) - 1)]
                    w = np.float32(self.mix * d[2])
                    out[i] = (np.float32(1) - w) * out[i] + w * x[j]
            if self.shift and d[3] < self.p:
                out[i] = _shift(out[i], 2, _pick(d[4], 2 * self.shift) - self.shift)
            if self.freq and d[5] < self.p:
                out[i] = _shift(out[i], 1, _pick(d[6], 2 * self.freq) - self.freq)
            if self.tmask and d[7] < self.p:
                size = _pick(d[8], self.tmask)
                start = _pick(d[9], width - size)
                out[i, :, :, start : start + size] = 0
            if self.fmask and d[10] < self.p:
                size = _pick(d[11], self.fmask)
                start = _pick(d[12], height - size)
                out[i, :, start : start + size, :] = 0
        return out


def batch_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of batch ``index`` (0, 1, ... forward passes of the TRAIN net)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))


def _pick(u: float, high: int) -> int:
    """A whole number uniform in 0..high from one uniform draw in [0, 1)."""
    return min(int(u * (high + 1)), high)


def _shift(image: np.ndarray, axis: int, k: int) -> np.ndarray:
    """``image`` (C, H, W) moved by ``k`` cells along ``axis`` (positive: later in time or higher
    in frequency), the vacated cells 0."""
    out = np.zeros_like(image)
    size = image.shape[axis]
    if abs(k) >= size:
        return out
    src = [slice(None)] * 3
    dst = [slice(None)] * 3
    src[axis] = slice(max(0, -k), size - max(0, k))
    dst[axis] = slice(max(0, k), size - max(0, -k))
    out[tuple(dst)] = image[tuple(src)]
    return out
