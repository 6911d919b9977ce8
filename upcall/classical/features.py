"""Clip → the classical baseline's features (after Kridler & Dobson, the 2013 Kaggle winners).

    4000 samples at 2000 Hz
      → log-power spectrogram: NFFT 256, hop 64 (129 rows of 7.8 Hz × 59 frames of 32 ms)
      → contrast enhancement: clip to mean ± k·std, then subtract the local mean with an inner
        exclusion window, once along time (image "H") and once along frequency (image "V")
      → features: per template of the bank, the maximum normalised cross-correlation
        (``skimage.feature.match_template``'s, :mod:`upcall.classical.correlate`) on H and on V
        and where it is (row, column);
        per-row time statistics of H in the up-call band; high-frequency "click" statistics;
        and the median-normalised image's statistics and up-sweep kernel matches
        (:mod:`upcall.classical.shapes`)

Every step works on one clip at a time, so a clip's features never depend on which other clips
were computed with it (training, validation and ``upcall classify`` give the same numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from upcall.classical.correlate import match
from upcall.classical.shapes import BIN_HZ, HOP, NFFT, RATE, shape_feature_names, shape_features

# The exclusion-window mean is the enhanced spectrogram mode's; one definition serves both.
from upcall.data.spectrogram import _background, as_full_scale

__all__ = ["BIN_HZ", "HOP", "NFFT", "RATE", "match"]  # match: templates' and the benchmark's

FEATURES_VERSION = 2  # 2: the median-normalised image's features (shapes) added; 1 before


@dataclass(frozen=True)
class FeatureSettings:
    """How the images and features are made; saved in config.json, so classify redoes them."""

    version: int = FEATURES_VERSION  # which features: a job of another version is refused
    clip_std: float = 1.5  # the winners' k: clip to mean ± k·std before the local means
    time_window: tuple[int, int] = (3, 31)  # (inner, outer) frames of the along-time mean (H)
    freq_window: tuple[int, int] = (3, 63)  # (inner, outer) rows of the along-frequency mean (V)
    band: tuple[int, int] = (4, 48)  # rows [lo, hi): 31–375 Hz, up-calls (50–250 Hz) and margin
    high: tuple[int, int] = (52, 129)  # rows [lo, hi): 406–1000 Hz, above any up-call: clicks
    # up-calls sweep 40–140 Hz in 0.5–1.5 s: 16 rows (125 Hz) × 24 frames (0.77 s) hold most
    # of one; a shorter template would match any short tonal noise as well
    template_shape: tuple[int, int] = (16, 24)


def log_power(samples: np.ndarray) -> np.ndarray:
    """(n,) int16 or full-scale float → float64 (129, frames) dB (row 0 = DC)."""
    x = as_full_scale(samples)
    if x.ndim != 1 or len(x) < NFFT:
        raise ValueError(f"expected one clip of at least {NFFT} samples, got shape {x.shape}")
    window = np.hanning(NFFT)
    segments = np.lib.stride_tricks.sliding_window_view(x, NFFT)[::HOP] * window  # (T, NFFT)
    spec = np.fft.rfft(segments, axis=-1)
    power = spec.real**2 + spec.imag**2
    # floor at -200 dB re full scale: digital silence must not give -inf (16-bit noise is ~-130)
    return 10.0 * np.log10(np.maximum(power, 1e-20)).T  # (F, T)


def enhance(db: np.ndarray, s: FeatureSettings) -> tuple[np.ndarray, np.ndarray]:
    """(F, T) dB → (H, V), each float32 (band rows, T): the two contrast-enhanced images.

    Clipping first keeps a loud click or tonal from dragging the local means that follow. H has
    each row's steady level removed (tonal noise, coloured background), V each frame's broadband
    level (clicks, flow noise); the inner window keeps a call out of its own background.
    """
    mean, spread = db.mean(), s.clip_std * db.std()
    clipped = np.clip(db, mean - spread, mean + spread)[None]  # (1, F, T): _background's layout
    h = clipped - _background(clipped, axis=2, window=s.time_window)
    v = clipped - _background(clipped, axis=1, window=s.freq_window)
    lo, hi = s.band
    return h[0, lo:hi].astype(np.float32), v[0, lo:hi].astype(np.float32)


def row_statistics(image: np.ndarray) -> np.ndarray:
    """Per row of (R, T): time centroid, width, skew of the positive part, and total variation.

    A call lights a short stretch of each row it crosses, at a time that rises with frequency;
    noise spreads evenly. A row with nothing above its background has centroid mid-clip and
    width 0. Returns float32 (4 R,).
    """
    t = np.arange(image.shape[1], dtype=np.float64)
    pos = np.maximum(image.astype(np.float64), 0.0)
    mass = pos.sum(axis=1)
    p = pos / np.where(mass > 0, mass, 1.0)[:, None]
    p[mass <= 0] = 1.0 / len(t)  # uniform: no evidence of anything in that row
    centroid = p @ t
    dev = t[None, :] - centroid[:, None]
    width = np.sqrt((p * dev**2).sum(axis=1))
    skew = (p * dev**3).sum(axis=1) / np.maximum(width, 1e-6) ** 3
    variation = np.abs(np.diff(image, axis=1)).sum(axis=1)
    return np.concatenate([centroid, width, skew, variation]).astype(np.float32)


def click_statistics(db: np.ndarray, v: np.ndarray, s: FeatureSettings) -> np.ndarray:
    """Broadband clicks and high-frequency noise: statistics of the frames' level above the
    up-call band, relative to the clip's typical frame, and how they line up with the band.

    A click is a vertical bar: loud in a few frames across all rows, the high ones included,
    where an up-call never reaches. Returns float32 (8,).
    """
    lo, hi = s.high
    high = db[lo:hi].mean(axis=0)  # (T,) mean dB per frame above the call band
    rel = high - np.median(high)
    band = db[s.band[0] : s.band[1]]
    band_frames = band.mean(axis=0) - np.median(band.mean(axis=0))
    bar = v.mean(axis=0)  # per-frame broadband excess left in V
    return np.array(
        [
            rel.max(),
            rel.std(),
            (rel > 3.0).sum(),
            (rel > 10.0).sum(),
            np.corrcoef(rel, band_frames)[0, 1] if rel.std() > 0 and band_frames.std() > 0 else 0,
            bar.max(),
            np.median(band) - np.median(db[lo:hi]),  # how coloured: band above high rows
            band.std(),
        ],
        dtype=np.float32,
    )


def one_thread():
    """A context in which BLAS and OpenMP use one thread (threadpoolctl, scikit-learn's own).

    The baseline runs in parallel over clips (processes), so a second BLAS or OpenMP thread
    inside one only waits for a core, spinning: on the shared 2-core machine (load ≈ 11) the
    (1044×384)·(384×12) product of :func:`match` took 7.9 ms on two OpenBLAS threads against
    0.66 ms on one, and 20 boosting iterations on 27,000 clips 60 s against 8 s. Libraries
    loaded later are not limited: import scikit-learn's estimator before entering.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def clip_features(samples: np.ndarray, bank: np.ndarray, s: FeatureSettings) -> np.ndarray:
    """All features of one clip: float32 (feature_count(K),) for a bank (K, 2, h, w) of
    templates cut from H (index 0) and V (index 1)."""
    db = log_power(samples)
    h, v = enhance(db, s)
    return np.concatenate(
        [
            match(h, bank[:, 0]).ravel(),
            match(v, bank[:, 1]).ravel(),
            row_statistics(h),
            click_statistics(db, v, s),
            shape_features(db),
        ]
    )


def feature_names(templates: int, s: FeatureSettings) -> list[str]:
    """The name of every column clip_features gives, in order (for importance listings)."""
    names = [f"{img}{k}_{what}" for img in "HV" for k in range(templates) for what in "mrc"]
    rows = range(s.band[0], s.band[1])
    names += [f"row{r}_{stat}" for stat in ("centroid", "width", "skew", "tv") for r in rows]
    names += [
        "click_max",
        "click_std",
        "click_frames3",
        "click_frames10",
        "click_band_corr",
        "bar_max",
        "band_over_high",
        "band_std",
    ]
    return names + shape_feature_names()
