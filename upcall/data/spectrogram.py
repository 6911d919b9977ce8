"""Clip → spectrogram image: the named modes, batched over clips, and PNG reading and writing.

Every mode turns audio at 2000 Hz into an 8-bit image, rows = frequency (row 0 = lowest),
columns = time. Audio of n >= 256 samples gives ``frames(n, hop)`` columns (a long recording
becomes one wide image for a detector), computed by the same code. A mode fixes its hop and how
many rows it keeps; its 2 s image shape is :func:`clip_shape`.

* ``tutorial`` (129×30) reproduces the DIGITS tutorial's ``preprocess-aiff.py`` pixel for pixel:
  ``matplotlib.mlab.specgram`` defaults (linear PSD) and old SciPy's per-image ``bytescale``.
  The min–max is taken over the whole image, so a long recording's grey levels depend on its
  loudest moment: not the same pixels as its 2 s pieces computed one by one.
* ``enhanced`` (129×30): log power, contrast enhancement in the manner of the Kaggle winners
  (clip outliers, subtract the local background along time and along frequency) and one fixed
  dB → grey mapping. Its clipping statistics are per image.
* ``fine`` (65×59): the 2013 winner's 32 ms hop (NFFT 256, hop 64) and only the rows up to
  500 Hz (the up-call band, its first harmonic and the hard negatives above it), log power with
  each column's median over those rows subtracted (removes the clip's gain, clicks and other
  broadband transients), then one fixed dB → grey mapping. Nothing depends on the rest of the
  image, so a window cut from a long recording's image has the same pixels as the window
  computed alone (``per_image`` False): a detector can run the network over a whole block.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from PIL import Image

from upcall.errors import UpcallError
from upcall.fsutil import atomic_path

SAMPLE_RATE = 2000  # Hz of the clips every mode expects
CLIP_SAMPLES = 4000  # 2 s
NFFT = 256
NOVERLAP = 128
HEIGHT = NFFT // 2 + 1  # 129 one-sided frequency bins
STEP = NFFT - NOVERLAP
WIDTH = (CLIP_SAMPLES - NFFT) // STEP + 1  # 30 frames
BLOCK = 256 * WIDTH  # frames per FFT batch: ~30 MB of complex spectra, whatever N the caller passes


class Mode(Protocol):
    name: ClassVar[str]
    hop: ClassVar[int]  # samples between columns
    rows: ClassVar[int]  # frequency rows kept, from 0 Hz up
    per_image: ClassVar[bool]  # grey levels depend on the whole image (not local per column)

    def images(self, x: np.ndarray) -> np.ndarray:
        """float64 (N, n) full-scale samples → uint8 (N, rows, frames(n, hop)), n >= NFFT."""
        ...


def frames(n: int, hop: int = STEP) -> int:
    """Columns of the spectrogram of ``n`` samples (mlab's count: whole windows only)."""
    if n < NFFT:
        raise ValueError(f"audio of {n} samples is shorter than one {NFFT}-sample window")
    return 1 + (n - NFFT) // hop


def power_spectrogram(
    x: np.ndarray,
    *,
    fs: float,
    exact: bool,
    hop: int = STEP,
    rows: int = HEIGHT,
    time_major: bool = False,
) -> np.ndarray:
    """One-sided PSD of each clip, as ``matplotlib.mlab.specgram`` computes it.

    Symmetric Hann window (``np.hanning``), no detrending, NFFT 256, ``hop`` 128 samples unless
    given (mlab's overlap 128), scaled by ``1 / (fs * sum(window**2))`` with the non-DC,
    non-Nyquist bins doubled.
    ``exact=True`` repeats mlab's floating-point operations so the result is bit-identical;
    ``exact=False`` uses the real FFT (2-3× faster, differs in the last bits).

    Returns float64 (N, HEIGHT, frames(n, hop)) for x of shape (N, n); only the lowest ``rows``
    bins when given (the same numbers as slicing the whole result), and (N, frames, rows) with
    ``time_major`` (the layout the FFT makes: no transposed copy).
    """
    window = np.hanning(NFFT)
    segments = np.lib.stride_tricks.sliding_window_view(x, NFFT, axis=-1)[:, ::hop]
    segments = segments * window  # (N, T, NFFT)
    if exact:
        # mlab takes the complex FFT and multiplies conj(X) * X in complex arithmetic; the real
        # part of that product is not bit-equal to re² + im², so we do the same.
        spec = np.fft.fft(segments, axis=-1)[..., :rows]
        power = (np.conj(spec) * spec).real.copy()
    else:
        spec = np.fft.rfft(segments, axis=-1)[..., :rows]
        power = spec.real**2 + spec.imag**2
    # fold in the negative frequencies (all but DC and Nyquist)
    power[..., 1 : min(rows, HEIGHT - 1)] *= 2.0
    # mlab divides the complex array by fs and by sum(w²); NumPy's complex division by a real
    # number multiplies by its reciprocal, so these products match it bit for bit.
    power *= 1.0 / fs
    power *= 1.0 / (window**2).sum()
    return power if time_major else power.transpose(0, 2, 1)  # (N, F, T)


def bytescale(images: np.ndarray) -> np.ndarray:
    """Old SciPy's ``bytescale`` (used by ``scipy.misc.imsave``), per image of (N, H, W).

    ``(x - min) * (255 / (max - min)) + 0.4999``, clamped to 0..255, truncated to uint8; a
    constant image (max == min) becomes all zeros, as SciPy made ``max - min`` 1 then.
    """
    cmin = images.min(axis=(1, 2), keepdims=True)
    cscale = images.max(axis=(1, 2), keepdims=True) - cmin
    cscale[cscale == 0] = 1
    scaled = (images - cmin) * (255.0 / cscale) + 0.4999
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


@dataclass(frozen=True)
class TutorialMode:
    """The tutorial's image: linear PSD, per-image min–max to 8 bits (mostly black)."""

    name: ClassVar[str] = "tutorial"
    hop: ClassVar[int] = STEP
    rows: ClassVar[int] = HEIGHT
    per_image: ClassVar[bool] = True
    fs: float = 2.0  # matplotlib's default Fs; the tutorial never passed the real rate

    def images(self, x: np.ndarray) -> np.ndarray:
        return bytescale(power_spectrogram(x, fs=self.fs, exact=True))


@dataclass(frozen=True)
class EnhancedMode:
    """Log power with contrast enhancement and one fixed grey scale for every clip."""

    name: ClassVar[str] = "enhanced"
    hop: ClassVar[int] = STEP
    rows: ClassVar[int] = HEIGHT
    per_image: ClassVar[bool] = True
    floor_db: float = -160.0  # dB re full scale²/Hz given to zero power; 16-bit noise is ~-131
    clip_std: float = 3.0  # clip to mean ± clip_std·std first, so clicks don't drag local means
    time_window: tuple[int, int] = (5, 29)  # (inner, outer) frames of the along-time background
    freq_window: tuple[int, int] = (3, 41)  # (inner, outer) bins of the along-frequency one
    range_db: tuple[float, float] = (-5.0, 25.0)  # dB above local background → grey 0..255

    def images(self, x: np.ndarray) -> np.ndarray:
        power = power_spectrogram(x, fs=float(SAMPLE_RATE), exact=False)
        db = 10.0 * np.log10(np.maximum(power, 10.0 ** (self.floor_db / 10.0)))
        mean = db.mean(axis=(1, 2), keepdims=True)
        spread = self.clip_std * db.std(axis=(1, 2), keepdims=True)
        db = np.clip(db, mean - spread, mean + spread)
        # Along time first: removes each frequency's steady level (tonal noise, coloured
        # background); then along frequency: removes each frame's broadband level (clicks).
        db = db - _background(db, axis=2, window=self.time_window)
        db = db - _background(db, axis=1, window=self.freq_window)
        lo, hi = self.range_db
        grey = (db - lo) * (255.0 / (hi - lo)) + 0.5
        return np.clip(grey, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FineMode:
    """32 ms hop, 0–500 Hz, log power minus each column's median: local, no per-image scaling."""

    name: ClassVar[str] = "fine"
    hop: ClassVar[int] = 64  # 32 ms at 2000 Hz: 59 columns per 2 s clip
    rows: ClassVar[int] = 65  # bins 0..64: 0–500 Hz
    per_image: ClassVar[bool] = False
    floor_db: float = -160.0  # dB re full scale²/Hz given to zero power
    range_db: tuple[float, float] = (-6.0, 30.0)  # dB above the column's median → grey 0..255

    def images(self, x: np.ndarray) -> np.ndarray:
        return self.grey(self.power(x))

    def power(self, x: np.ndarray) -> np.ndarray:
        """float64 (N, n) → the PSD of the kept rows, time-major: float64 (N, frames, rows)."""
        return power_spectrogram(
            x, fs=float(SAMPLE_RATE), exact=False, hop=self.hop, rows=self.rows, time_major=True
        )

    def grey(self, power: np.ndarray) -> np.ndarray:
        """:meth:`power`'s output → uint8 (N, rows, frames); ``power`` is overwritten (a
        detector takes what else it needs from it first)."""
        db = np.maximum(power, 10.0 ** (self.floor_db / 10.0), out=power)
        np.log10(db, out=db)
        db *= 10.0
        db -= np.median(db, axis=2, keepdims=True)  # (N, T, 1): each column's broadband level
        lo, hi = self.range_db
        db -= lo
        db *= 255.0 / (hi - lo)
        db += 0.5
        np.clip(db, 0, 255, out=db)
        return db.astype(np.uint8).transpose(0, 2, 1)


def _background(db: np.ndarray, *, axis: int, window: tuple[int, int]) -> np.ndarray:
    """Mean over the ``outer`` neighbours of each cell along ``axis``, leaving out the ``inner``
    ones around it, so a call does not raise its own background (edges mirrored)."""
    from scipy.ndimage import uniform_filter1d  # slow to import; only this mode needs it

    inner, outer = window
    total_outer = uniform_filter1d(db, outer, axis=axis, mode="reflect") * outer
    total_inner = uniform_filter1d(db, inner, axis=axis, mode="reflect") * inner
    return (total_outer - total_inner) / (outer - inner)


MODES: dict[str, Mode] = {m.name: m for m in (TutorialMode(), EnhancedMode(), FineMode())}


def get_mode(name: str) -> Mode:
    """The registered mode called ``name``; UpcallError listing the choices otherwise."""
    try:
        return MODES[name]
    except KeyError:
        raise UpcallError(
            f"unknown spectrogram mode {name!r} (choose from {', '.join(MODES)})"
        ) from None


def mode_settings(name: str) -> dict:
    """The settings that define a mode's images, as written to ``spectrograms.json``."""
    mode = get_mode(name)
    height, width = clip_shape(name)
    return {
        "mode": mode.name,
        "nfft": NFFT,
        "noverlap": NFFT - mode.hop,
        "sample_rate": SAMPLE_RATE,
        "height": height,
        "width": width,
        **dataclasses.asdict(mode),
    }


def clip_shape(name: str) -> tuple[int, int]:
    """(rows, columns) of a mode's image of one 2 s clip: (129, 30) for ``tutorial``."""
    mode = get_mode(name)
    return mode.rows, frames(CLIP_SAMPLES, mode.hop)


def as_full_scale(samples: np.ndarray) -> np.ndarray:
    """float64 samples in full-scale units: integers are divided by 2**(bits - 1).

    That divisor is a power of two, so every later floating-point step scales exactly and the
    tutorial images are the same bits as those computed on the raw integers.
    """
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float64) * (1.0 / (np.iinfo(samples.dtype).max + 1))
    return samples.astype(np.float64, copy=False)


def checked_full_scale(samples: np.ndarray) -> np.ndarray:
    """:func:`as_full_scale`, refusing samples that hold NaN or infinity (ValueError)."""
    x = as_full_scale(samples)
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or infinity")
    return x


def compute_batch(samples: np.ndarray, *, mode: str = "tutorial") -> np.ndarray:
    """Spectrogram images of many clips of one length at once.

    Parameters
    ----------
    samples : (N, n) clips at 2000 Hz, n >= 256 (4000 for the 2 s clips); integer (raw PCM)
        or float (full scale).
    mode : a name in :data:`MODES`.

    Returns
    -------
    uint8 (N, rows, frames(n, hop)) of the mode, row 0 = lowest frequency; (N, 129, 30) for 2 s
    clips in the tutorial mode. Per-image modes normalise each image on its own (see the module
    docstring), whatever its length.
    """
    samples = np.asarray(samples)
    if samples.ndim != 2:
        raise ValueError(f"expected clips of shape (N, n), got {samples.shape}")
    chosen = get_mode(mode)
    width = frames(samples.shape[1], chosen.hop)
    out = np.empty((len(samples), chosen.rows, width), np.uint8)
    block = max(1, BLOCK // width)  # bounded memory for long recordings too
    for start in range(0, len(samples), block):
        out[start : start + block] = chosen.images(
            checked_full_scale(samples[start : start + block])
        )
    return out


def compute(samples: np.ndarray, *, mode: str = "tutorial") -> np.ndarray:
    """Spectrogram image of one clip of n >= 256 samples: uint8 (rows, frames(n, hop)) of the
    mode; (129, 30) for a 2 s clip in the tutorial mode."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected one clip of shape (n,), got {samples.shape}")
    return compute_batch(samples[None], mode=mode)[0]


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a 2-D uint8 array as an 8-bit greyscale PNG, atomically."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 image, got {image.dtype} {image.shape}")
    with atomic_path(path) as tmp:
        # Level 1: about twice as fast as the default 6 for files ~12% larger (2 kB); the
        # encoding dominates the cost of a spectrogram, and PNG is lossless at any level.
        Image.fromarray(image).save(tmp, format="PNG", compress_level=1)


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit greyscale PNG as uint8 (H, W); UpcallError naming the file otherwise."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode != "L":
                raise UpcallError(f"{path}: PNG mode {im.mode}, expected 8-bit greyscale (L)")
            return np.array(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise UpcallError(f"{path}: not a readable PNG ({e})") from None
