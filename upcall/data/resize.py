"""Image loading and DIGITS's four resize modes (squash, crop, fill, half_crop).

DIGITS resized with ``scipy.misc.imresize(..., interp="bilinear")``, which for a uint8 image is
Pillow's bilinear ``Image.resize``. We reproduce Pillow's 8-bit arithmetic exactly, for a whole
stack of images at once: each pass is one matrix product with Pillow's fixed-point weights
(k = round(w · 2^22), every output floor((Σ k·p + 2^21) / 2^22), stored as uint8 after each
pass). Those integer sums stay far below 2^53, so float64 BLAS computes them without rounding.
The geometry (which side is scaled, where the crop starts, how much noise pads each side)
follows DIGITS's ``resize_image``, including Python 2's ``round`` (halves away from zero), so
sizes agree with DIGITS to the pixel.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from upcall.errors import UpcallError

RESIZE_MODES = ("squash", "crop", "fill", "half_crop")
_PRECISION_BITS = 22  # Pillow's fixed-point weights for 8-bit images
_BAND = 16  # outputs per matrix product: each reads only the narrow band of inputs under them
_GROUP = 4  # images resized together: their float64 intermediate (~1 MB) stays in cache


def py2_round(x: float) -> int:
    """``int(round(x))`` as Python 2 computed it (halves away from zero); DIGITS ran on Python 2."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def load_image(path: str | os.PathLike, *, channels: int = 1) -> np.ndarray:
    """Read an image file as uint8 (H, W) for ``channels=1`` or (H, W, 3) RGB for ``channels=3``."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    try:
        with Image.open(path) as im:
            im.load()
            mode = "L" if channels == 1 else "RGB"
            # Pillow's "L" conversion is the ITU-R 601 luma that DIGITS used through PIL too.
            return np.asarray(im if im.mode == mode else im.convert(mode))
    except (OSError, SyntaxError, ValueError) as e:
        raise UpcallError(f"{path}: cannot read image: {e}") from e


@functools.lru_cache(maxsize=32)
def _weights(in_size: int, out_size: int) -> tuple[np.ndarray, list[tuple[int, ...]]] | None:
    """Pillow's 8-bit bilinear weights along one axis: an (out, in) float64 matrix of k / 2^22
    and its bands (out0, out1, in0, in1: the inputs outputs out0..out1 read); None where the
    uint8 cast in :func:`bilinear_stack` would not be exact.

    Every step repeats Pillow's double arithmetic in the same order (centre, rounded bounds,
    triangle taps, their running sum, the division, rounding to 22 bits), so the integer
    weights are bit for bit Pillow's.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = filterscale  # the triangle's support (1) times filterscale
    taps = np.arange(math.ceil(support) * 2 + 1)
    centre = (np.arange(out_size) + 0.5) * scale
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)  # C's (int): truncation
    count = np.minimum((centre + support + 0.5).astype(np.int64), in_size) - first
    t = np.abs(((taps + first[:, None]) - centre[:, None] + 0.5) * (1.0 / filterscale))
    w = np.where((t < 1.0) & (taps < count[:, None]), 1.0 - t, 0.0)
    total = np.zeros(out_size)
    for column in w.T:  # summed left to right, as Pillow does; the zero taps add nothing
        total = total + column
    w = np.divide(w, total[:, None], out=w.copy(), where=total[:, None] != 0.0)
    k = np.trunc(w * (1 << _PRECISION_BITS) + np.where(w < 0, -0.5, 0.5))
    # Outputs are cast to uint8 without clipping: that needs non-negative weights whose sum
    # keeps 255·Σk + 2^21 below 256·2^22 (rounding moves Σk by a few units from 2^22).
    if k.min() < 0 or k.sum(axis=1).max() * 255 + (1 << 21) >= 256 << _PRECISION_BITS:
        return None
    matrix = np.zeros((out_size, in_size))
    rows, cols = np.nonzero(taps < count[:, None])
    matrix[rows, first[rows] + cols] = k[rows, cols] * 2.0**-_PRECISION_BITS
    matrix.flags.writeable = False
    end = first + count
    bands = [
        (
            o,
            min(o + _BAND, out_size),
            int(first[o : o + _BAND].min()),
            int(end[o : o + _BAND].max()),
        )
        for o in range(0, out_size, _BAND)
    ]
    return matrix, bands


def _pillow_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def bilinear_stack(images: np.ndarray, *, height: int, width: int) -> np.ndarray:
    """Resize a uint8 stack (N, H, W) or (N, H, W, C) to (height, width), equal byte for byte
    to Pillow's bilinear ``Image.resize`` of each image.

    Each pass is a few matrix products over a group of images, one per band of outputs (which
    reads only the inputs under it). Shrinking rows while also changing the width falls back to
    Pillow: Pillow 13 then sometimes runs the vertical pass first, which rounds differently.
    """
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(
            f"expected a uint8 (N, H, W[, C]) stack, got {images.dtype} {images.shape}"
        )
    if images.ndim == 4:  # colour: Pillow resizes each channel with the same arithmetic
        grey = np.moveaxis(images, 3, 1).reshape(-1, *images.shape[1:3])
        grey = bilinear_stack(grey, height=height, width=width)
        return np.ascontiguousarray(np.moveaxis(grey.reshape(len(images), -1, height, width), 1, 3))
    n, h, w = images.shape
    horizontal = _weights(w, width) if width != w else None
    vertical = _weights(h, height) if height != h else None
    if (
        (width != w and horizontal is None)
        or (height != h and vertical is None)
        or (height < h and width != w)
    ):
        return np.stack([_pillow_bilinear(image, height, width) for image in images])
    out = np.empty((n, height, width), np.uint8)
    for g0 in range(0, n, _GROUP):
        group = images[g0 : g0 + _GROUP]
        g = len(group)
        # (H, G, W): rows lead, so the vertical pass is one product per band over all G images.
        x = group.transpose(1, 0, 2).astype(np.float64).reshape(h * g, w)
        if horizontal is not None:
            x = _horizontal(x, *horizontal)
        if vertical is None:
            out[g0 : g0 + g] = x.reshape(h, g, width).transpose(1, 0, 2)
        else:
            _vertical(x.reshape(h, g * width), *vertical, out=out[g0 : g0 + g])
    return out


def _horizontal(x: np.ndarray, matrix: np.ndarray, bands: list[tuple[int, ...]]) -> np.ndarray:
    y = np.empty((len(x), len(matrix)))
    for o0, o1, i0, i1 in bands:
        np.matmul(x[:, i0:i1], matrix[o0:o1, i0:i1].T, out=y[:, o0:o1])
    return np.floor(np.add(y, 0.5, out=y), out=y)  # Pillow's + 2^21, >> 22 (all sums are >= 0)


def _vertical(
    x: np.ndarray, matrix: np.ndarray, bands: list[tuple[int, ...]], *, out: np.ndarray
) -> None:
    g, _, width = out.shape
    for o0, o1, i0, i1 in bands:
        block = matrix[o0:o1, i0:i1] @ x[i0:i1]
        block += 0.5
        # Truncating a value in [0, 256) to uint8 is the floor Pillow takes.
        out[:, o0:o1] = block.reshape(o1 - o0, g, width).transpose(1, 0, 2)


def _noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    # DIGITS drew randint(0, 255): values 0..254, never 255.
    return rng.integers(0, 255, size=shape, dtype=np.uint8)


def resize(
    image: np.ndarray,
    *,
    height: int,
    width: int,
    mode: str = "squash",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Resize a uint8 (H, W) or (H, W, C) image to (height, width) the way DIGITS does.

    Parameters
    ----------
    image : uint8 array, (H, W) or (H, W, C)
    height, width : the output size
    mode : "squash" (plain resize), "crop" (scale to cover, centre-crop the long side),
        "fill" (scale to fit, pad the short side with uniform noise) or "half_crop" (scale to the
        mean of the two ratios, centre-crop the side still too long, noise-pad the other)
    rng : the noise source for "fill" and "half_crop" (required for those modes)
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"expected a uint8 (H, W) or (H, W, C) image, got {image.dtype} {image.shape}"
        )
    if mode in RESIZE_MODES and image.shape[:2] == (height, width):
        return image
    rngs = None if rng is None else [rng]
    return resize_stack(image[None], height=height, width=width, mode=mode, rngs=rngs)[0]


def resize_stack(
    images: np.ndarray,
    *,
    height: int,
    width: int,
    mode: str = "squash",
    rngs: Sequence[np.random.Generator] | None = None,
) -> np.ndarray:
    """:func:`resize` for a stack of same-sized images (N, H, W[, C]), in one batch.

    ``rngs`` gives each image its own noise source ("fill" and "half_crop"), so an image's
    result does not depend on which others share its batch.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    h, w = images.shape[1:3]
    if (h, w) == (height, width):
        return images
    width_ratio, height_ratio = w / width, h / height
    if mode == "squash" or width_ratio == height_ratio:
        return bilinear_stack(images, height=height, width=width)
    wide = width_ratio > height_ratio  # relative to the target, the source is wider than tall
    if mode == "crop":
        if wide:
            scaled = bilinear_stack(images, height=height, width=py2_round(w / height_ratio))
        else:
            scaled = bilinear_stack(images, height=py2_round(h / width_ratio), width=width)
        return _centre_crop(scaled, height, width, wide)
    if rngs is None or len(rngs) != len(images):
        raise ValueError(f"resize mode {mode!r} pads with random noise: pass rng (one per image)")
    if mode == "fill":
        new_h, new_w = _fill_size(h, w, height, width, wide)
        scaled = bilinear_stack(images, height=new_h, width=new_w)
    else:  # half_crop
        ratio = (width_ratio + height_ratio) / 2.0
        new_h, new_w = py2_round(h / ratio), py2_round(w / ratio)
        # An odd gap cannot be padded equally on both sides, so DIGITS grows the image by one.
        if wide and (height - new_h) % 2 == 1:
            new_h += 1
        elif not wide and (width - new_w) % 2 == 1:
            new_w += 1
        scaled = _centre_crop(
            bilinear_stack(images, height=new_h, width=new_w), height, width, wide
        )
    return np.stack(
        [
            _pad_with_noise(image, height, width, wide, rng)
            for image, rng in zip(scaled, rngs, strict=True)
        ]
    )


def _fill_size(h: int, w: int, height: int, width: int, wide: bool) -> tuple[int, int]:
    if wide:
        new_h = py2_round(h / (w / width))
        return new_h + (height - new_h) % 2, width
    new_w = py2_round(w / (h / height))
    return height, new_w + (width - new_w) % 2


def _centre_crop(stack: np.ndarray, height: int, width: int, wide: bool) -> np.ndarray:
    if wide:
        start = py2_round((stack.shape[2] - width) / 2.0)
        return stack[:, :, start : start + width]
    start = py2_round((stack.shape[1] - height) / 2.0)
    return stack[:, start : start + height]


def _pad_with_noise(
    image: np.ndarray, height: int, width: int, wide: bool, rng: np.random.Generator
) -> np.ndarray:
    # DIGITS draws one noise block and puts the same block on both sides.
    extra = image.shape[2:]
    if wide:
        noise = _noise((max(0, (height - image.shape[0]) // 2), width, *extra), rng)
        return np.ascontiguousarray(np.concatenate((noise, image, noise), axis=0))
    noise = _noise((height, max(0, (width - image.shape[1]) // 2), *extra), rng)
    return np.ascontiguousarray(np.concatenate((noise, image, noise), axis=1))
