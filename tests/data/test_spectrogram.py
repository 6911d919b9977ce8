import numpy as np
import pytest
from matplotlib import mlab
from PIL import Image

from upcall.data.spectrogram import (
    MODES,
    compute,
    compute_batch,
    mode_settings,
    power_spectrogram,
    read_png,
    write_png,
)
from upcall.errors import UpcallError

RATE = 2000
T = np.arange(4000) / RATE


@pytest.fixture
def rng():
    return np.random.default_rng(20130)


def old_scipy_bytescale(data):
    """scipy.misc.bytescale as of SciPy 0.18 (what the tutorial's imsave called), one image."""
    cmin, cmax = data.min(), data.max()
    cscale = cmax - cmin
    if cscale == 0:
        cscale = 1
    scale = float(255 - 0) / cscale
    bytedata = (data * 1.0 - cmin) * scale + 0.4999
    bytedata[bytedata > 255] = 255
    bytedata[bytedata < 0] = 0
    return bytedata.astype(np.uint8)


def tutorial_reference(clip):
    """preprocess-aiff.py: specgram with matplotlib's defaults, then imsave's bytescale."""
    pxx = mlab.specgram(clip, NFFT=256, noverlap=128)[0]
    return old_scipy_bytescale(pxx)


def to_int16(x):
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def varied_clips(rng, n=200):
    """int16 clips of many kinds: noise at every level, silence, tones, sweeps, clipping, clicks."""
    kinds = []
    for i in range(n):
        level = 10 ** rng.uniform(0, 4.3)
        noise = rng.standard_normal(4000) * level
        kind = i % 8
        if kind == 0:
            x = noise
        elif kind == 1:  # silence-ish: all zero, ±1 LSB, a DC offset
            x = [np.zeros(4000), rng.integers(-1, 2, 4000), np.full(4000, 17.0)][i % 3]
        elif kind == 2:
            x = noise * 0.01 + level * np.sin(2 * np.pi * rng.uniform(20, 990) * T)
        elif kind == 3:  # an up-sweep 60 → 250 Hz in noise
            f = 60 + 190 * np.clip((T - 0.5) / 1.0, 0, 1)
            x = noise + 3 * level * np.sin(2 * np.pi * np.cumsum(f) / RATE) * (
                (T > 0.5) & (T < 1.5)
            )
        elif kind == 4:  # clipping: a loud tone hard-limited at full scale
            x = 1e5 * np.sin(2 * np.pi * rng.uniform(30, 300) * T) + noise
        elif kind == 5:  # a loud click in quiet noise
            x = noise * 0.01
            x[rng.integers(0, 4000)] = 32767
        elif kind == 6:  # full-scale alternation (Nyquist)
            x = np.where(np.arange(4000) % 2, 32767, -32768) * 1.0
        else:
            x = np.cumsum(noise) * 0.05  # brown noise: most power at the lowest bins
        kinds.append(to_int16(np.asarray(x, dtype=np.float64)))
    return np.stack(kinds)


def test_tutorial_mode_is_pixel_exact_against_matplotlib(rng):
    clips = varied_clips(rng, n=300)  # more than one internal FFT block of 256
    want = np.stack([tutorial_reference(c) for c in clips])
    got = compute_batch(clips)
    assert got.shape == (300, 129, 30) and got.dtype == np.uint8
    mismatch = np.flatnonzero((got != want).any(axis=(1, 2)))
    assert mismatch.size == 0, f"clips {mismatch.tolist()} differ from matplotlib + bytescale"
    assert (got.max(axis=(1, 2)) == 255).sum() > 280  # not vacuous: nearly all images span 0..255


# One window, a remainder shorter than the hop, exact hops, the clip ± 1, 15 s, 60 s.
LENGTHS = (256, 300, 384, 3999, 4001, 30_000, 120_000)


@pytest.mark.filterwarnings("ignore:Only one segment is calculated")  # mlab, for n = 256
@pytest.mark.parametrize("n", LENGTHS)
def test_any_length_is_pixel_exact_against_matplotlib(rng, n):
    clips = to_int16(rng.standard_normal((3, n)) * np.array([[30.0], [3000.0], [20000.0]]))
    clips[1, n // 3 :: 50] = 32767  # clicks, so the images are not all alike
    want = np.stack([tutorial_reference(c) for c in clips])
    got = compute_batch(clips)
    assert got.shape == (3, 129, 1 + (n - 256) // 128) == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(compute(clips[2]), want[2])
    assert (got.max(axis=(1, 2)) == 255).all()


@pytest.mark.parametrize("n", LENGTHS)
def test_enhanced_mode_takes_any_length(rng, n):
    x = to_int16(rng.standard_normal((2, n)) * 300)
    image = compute_batch(x, mode="enhanced")
    assert image.shape == (2, 129, 1 + (n - 256) // 128) and image.dtype == np.uint8
    lo, hi = MODES["enhanced"].range_db
    zero_db = 255 * -lo / (hi - lo)
    assert abs(image.mean() - zero_db) < 10  # noise sits near 0 dB above its local background
    if image.shape[2] >= 30:
        assert image.std() > 10  # and varies: not a constant image


def test_a_long_recording_is_normalised_as_one_image(rng):
    # tutorial mode: one min–max for the whole image, so a quiet stretch next to a loud one is
    # darker than the same stretch alone; its column count is that of mlab
    quiet = to_int16(rng.standard_normal(4000) * 100)
    loud = to_int16(rng.standard_normal(4000) * 10000)
    both = compute(np.concatenate([quiet, loud]))
    assert both.shape == (129, 61)
    assert both[:, :30].mean() < compute(quiet).mean() / 10


def test_power_is_bit_identical_to_mlab(rng):
    clips = varied_clips(rng, n=24)
    want = np.stack([mlab.specgram(c, NFFT=256, noverlap=128)[0] for c in clips])
    got = power_spectrogram(clips.astype(np.float64), fs=2.0, exact=True)
    np.testing.assert_array_equal(got, want)


def test_pyplot_specgram_gives_the_same_data(rng):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clip = varied_clips(rng, n=4)[3]
    pxx = plt.specgram(clip, NFFT=256, noverlap=128)[0]
    plt.close("all")
    np.testing.assert_array_equal(compute(clip), old_scipy_bytescale(pxx))


def test_constant_image_is_all_zeros():
    assert not compute(np.zeros(4000, np.int16)).any()


def test_row_zero_is_the_lowest_frequency():
    # 500 Hz is bin 500 / (2000 / 256) = 64 exactly; 62.5 Hz is bin 8
    for freq, row in ((500.0, 64), (62.5, 8)):
        image = compute(to_int16(10000 * np.sin(2 * np.pi * freq * T)))
        assert (image.argmax(axis=0) == row).all()
        assert (image[row] == 255).any()


def test_integer_and_full_scale_float_give_the_same_tutorial_pixels(rng):
    clips = varied_clips(rng, n=16)
    np.testing.assert_array_equal(compute_batch(clips), compute_batch(clips / 32768.0))


def test_compute_is_one_row_of_compute_batch(rng):
    clips = varied_clips(rng, n=5)
    for mode in MODES:
        batch = compute_batch(clips, mode=mode)
        np.testing.assert_array_equal(compute(clips[2], mode=mode), batch[2])


def sweep(rng, gain):
    noise = rng.standard_normal(4000) * 300
    f = 60 + 190 * np.clip((T - 0.5) / 1.0, 0, 1)
    call = 6000 * np.sin(2 * np.pi * np.cumsum(f) / RATE) * ((T > 0.5) & (T < 1.5))
    return to_int16((noise + call) * gain)


def test_enhanced_grey_levels_do_not_depend_on_gain(rng):
    clip = sweep(rng, 1.0)
    quieter = (clip.astype(np.float64) / 4).astype(np.float64) / 32768  # -12 dB, no rounding
    diff = compute(clip, mode="enhanced").astype(int) - compute(quieter, mode="enhanced")
    assert np.abs(diff).max() <= 1


def test_enhanced_shows_the_sweep_bright_on_a_fixed_background(rng):
    image = compute(sweep(rng, 1.0), mode="enhanced")
    lo, hi = MODES["enhanced"].range_db
    zero_db = 255 * -lo / (hi - lo)
    # the call rises from bin 8 to bin 32 over frames 8..22: each of those frames peaks on it
    peaks = image[:, 8:22].argmax(axis=0)
    assert ((peaks >= 7) & (peaks <= 33)).all() and (np.diff(peaks) >= 0).mean() > 0.8
    assert (image[:, 8:22].max(axis=0) >= 200).all()  # ≥ 18 dB above its background
    assert abs(np.median(image[60:]) - zero_db) < 15  # noise sits near 0 dB above background


def test_enhanced_silence_is_the_zero_db_grey():
    lo, hi = MODES["enhanced"].range_db
    image = compute(np.zeros(4000, np.int16), mode="enhanced")
    assert (image == int(255 * -lo / (hi - lo) + 0.5)).all()


def test_enhanced_removes_a_steady_tone_and_a_click(rng):
    noise = rng.standard_normal(4000) * 300
    tone = 5000 * np.sin(2 * np.pi * 500 * T)  # row 64, every frame
    click = np.zeros(4000)
    click[2000] = 30000  # every row, frames 14 and 15
    plain = compute(to_int16(noise), mode="enhanced").astype(float)
    image = compute(to_int16(noise + tone + click), mode="enhanced").astype(float)
    tutorial = compute(to_int16(noise + tone + click))
    assert (tutorial[64] == tutorial.max(axis=0)).all()  # the tutorial image is all tone
    assert image[64].mean() < plain.mean() + 40
    assert image[:, 14:16].mean() < plain.mean() + 40


def test_mode_settings_name_the_mode_and_geometry():
    settings = mode_settings("enhanced")
    assert settings["mode"] == "enhanced"
    assert (settings["nfft"], settings["noverlap"], settings["height"], settings["width"]) == (
        256,
        128,
        129,
        30,
    )
    assert settings["range_db"] == (-5.0, 25.0)
    assert mode_settings("tutorial")["fs"] == 2.0


def test_bad_arguments():
    with pytest.raises(UpcallError, match="unknown spectrogram mode 'loud'"):
        compute(np.zeros(4000), mode="loud")
    with pytest.raises(ValueError, match=r"shape \(N, n\)"):
        compute_batch(np.zeros(4000))
    with pytest.raises(ValueError, match="255 samples is shorter than one 256-sample window"):
        compute_batch(np.zeros((2, 255)))
    with pytest.raises(ValueError, match="one clip"):
        compute(np.zeros((1, 4000)))
    with pytest.raises(ValueError, match="NaN"):
        compute(np.full(4000, np.nan))


def test_png_round_trip_is_8_bit_grey_30_wide_129_tall(tmp_path, rng):
    image = compute(varied_clips(rng, n=1)[0])
    write_png(tmp_path / "a" / "x.png", image)
    with Image.open(tmp_path / "a" / "x.png") as im:
        assert (im.mode, im.size, im.format) == ("L", (30, 129), "PNG")
    np.testing.assert_array_equal(read_png(tmp_path / "a" / "x.png"), image)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.png"]  # no temporary left


def test_write_png_refuses_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="2-D uint8"):
        write_png(tmp_path / "x.png", np.zeros((129, 30)))
    assert not (tmp_path / "x.png").exists()


def test_read_png_errors_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UpcallError, match=r"bad\.png: not a readable PNG"):
        read_png(tmp_path / "bad.png")
    Image.new("RGB", (30, 129)).save(tmp_path / "rgb.png")
    with pytest.raises(UpcallError, match=r"rgb\.png: PNG mode RGB, expected 8-bit greyscale"):
        read_png(tmp_path / "rgb.png")


def test_fine_mode_is_65_by_59_and_local(rng):
    """A window cut from a long recording's fine image is the window computed alone."""
    from upcall.data.spectrogram import clip_shape

    assert clip_shape("fine") == (65, 59) and clip_shape("tutorial") == (129, 30)
    assert not MODES["fine"].per_image and MODES["tutorial"].per_image
    long = to_int16(rng.normal(0, 3000, 40 * 64 + 4000))
    whole = compute(long, mode="fine")
    assert whole.shape == (65, 1 + (len(long) - 256) // 64)
    for k in (0, 7, 40):
        alone = compute(long[k * 64 : k * 64 + 4000], mode="fine")
        assert alone.shape == (65, 59)
        assert np.abs(alone.astype(int) - whole[:, k : k + 59]).max() <= 1  # FFT rounding only


def test_fine_mode_ignores_gain_and_shows_the_sweep(rng):
    clip = sweep(rng, 1.0)
    quieter = clip.astype(np.float64) / 4 / 32768
    image = compute(clip, mode="fine")
    assert np.abs(image.astype(int) - compute(quieter, mode="fine")).max() <= 1
    # the call rises from 62.5 to 250 Hz (bins 8..32) between 0.5 and 1.5 s (columns ~12..42)
    peaks = image[:, 16:40].argmax(axis=0)
    assert ((peaks >= 7) & (peaks <= 33)).all() and (np.diff(peaks) >= 0).mean() > 0.8
