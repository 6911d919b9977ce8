"""Audio files of any length, rate and channel count → 2 kHz mono windows, in bounded memory.

A file is read in blocks (``SoundFile.read`` of ``block_s`` seconds); a block at another rate is
band-limited and resampled to 2 kHz with ``scipy.signal.resample_poly`` with one second of
context on each side, trimmed afterwards, so blocks join without audible seams (the result
differs from resampling the whole file only in the last bits). Windows of 2 s every ``step``
seconds are cut from a buffer that carries the last (window - step) samples over to the next
block, so the windows, and hence the scores, do not depend on the block size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from upcall.audio.clip import AUDIO_SUFFIXES, check_complete
from upcall.errors import UpcallError
from upcall.fsutil import why_unreadable

RATE = 2000  # Hz the models take
WINDOW = 4000  # samples: the 2-s window the models were trained on
CONTEXT_S = 1.0  # seconds of neighbouring audio each side of a block when resampling
# Lowest sample rate a recording may have. Up-calls sweep 50–250 Hz and the models were trained
# on 2 kHz audio; at 1 kHz the Nyquist frequency (500 Hz) leaves the whole up-call band and its
# first harmonic region below the anti-aliasing roll-off, so the band the detector looks at is
# really there. A lower rate (a 100 Hz file holds nothing above 50 Hz) would be upsampled into an
# image with an empty up-call band and scored as if it were silence: refused instead.
MIN_RATE = 1000


@dataclass(frozen=True)
class Windows:
    """Consecutive windows of one block: ``samples`` float64 (M, WINDOW), full scale."""

    start: int  # index (in windows) of the first one in the file
    samples: np.ndarray


def find_recordings(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(file, path under the deepest folder holding every input) for each recording, each once;
    folders are searched recursively. The relative paths mirror the input tree, so two files of
    one name in different folders (``site1/rec.wav``, ``site2/rec.wav``) stay apart."""
    found = []
    for p in inputs:
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise UpcallError(f"{p}: no recordings ({', '.join(AUDIO_SUFFIXES)}) in it")
            found += [f for f in files if f.is_file()]
        else:
            found.append(p)
    # absolute, not resolved: a symlinked recording keeps its place in the tree it was found in
    roots = [os.path.abspath(p if p.is_dir() else p.parent) for p in inputs]
    base = os.path.commonpath(roots) if roots else os.getcwd()
    out, seen = [], set()
    for f in found:
        a = os.path.abspath(f)
        if a not in seen:
            seen.add(a)
            out.append((f, Path(os.path.relpath(a, base))))
    return out


def open_audio(path: Path, *, channel: int) -> sf.SoundFile:
    """The file opened for reading; UpcallError for an unreadable, empty, truncated or wrong one
    (a sample rate below :data:`MIN_RATE`)."""
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        if denied := why_unreadable(path):
            raise UpcallError(f"{path}: cannot read: {denied}") from None
        raise UpcallError(f"{path}: not readable audio ({e})") from None
    try:
        check_complete(path, f)
        if f.frames == 0:
            raise UpcallError(f"{path}: empty recording (no samples)")
        if not 0 <= channel < f.channels:
            raise UpcallError(f"{path}: has {f.channels} channel(s), no channel {channel}")
        if f.samplerate < MIN_RATE:
            raise UpcallError(
                f"{path}: sample rate {f.samplerate} Hz is below {MIN_RATE} Hz: it cannot hold "
                "the up-call band (50-250 Hz) with room for its anti-aliasing filter"
            )
    except UpcallError:
        f.close()
        raise
    return f


def duration_s(path: Path) -> float:
    with open_audio(path, channel=0) as f:
        return f.frames / f.samplerate


def blocks(path: Path, *, channel: int = 0, block_s: float = 600.0) -> Iterator[np.ndarray]:
    """The recording as consecutive float64 blocks at 2 kHz (full scale), ``block_s`` long."""
    with open_audio(path, channel=channel) as f:
        rate = f.samplerate
        if rate == RATE:
            n = max(1, round(block_s * rate))
            while len(x := f.read(n, dtype="float64", always_2d=True)):
                yield x[:, channel]
            _check_read(path, f)
            return
        ratio = Fraction(RATE, rate)
        n, ctx = max(1, round(block_s * rate)), round(CONTEXT_S * rate)
        prev = np.zeros(0)
        cur = f.read(n, dtype="float64", always_2d=True)[:, channel]
        done_out = 0  # output samples yielded so far
        while len(cur):
            nxt = f.read(n, dtype="float64", always_2d=True)[:, channel]
            x = np.concatenate([prev[-ctx:], cur, nxt[:ctx]])
            y = _resample(x, ratio)
            lead = len(prev[-ctx:]) * ratio  # output samples of left context
            begin = round(float(lead))
            out_total = int(np.ceil((f.tell() - len(nxt)) * ratio))  # output up to cur's end
            yield y[begin : begin + out_total - done_out]
            done_out = out_total
            prev, cur = np.concatenate([prev[-ctx:], cur]), nxt
        _check_read(path, f)


def read_span(path: Path, begin_s: float, end_s: float, *, channel: int = 0) -> np.ndarray:
    """The recording from ``begin_s`` to ``end_s`` as float64 at 2 kHz (full scale), read by
    seeking (a long file is never read whole): ``round((end_s - begin_s) * RATE)`` samples, the
    part outside the file zeros. At another rate the span is resampled with
    :data:`CONTEXT_S` of audio each side, as :func:`blocks` does."""
    n_out = round((end_s - begin_s) * RATE)
    if n_out <= 0:
        raise ValueError(f"empty span {begin_s}..{end_s} s")
    with open_audio(path, channel=channel) as f:
        rate = f.samplerate
        ctx = 0 if rate == RATE else round(CONTEXT_S * rate)
        first = max(0, int(np.floor(begin_s * rate)) - ctx)
        stop = min(f.frames, int(np.ceil(end_s * rate)) + ctx)
        if stop <= first:
            return np.zeros(n_out)
        f.seek(first)
        x = f.read(stop - first, dtype="float64", always_2d=True)[:, channel]
    y = x if rate == RATE else _resample(x, Fraction(RATE, rate))
    offset = round((begin_s - first / rate) * RATE)  # where begin_s falls in y (may be < 0)
    out = np.zeros(n_out)
    lo, hi = max(offset, 0), min(offset + n_out, len(y))
    if hi > lo:
        out[lo - offset : hi - offset] = y[lo:hi]
    return out


def _check_read(path: Path, f: sf.SoundFile) -> None:
    """UpcallError when the data ended before the frames the header declares (a cut file)."""
    if f.tell() != f.frames:
        raise UpcallError(
            f"{path}: truncated file (header declares {f.frames} frames, {f.tell()} could be read)"
        )


def _resample(x: np.ndarray, ratio: Fraction) -> np.ndarray:
    from scipy.signal import resample_poly  # its FIR filter band-limits below the new Nyquist

    return resample_poly(x, ratio.numerator, ratio.denominator)


@dataclass(frozen=True)
class Span:
    """The audio of ``count`` consecutive windows: ``samples`` float64 ((count - 1)·step +
    WINDOW,), window ``start + i`` being ``samples[i·step : i·step + WINDOW]``."""

    start: int  # index (in windows) of the first one in the file
    count: int
    samples: np.ndarray


def windows(chunks: Iterator[np.ndarray], *, step: int, batch: int = 512) -> Iterator[Windows]:
    """2-s windows every ``step`` samples (the last one ends at or before the audio's end), in
    batches of ``batch`` windows (the last one shorter).

    Batches start at multiples of ``batch`` whatever the block size, so a network sees the same
    batches and gives the same bits. A recording shorter than one window gives one window padded
    with zeros at the end.
    """
    for span in spans(chunks, step=step, batch=batch):
        view = np.lib.stride_tricks.sliding_window_view(span.samples, WINDOW)[::step]
        yield Windows(span.start, view[: span.count].copy())


def spans(chunks: Iterator[np.ndarray], *, step: int, batch: int = 512) -> Iterator[Span]:
    """The audio of the windows :func:`windows` gives, one contiguous :class:`Span` per batch
    (for a fully convolutional pass over it)."""
    buf = np.zeros(0)
    index = 0  # next window's number
    offset = 0  # file position (samples) of buf[0]
    total = 0

    def ready(final: bool) -> int:
        first = index * step - offset
        count = (len(buf) - first - WINDOW) // step + 1 if len(buf) - first >= WINDOW else 0
        return min(count, batch) if (count >= batch or final) else 0

    def cut(count: int) -> Span:
        first = index * step - offset
        return Span(index, count, buf[first : first + (count - 1) * step + WINDOW].copy())

    for chunk in chunks:
        buf = np.concatenate([buf, chunk])
        total += len(chunk)
        while count := ready(False):
            yield cut(count)
            index += count
        keep = index * step - offset  # samples no later window needs
        buf, offset = buf[keep:], offset + keep
    while count := ready(True):
        yield cut(count)
        index += count
    if index == 0 and total:
        yield Span(0, 1, np.pad(buf, (0, WINDOW - len(buf))))
