"""What the reviewer sees and hears of one detection, made on request and never stored.

The stretch is the detection with :data:`CONTEXT_S` of the recording each side, read by seeking
(:func:`upcall.audio.stream.read_span`, 2 kHz). The spectrogram is a PNG with labelled axes
(time in the recording, s; frequency, Hz) and the detection's box drawn on it. The audio is a
16-bit WAV of the same samples; ×2, ×4 and ×8 play them faster by stating a higher sample rate
in the header, as Raven's playback rate does (pitch and tempo rise together: a 100 Hz up-call is
heard at 800 Hz at ×8).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from upcall.audio import stream
from upcall.audio.raven import Selection

CONTEXT_S = 3.0  # seconds shown and played each side of a detection
SPEEDS = (1, 2, 4, 8)
# Browsers play 3 kHz and up (the Web Audio API's floor); at ×1 the 2 kHz samples go out
# upsampled ×2, which changes no sound below 1 kHz.
MIN_PLAY_RATE = 3000
NPERSEG, NOVERLAP = 256, 240  # 128 ms windows (7.8 Hz bins) every 8 ms, for 2-s up-calls
TOP_HZ = 500  # up-calls sweep 50–250 Hz; higher only when the box reaches there
PEAK = 0.9  # the WAV is scaled to this peak (a gain change, as a player's volume)


def span(s: Selection) -> tuple[float, float]:
    """The stretch of the recording shown and played for ``s`` (seconds; never before 0)."""
    return max(0.0, s.begin_s - CONTEXT_S), s.end_s + CONTEXT_S


def spectrogram_png(audio: Path, s: Selection, *, title: str = "") -> bytes:
    """The spectrogram of ``s``'s stretch of ``audio`` with its box, as PNG bytes."""
    from matplotlib.patches import Rectangle
    from scipy.signal import spectrogram

    from upcall.plotting import png_bytes, pyplot

    begin, end = span(s)
    x = stream.read_span(audio, begin, end, channel=s.channel - 1)
    f, t, power = spectrogram(x, fs=stream.RATE, nperseg=NPERSEG, noverlap=NOVERLAP)
    top = min(stream.RATE / 2, max(TOP_HZ, s.high_hz * 1.2))
    keep = f <= top
    db = 10 * np.log10(power[keep] + 1e-12)
    lo, hi = np.percentile(db, [20, 99.7])  # the noise floor dark, the call bright
    fig, ax = pyplot().subplots(figsize=(9, 3.6), dpi=100)
    ax.pcolormesh(begin + t, f[keep], db, shading="auto", cmap="magma", vmin=lo, vmax=hi)
    box = Rectangle((s.begin_s, s.low_hz), s.end_s - s.begin_s, s.high_hz - s.low_hz,
                    fill=False, edgecolor="cyan", linewidth=1.5)  # fmt: skip
    ax.add_patch(box)
    ax.set_xlim(begin, end)
    ax.set_ylim(0, top)
    ax.set_xlabel("Time in the recording (s)")
    ax.set_ylabel("Frequency (Hz)")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def wav_bytes(audio: Path, s: Selection, *, speed: int = 1) -> bytes:
    """``s``'s stretch of ``audio`` as a 16-bit mono WAV played ``speed`` times faster."""
    import soundfile as sf
    from scipy.signal import resample_poly

    if speed not in SPEEDS:
        raise ValueError(f"speed must be one of {', '.join(map(str, SPEEDS))}, got {speed}")
    begin, end = span(s)
    x = stream.read_span(audio, begin, end, channel=s.channel - 1)
    rate = stream.RATE * speed
    if rate < MIN_PLAY_RATE:
        x, rate = resample_poly(x, 2, 1), rate * 2
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        x = x * (PEAK / peak)
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
