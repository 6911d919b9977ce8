import numpy as np
import pytest
import soundfile as sf

from upcall.audio.clip import read_clip
from upcall.errors import UpcallError


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def pcm(rng):
    return rng.integers(-20000, 20000, 4000).astype(np.int16)


def write(path, data, rate=2000, **kw):
    sf.write(path, data, rate, **kw)
    return path


@pytest.mark.parametrize(
    "name, kw",
    [("c.aiff", {"format": "AIFF"}), ("c.aif", {"format": "AIFF"}), ("c.wav", {}), ("c.flac", {})],
)
def test_16_bit_pcm_is_read_as_the_raw_int16_samples(tmp_path, pcm, name, kw):
    path = write(tmp_path / name, pcm, subtype="PCM_16", **kw)
    got = read_clip(path)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, pcm)


def test_float_files_are_read_as_float64_full_scale(tmp_path, rng):
    x = rng.uniform(-0.9, 0.9, 4000).astype(np.float32)
    got = read_clip(write(tmp_path / "f.wav", x, subtype="FLOAT"))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, x.astype(np.float64))


def test_24_bit_pcm_is_float64(tmp_path, pcm):
    got = read_clip(write(tmp_path / "c.wav", pcm, subtype="PCM_24"))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, pcm / 32768.0)


def test_wrong_rate_is_rejected_or_resampled(tmp_path):
    t = np.arange(8000) / 4000
    path = write(
        tmp_path / "r.wav",
        (0.5 * np.sin(2 * np.pi * 100 * t)).astype(np.float32),
        rate=4000,
        subtype="FLOAT",
    )
    with pytest.raises(UpcallError, match=r"r\.wav: sample rate 4000 Hz, expected 2000 Hz"):
        read_clip(path)
    got = read_clip(path, resample=True)
    assert got.shape == (4000,) and got.dtype == np.float64
    want = 0.5 * np.sin(2 * np.pi * 100 * np.arange(4000) / 2000)
    # resample_poly's filter settles within a few dozen samples of the ends
    np.testing.assert_allclose(got[100:-100], want[100:-100], atol=2e-3)


def test_stereo_is_rejected_or_mixed_down(tmp_path, rng):
    both = rng.integers(-1000, 1000, (4000, 2)).astype(np.int16)
    path = write(tmp_path / "s.aiff", both, format="AIFF", subtype="PCM_16")
    with pytest.raises(UpcallError, match=r"s\.aiff: 2 channels, expected mono"):
        read_clip(path)
    got = read_clip(path, mixdown=True)
    np.testing.assert_array_equal(got, both.astype(np.float64).mean(axis=1) / 32768)


def test_short_clip_is_rejected_or_padded(tmp_path, pcm):
    path = write(tmp_path / "short.aiff", pcm[:3000], format="AIFF", subtype="PCM_16")
    with pytest.raises(UpcallError, match=r"short\.aiff: clip too short: 3000 samples = 1\.5 s"):
        read_clip(path)
    with pytest.raises(UpcallError, match="too short"):
        read_clip(path, fit="trim")
    for fit in ("pad", "pad-trim"):
        got = read_clip(path, fit=fit)
        assert got.dtype == np.int16
        np.testing.assert_array_equal(got, np.concatenate([pcm[:3000], np.zeros(1000, np.int16)]))


def test_long_clip_is_rejected_or_trimmed(tmp_path, rng):
    pcm = rng.integers(-999, 999, 5000).astype(np.int16)
    path = write(tmp_path / "long.wav", pcm, subtype="PCM_16")
    with pytest.raises(UpcallError, match=r"long\.wav: clip too long: 5000 samples = 2\.5 s"):
        read_clip(path, fit="pad")
    for fit in ("trim", "pad-trim"):
        np.testing.assert_array_equal(read_clip(path, fit=fit), pcm[:4000])


def test_other_lengths_and_rates_can_be_asked_for(tmp_path, pcm):
    path = write(tmp_path / "c.wav", pcm, rate=1000, subtype="PCM_16")
    np.testing.assert_array_equal(read_clip(path, rate=1000, seconds=4.0), pcm)


def test_empty_file(tmp_path):
    (tmp_path / "e.aiff").write_bytes(b"")
    with pytest.raises(UpcallError, match=r"e\.aiff: empty file$"):
        read_clip(tmp_path / "e.aiff")


def test_missing_file(tmp_path):
    with pytest.raises(UpcallError, match=r"gone\.aiff: cannot read"):
        read_clip(tmp_path / "gone.aiff")


def test_not_audio(tmp_path):
    (tmp_path / "t.aiff").write_text("clip_name,label\ntrain1.aiff,0\n" * 50)
    with pytest.raises(
        UpcallError, match=r"t\.aiff: not a readable audio file \(Format not recognised\)"
    ):
        read_clip(tmp_path / "t.aiff")


@pytest.mark.parametrize("name, kw", [("t.aiff", {"format": "AIFF"}), ("t.wav", {})])
def test_truncated_file(tmp_path, pcm, name, kw):
    whole = write(tmp_path / ("whole" + name), pcm, subtype="PCM_16", **kw).read_bytes()
    (tmp_path / name).write_bytes(whole[:5000])
    with pytest.raises(UpcallError, match=rf"{name}: truncated file"):
        read_clip(tmp_path / name, fit="pad")  # padding must not hide a cut-off file


def test_truncated_flac(tmp_path, pcm):
    whole = write(tmp_path / "whole.flac", pcm, subtype="PCM_16").read_bytes()
    (tmp_path / "t.flac").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UpcallError, match=r"t\.flac: (truncated file|cannot decode audio)"):
        read_clip(tmp_path / "t.flac")


def test_no_samples(tmp_path):
    path = write(tmp_path / "z.aiff", np.zeros(0, np.int16), format="AIFF", subtype="PCM_16")
    with pytest.raises(UpcallError, match=r"z\.aiff: no samples"):
        read_clip(path, fit="pad")


def test_non_finite_samples(tmp_path):
    x = np.zeros(4000, np.float32)
    x[7] = np.nan
    path = write(tmp_path / "n.wav", x, subtype="FLOAT")
    with pytest.raises(UpcallError, match=r"n\.wav: contains NaN or infinite samples"):
        read_clip(path)


def test_unknown_fit(tmp_path, pcm):
    with pytest.raises(UpcallError, match=r"unknown --fit .stretch."):
        read_clip(write(tmp_path / "c.wav", pcm), fit="stretch")
