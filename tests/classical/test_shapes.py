"""The median-normalised image and its up-sweep kernels (upcall.classical.shapes)."""

from __future__ import annotations

import numpy as np

from upcall.classical.features import log_power, one_thread
from upcall.classical.shapes import (
    KERNEL_CURVES,
    KERNEL_SHAPES,
    ROWS,
    kernel,
    kernel_banks,
    kernel_matches,
    normalised,
    shape_feature_names,
    shape_features,
)

RATE = 2000


def sweep(f0: float, f1: float, start: float, seconds: float, noise: float, seed: int):
    """A 2-s clip: white noise and a linear sweep from f0 to f1 Hz (int16)."""
    rng = np.random.default_rng(seed)
    t = np.arange(4000) / RATE
    x = rng.normal(scale=noise, size=4000)
    on = (t >= start) & (t < start + seconds)
    u = (t[on] - start) / seconds
    phase = 2 * np.pi * np.cumsum(f0 + (f1 - f0) * u) / RATE
    x[on] += 0.1 * np.sin(phase) * np.hanning(on.sum())
    return np.round(x * 32767).astype(np.int16)


def test_a_kernel_rises_from_bottom_left_to_top_right_and_has_zero_mean():
    for curve in KERNEL_CURVES:
        k = kernel(10, 24, curve)
        assert k.shape == (10, 24) and abs(float(k.mean())) < 1e-6
        assert k[:, 0].argmax() == 0 and k[:, -1].argmax() == 9  # row 0 = lowest frequency
    assert [b.shape for b in kernel_banks()] == [(len(KERNEL_CURVES), *s) for s in KERNEL_SHAPES]


def test_a_steady_tonal_and_a_click_vanish_from_the_normalised_image():
    rng = np.random.default_rng(0)
    t = np.arange(4000) / RATE
    x = rng.normal(scale=0.01, size=4000) + 0.2 * np.sin(2 * np.pi * 150 * t)
    x[2000:2004] += 0.9  # a click: every row lit in a frame or two
    z = normalised(log_power(np.round(x * 32767).astype(np.int16)))
    assert z.shape == (ROWS[1] - ROWS[0], 59)
    tonal_row = round(150 / (RATE / 256)) - ROWS[0]
    # 0.2 of full scale is ~40 dB above the noise: left as a level of its own, it would be the
    # image; after the medians it is within half a standard deviation, as is every frame
    assert abs(np.median(z[tonal_row])) < 0.5 and np.abs(np.median(z, axis=0)).max() < 0.5


def test_an_up_sweep_matches_the_kernels_better_than_a_down_sweep_and_names_fit():
    names = shape_feature_names()
    with one_thread():
        up = shape_features(log_power(sweep(70, 170, 0.5, 1.0, 0.02, 1)))
        down = shape_features(log_power(sweep(170, 70, 0.5, 1.0, 0.02, 1)))
    assert up.shape == down.shape == (len(names),) and up.dtype == np.float32
    best = [i for i, n in enumerate(names) if n.startswith("K") and n.endswith("_m")]
    assert up[best].max() > 0.5 and up[best].max() > down[best].max() + 0.2
    slope = names.index("ridge_slope")
    assert up[slope] > 0 > down[slope]  # the strongest frames' rows rise with time


def test_kernel_matches_in_one_fft_pass_are_the_window_matrix_matches():
    from upcall.classical.correlate import match

    z = normalised(log_power(sweep(60, 160, 0.2, 1.2, 0.02, 2)))
    z[:8, :20] = 0.0  # a flat patch: match's zero where a window has no variance
    with one_thread():
        ours = kernel_matches(z)
        theirs = np.concatenate([match(z, bank) for bank in kernel_banks()])
    np.testing.assert_allclose(ours[:, 0], theirs[:, 0], atol=1e-6)
    np.testing.assert_array_equal(ours[:, 1:], theirs[:, 1:])
