"""What the reviewer sees and hears: the spectrogram PNG of the stretch with its box, and the
WAV of the same samples at ×1–×8 (a higher rate in the header, the samples unchanged)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.review.detections import make_detections
from upcall.audio import stream
from upcall.review import media


@pytest.fixture(scope="module")
def call(tmp_path_factory):
    dets = make_detections(tmp_path_factory.mktemp("media"))
    rel = "site1/a.wav"
    return dets.audio / rel, dets.truth[rel][0]


def wav(data: bytes):
    x, rate = sf.read(io.BytesIO(data), dtype="float64")
    return x, rate, sf.info(io.BytesIO(data)).subtype


def test_the_audio_is_the_stretch_at_each_speed(call):
    audio, s = call
    begin, end = media.span(s)
    assert (begin, end) == (s.begin_s - media.CONTEXT_S, s.end_s + media.CONTEXT_S)
    n = round((end - begin) * stream.RATE)
    played = {v: wav(media.wav_bytes(audio, s, speed=v)) for v in media.SPEEDS}
    for v in (2, 4, 8):
        x, rate, subtype = played[v]
        assert (rate, len(x), subtype) == (stream.RATE * v, n, "PCM_16")
        np.testing.assert_array_equal(x, played[2][0])  # the same samples, faster
    # the same audio as the recording (scaled to a 0.9 peak, 16 bits)
    source = stream.read_span(audio, begin, end)
    x = played[2][0]
    np.testing.assert_allclose(x, source * (0.9 / np.abs(source).max()), atol=1e-4)
    assert np.abs(x).max() == pytest.approx(0.9, abs=1e-4)
    # ×1: upsampled to a rate browsers play, the same length in seconds
    x1, rate1, _ = played[1]
    assert rate1 == 2 * stream.RATE >= media.MIN_PLAY_RATE and len(x1) == 2 * n
    with pytest.raises(ValueError, match="speed must be one of 1, 2, 4, 8"):
        media.wav_bytes(audio, s, speed=3)


def test_a_detection_at_the_start_plays_from_zero(call):
    audio, s = call
    early = type(s)(0.5, 1.5, 60, 200, score=0.9)
    x, _, _ = wav(media.wav_bytes(audio, early, speed=2))
    assert len(x) == round((1.5 + media.CONTEXT_S) * stream.RATE)


def test_the_spectrogram_shows_the_stretch_with_its_box(call):
    audio, s = call
    png = media.spectrogram_png(audio, s, title="site1/a.wav")
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    assert image.shape == (360, 900, 3)
    cyan = (image[..., 0] < 60) & (image[..., 1] > 190) & (image[..., 2] > 190)
    rows, cols = np.nonzero(cyan)
    assert len(rows) > 200  # the box's four sides
    # the box spans its share of the plot's width: (end - begin) of the stretch shown
    begin, end = media.span(s)
    share = (cols.max() - cols.min()) / (s.end_s - s.begin_s) * (end - begin) / image.shape[1]
    assert 0.6 < share < 1.0  # the axes take most of the figure's width
