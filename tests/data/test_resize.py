"""DIGITS's resize modes: exact geometry and pixels against Pillow's bilinear resize."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from upcall.data.resize import bilinear_stack, load_image, py2_round, resize, resize_stack
from upcall.errors import UpcallError


@pytest.fixture
def spectrogram() -> np.ndarray:
    # The tutorial's shape: 129 tall × 30 wide.
    return np.random.default_rng(1).integers(0, 256, (129, 30), dtype=np.uint8)


def pillow(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def test_py2_round_takes_halves_away_from_zero():
    assert [py2_round(x) for x in (0.5, 1.5, 2.5, -2.5, 422.5, 0.49, 3.0)] == [
        1,
        2,
        3,
        -3,
        423,
        0,
        3,
    ]


def test_squash_is_pillow_bilinear(spectrogram):
    out = resize(spectrogram, height=256, width=256, mode="squash")
    assert out.shape == (256, 256) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, pillow(spectrogram, 256, 256))


def test_bilinear_stack_is_pillow_byte_for_byte():
    # Random geometries (up and down, odd, one pixel) plus the four DIGITS modes' sizes for the
    # tutorial's 129x30 spectrograms; images include flat 255 and 0/255 noise, the extremes of
    # the fixed-point sums. Shrinking rows while changing width takes the Pillow fallback.
    rng = np.random.default_rng(7)
    sizes = [(129, 30, 256, 256), (129, 30, 1101, 256), (129, 30, 256, 60), (129, 30, 415, 98)]
    sizes += [(30, 129, 64, 275), (1, 1, 3, 5), (5, 1, 1, 1), (64, 64, 17, 64), (40, 9, 99, 3)]
    sizes += [tuple(int(v) for v in rng.integers(1, 90, 4)) for _ in range(150)]
    for h, w, height, width in sizes:
        images = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
        images[0] = 255
        images[1] = rng.choice(np.array([0, 255], np.uint8), (h, w))
        out = bilinear_stack(images, height=height, width=width)
        assert out.shape == (3, height, width) and out.dtype == np.uint8
        for image, resized in zip(images, out, strict=True):
            np.testing.assert_array_equal(resized, pillow(image, height, width), str((h, w)))


def test_bilinear_stack_of_colour_images_is_pillow_per_image():
    rng = np.random.default_rng(8)
    images = rng.integers(0, 256, (2, 13, 7, 3), dtype=np.uint8)
    out = bilinear_stack(images, height=40, width=11)
    for image, resized in zip(images, out, strict=True):
        np.testing.assert_array_equal(resized, pillow(image, 40, 11))


@pytest.mark.parametrize("mode", ["squash", "crop", "fill", "half_crop"])
def test_resize_stack_is_resize_per_image(mode):
    images = np.random.default_rng(3).integers(0, 256, (5, 129, 30), dtype=np.uint8)
    stack = resize_stack(
        images,
        height=64,
        width=48,
        mode=mode,
        rngs=[np.random.default_rng(k) for k in range(5)],
    )
    for k, image in enumerate(images):
        single = resize(image, height=64, width=48, mode=mode, rng=np.random.default_rng(k))
        np.testing.assert_array_equal(stack[k], single)
    if mode in ("fill", "half_crop"):
        with pytest.raises(ValueError, match="one per image"):
            resize_stack(images, height=64, width=48, mode=mode, rngs=[np.random.default_rng()])


def test_same_size_is_returned_unchanged(spectrogram):
    assert resize(spectrogram, height=129, width=30, mode="fill") is spectrogram


def test_crop_scales_to_cover_then_centre_crops(spectrogram):
    out = resize(spectrogram, height=256, width=256, mode="crop")
    # width 30 -> 256 sets the scale; height 129 -> round(129 / (30/256)) = 1101; start
    # round((1101 - 256) / 2) = round(422.5) = 423 with Python 2's rounding (422 with Python 3's).
    np.testing.assert_array_equal(out, pillow(spectrogram, 1101, 256)[423 : 423 + 256])


def test_crop_of_a_wide_image_crops_columns():
    wide = np.random.default_rng(2).integers(0, 256, (30, 129), dtype=np.uint8)
    out = resize(wide, height=64, width=64, mode="crop")
    # height sets the scale: 129 / (30/64) = 275.2 -> 275 wide, start round(105.5) = 106.
    np.testing.assert_array_equal(out, pillow(wide, 64, 275)[:, 106 : 106 + 64])


def test_fill_fits_and_pads_both_sides_with_the_same_noise(spectrogram):
    out = resize(spectrogram, height=256, width=256, mode="fill", rng=np.random.default_rng(0))
    # height sets the scale: 30 / (129/256) = 59.53 -> 60 wide; (256 - 60) / 2 = 98 columns each side.
    assert out.shape == (256, 256)
    np.testing.assert_array_equal(out[:, 98:158], pillow(spectrogram, 256, 60))
    np.testing.assert_array_equal(out[:, :98], out[:, 158:])
    assert out[:, :98].max() <= 254  # DIGITS's randint(0, 255) never draws 255
    again = resize(spectrogram, height=256, width=256, mode="fill", rng=np.random.default_rng(0))
    other = resize(spectrogram, height=256, width=256, mode="fill", rng=np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out[:, :98], other[:, :98])


def test_fill_grows_an_odd_gap_by_one_pixel():
    image = np.full((100, 50), 7, np.uint8)
    out = resize(image, height=64, width=64, mode="fill", rng=np.random.default_rng(0))
    # 50 / (100/64) = 32 wide: even gap. 45 wide would give 28.8 -> 29, odd -> 30.
    np.testing.assert_array_equal(out[:, 16:48], pillow(image, 64, 32))
    odd = resize(
        np.full((100, 45), 7, np.uint8),
        height=64,
        width=64,
        mode="fill",
        rng=np.random.default_rng(0),
    )
    np.testing.assert_array_equal(odd[:, 17:47], pillow(np.full((100, 45), 7, np.uint8), 64, 30))


def test_half_crop_uses_the_mean_ratio(spectrogram):
    out = resize(spectrogram, height=256, width=256, mode="half_crop", rng=np.random.default_rng(0))
    # ratio (30/256 + 129/256) / 2 = 0.3105: 30 -> 97 (+1 for an even gap = 98), 129 -> 415;
    # crop rows from round(159 / 2) = 80; pad (256 - 98) / 2 = 79 columns of noise each side.
    assert out.shape == (256, 256)
    np.testing.assert_array_equal(out[:, 79:177], pillow(spectrogram, 415, 98)[80 : 80 + 256])
    np.testing.assert_array_equal(out[:, :79], out[:, 177:])


def test_bad_arguments_are_refused(spectrogram):
    with pytest.raises(ValueError, match="unknown resize mode"):
        resize(spectrogram, height=8, width=8, mode="stretch")
    with pytest.raises(ValueError, match="pass rng"):
        resize(spectrogram, height=8, width=8, mode="fill")
    with pytest.raises(ValueError, match="uint8"):
        resize(spectrogram.astype(np.float32), height=8, width=8)


def test_load_image_converts_to_grey_and_names_bad_files(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "red.png")
    grey = load_image(tmp_path / "red.png", channels=1)
    assert grey.shape == (4, 5) and grey[0, 0] == 76  # ITU-R 601 luma of pure red
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UpcallError, match=r"bad\.png: cannot read image"):
        load_image(tmp_path / "bad.png")
