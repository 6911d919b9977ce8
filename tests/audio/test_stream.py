"""stream.read_span on real files: a span read by seeking is the whole file's audio at 2 kHz
(resampled by scipy's polyphase filter here) at that place, at the models' rate and at others,
stereo channels apart, and zeros where the span runs off the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from upcall.audio import stream


def _write(path, rate: int, seconds: float, channels: int = 1):
    rng = np.random.default_rng(7)
    x = 0.3 * rng.standard_normal((round(rate * seconds), channels))
    sf.write(path, x, rate, subtype="FLOAT" if path.suffix == ".wav" else "PCM_24")
    return sf.read(path, always_2d=True)[0]


@pytest.mark.parametrize(("name", "rate"), [("a.wav", 2000), ("b.flac", 8000), ("c.wav", 44100)])
def test_a_span_is_the_whole_files_audio_there(tmp_path, name, rate):
    path = tmp_path / name
    x = _write(path, rate, 12.0, channels=2)
    for channel in (0, 1):
        whole = x[:, channel] if rate == stream.RATE else resample_poly(x[:, channel], 2000, rate)
        for begin, end in ((4.0, 6.0), (3.2505, 7.75)):
            span = stream.read_span(path, begin, end, channel=channel)
            assert len(span) == round((end - begin) * stream.RATE)
            i = round(begin * stream.RATE)
            # away from the file's ends the seek-based read and the whole-file filter agree
            np.testing.assert_allclose(span, whole[i : i + len(span)], atol=2e-3)


def test_the_part_outside_the_file_is_zeros(tmp_path):
    path = tmp_path / "short.flac"
    _write(path, 8000, 3.0)
    span = stream.read_span(path, -1.0, 1.0)
    assert len(span) == 4000 and not span[:2000].any() and span[2000:].any()
    span = stream.read_span(path, 2.0, 5.0)
    assert len(span) == 6000 and span[:2000].any() and not span[2200:].any()
    assert not stream.read_span(path, 10.0, 12.0).any()
    with pytest.raises(ValueError, match="empty span"):
        stream.read_span(path, 2.0, 2.0)
