"""Read one audio clip (AIFF, WAV, FLAC, ... through libsndfile) and check it is what we expect.

The Kaggle clips are 2 s, 2000 Hz, 16-bit PCM, mono. :func:`read_clip` returns the raw ``int16``
samples of such a file, as the tutorial's ``aifc`` reader did, so the tutorial spectrogram is
reproduced on the same numbers. Any other file (other sample format, or a clip that had to be
resampled or mixed down) comes back as ``float64`` in full-scale units (1.0 is full scale;
samples are not clipped, so a resampled clip may exceed it).
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from upcall.errors import UpcallError
from upcall.fsutil import why_unreadable

SAMPLE_RATE = 2000  # Hz, the Kaggle clips
CLIP_SECONDS = 2.0
FITS = ("strict", "pad", "trim", "pad-trim")
AUDIO_SUFFIXES = (".aiff", ".aif", ".wav", ".flac")

# libsndfile's parser log says "SSND : 8008 (should be 2954)" when the header claims more data
# than the file holds; it then quietly reads what is there, so this is how we see truncation.
_SHOULD_BE = re.compile(r"^\s*(\S+)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def read_clip(
    path: str | os.PathLike,
    *,
    rate: int = SAMPLE_RATE,
    seconds: float = CLIP_SECONDS,
    resample: bool = False,
    mixdown: bool = False,
    fit: str = "strict",
) -> np.ndarray:
    """Read a mono clip of ``seconds`` at ``rate`` Hz.

    Parameters
    ----------
    path : audio file in any format libsndfile reads (AIFF, WAV, FLAC, ...).
    rate : expected sample rate; another rate is an error unless ``resample``.
    seconds : expected length; ``round(rate * seconds)`` samples.
    resample : convert another sample rate with ``scipy.signal.resample_poly``.
    mixdown : average the channels of a multi-channel file instead of rejecting it.
    fit : ``"strict"`` (length must match), ``"pad"`` (zero-pad a short clip at the end),
        ``"trim"`` (keep the start of a long clip) or ``"pad-trim"`` (both).

    Returns
    -------
    ``int16`` (n,) raw samples for an unmodified 16-bit PCM file, else ``float64`` (n,) in
    full-scale units.

    Raises
    ------
    UpcallError : one line naming the file and what is wrong with it.
    """
    check_fit(fit)
    path = Path(path)
    with _open(path) as f:
        file_rate, channels = f.samplerate, f.channels
        _check_header(path, f, rate=rate, resample=resample, mixdown=mixdown)
        as_int16 = f.subtype == "PCM_16" and file_rate == rate and channels == 1
        samples = _read_all(path, f, "int16" if as_int16 else "float64")
    if not as_int16 and not np.isfinite(samples).all():
        raise UpcallError(f"{path}: contains NaN or infinite samples")
    if channels > 1:
        samples = samples.mean(axis=1)
    else:
        samples = samples.reshape(-1)
    if file_rate != rate:
        samples = _resample(samples, file_rate, rate)
    return _fit_length(path, samples, n=round(rate * seconds), rate=rate, fit=fit)


def check_fit(fit: str) -> None:
    """UpcallError unless ``fit`` is one of FITS."""
    if fit not in FITS:
        raise UpcallError(f"unknown --fit {fit!r} (choose from {', '.join(FITS)})")


def _open(path: Path) -> sf.SoundFile:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror}") from None
    if size == 0:
        raise UpcallError(f"{path}: empty file")
    try:
        return sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as e:
        if denied := why_unreadable(path):
            raise UpcallError(f"{path}: cannot read: {denied}") from None
        # libsndfile prefixes "Error opening '<path>': "; the path is already at the start.
        reason = str(e).split("': ", 1)[-1].rstrip(".")
        raise UpcallError(f"{path}: not a readable audio file ({reason})") from None


def check_complete(path: Path, f: sf.SoundFile) -> None:
    """UpcallError when libsndfile's log shows a chunk cut short (a truncated file)."""
    for _, declared, actual in _SHOULD_BE.findall(f.extra_info):
        if int(actual) < int(declared):
            raise UpcallError(
                f"{path}: truncated file (header declares {declared} bytes of a "
                f"chunk, only {actual} are there)"
            )


def _check_header(path: Path, f: sf.SoundFile, *, rate: int, resample: bool, mixdown: bool) -> None:
    check_complete(path, f)
    if f.frames == 0:
        raise UpcallError(f"{path}: no samples")
    if f.channels != 1 and not mixdown:
        raise UpcallError(f"{path}: {f.channels} channels, expected mono (--mixdown averages them)")
    if f.samplerate != rate and not resample:
        raise UpcallError(
            f"{path}: sample rate {f.samplerate} Hz, expected {rate} Hz (--resample converts it)"
        )


def _read_all(path: Path, f: sf.SoundFile, dtype: str) -> np.ndarray:
    expected = f.frames
    try:
        samples = f.read(dtype=dtype, always_2d=f.channels > 1)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise UpcallError(f"{path}: cannot decode audio ({e})") from None
    if len(samples) != expected:
        raise UpcallError(
            f"{path}: truncated file (header declares {expected} frames, "
            f"{len(samples)} could be read)"
        )
    return samples


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    from scipy.signal import resample_poly  # only files that need it pay for the import

    ratio = Fraction(dst, src)
    return resample_poly(samples, ratio.numerator, ratio.denominator)


def _fit_length(path: Path, samples: np.ndarray, *, n: int, rate: int, fit: str) -> np.ndarray:
    have = len(samples)
    if have < n:
        if fit not in ("pad", "pad-trim"):
            raise UpcallError(
                f"{path}: clip too short: {_duration(have, rate)}, expected "
                f"{_duration(n, rate)} (--fit pad zero-pads it)"
            )
        return np.concatenate([samples, np.zeros(n - have, samples.dtype)])
    if have > n:
        if fit not in ("trim", "pad-trim"):
            raise UpcallError(
                f"{path}: clip too long: {_duration(have, rate)}, expected "
                f"{_duration(n, rate)} (--fit trim keeps the start)"
            )
        return samples[:n].copy()
    return samples


def _duration(n: int, rate: int) -> str:
    return f"{n} samples = {n / rate:g} s at {rate} Hz"
