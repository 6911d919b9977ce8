import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from upcall.audio.clip import read_clip
from upcall.cli import main
from upcall.data import render as spectrograms
from upcall.data.pngroot import ReadOptions, SpectrogramSettings
from upcall.data.spectrogram import compute, read_png
from upcall.errors import BatchFailed, UpcallError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def clip(rng, n=4000):
    return rng.integers(-3000, 3000, n).astype(np.int16)


def kaggle(root, rng, n_train=5, n_test=3):
    """A tiny data directory in the Kaggle layout, 16-bit mono 2000 Hz AIFF clips."""
    for split, n in (("train", n_train), ("test", n_test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for k in range(1, n + 1):
            sf.write(
                root / split / f"{split}{k}.aiff", clip(rng), 2000, format="AIFF", subtype="PCM_16"
            )
    (root / "train.csv").write_text(
        "clip_name,label\n" + "".join(f"train{k}.aiff,{k % 2}\n" for k in range(1, n_train + 1))
    )
    return root


def add_bad_clips(data, rng):
    """One clip of each kind of bad input; the first four are fixable with options."""
    train = data / "train"
    sf.write(train / "rate.aiff", clip(rng, 8000), 4000, format="AIFF", subtype="PCM_16")
    sf.write(
        train / "stereo.aiff",
        np.stack([clip(rng), clip(rng)], 1),
        2000,
        format="AIFF",
        subtype="PCM_16",
    )
    sf.write(train / "short.wav", clip(rng, 3000), 2000, subtype="PCM_16")
    sf.write(train / "long.flac", clip(rng, 4400), 2000, subtype="PCM_16")
    (train / "empty.aiff").write_bytes(b"")
    (train / "truncated.aiff").write_bytes((train / "train1.aiff").read_bytes()[:3000])
    (train / "text.aiff").write_text("this is not audio\n" * 40)
    return {
        "rate.aiff": "sample rate 4000 Hz, expected 2000 Hz",
        "stereo.aiff": "2 channels, expected mono",
        "short.wav": "clip too short: 3000 samples = 1.5 s",
        "long.flac": "clip too long: 4400 samples = 2.2 s",
        "empty.aiff": "empty file",
        "truncated.aiff": "truncated file",
        "text.aiff": "not a readable audio file",
    }


def pngs(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))


def mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}


def test_cli_writes_tutorial_pngs_beside_the_clips(tmp_path, rng, capsys):
    data = kaggle(tmp_path / "data", rng)
    assert main(["spectrograms", str(data), "--workers", "1"]) == 0
    assert pngs(data) == [f"test/test{k}.png" for k in (1, 2, 3)] + [
        f"train/train{k}.png" for k in (1, 2, 3, 4, 5)
    ]
    for png in data.rglob("*.png"):
        want = compute(read_clip(png.with_suffix(".aiff")))
        np.testing.assert_array_equal(read_png(png), want)
    settings = json.loads((data / "spectrograms.json").read_text())
    assert settings["mode"] == "tutorial" and settings["data_dir"] == str(data.resolve())
    assert (settings["height"], settings["width"], settings["sample_rate"]) == (129, 30, 2000)
    assert "8 spectrograms made, 0 already up to date" in capsys.readouterr().out


def test_rerun_skips_up_to_date_and_remakes_stale(tmp_path, rng, capsys):
    data = kaggle(tmp_path / "data", rng)
    assert main(["spectrograms", str(data)]) == 0
    before = mtimes(data)
    sf.write(data / "train" / "train2.aiff", clip(rng), 2000, format="AIFF", subtype="PCM_16")
    future = before[data / "train" / "train2.png"] + 10**9
    os.utime(data / "train" / "train2.aiff", ns=(future, future))
    capsys.readouterr()
    assert main(["spectrograms", str(data)]) == 0
    assert "1 spectrograms made, 7 already up to date" in capsys.readouterr().out
    after = mtimes(data)
    assert [p.name for p in after if after[p] != before[p]] == ["train2.png"]
    np.testing.assert_array_equal(
        read_png(data / "train" / "train2.png"), compute(read_clip(data / "train" / "train2.aiff"))
    )


def test_mode_change_remakes_everything(tmp_path, rng):
    data = kaggle(tmp_path / "data", rng)
    assert main(["spectrograms", str(data)]) == 0
    tutorial = read_png(data / "test" / "test1.png")
    assert main(["spectrograms", str(data), "--mode", "enhanced"]) == 0
    enhanced = read_png(data / "test" / "test1.png")
    np.testing.assert_array_equal(
        enhanced, compute(read_clip(data / "test" / "test1.aiff"), mode="enhanced")
    )
    assert not np.array_equal(tutorial, enhanced)
    assert json.loads((data / "spectrograms.json").read_text())["range_db"] == [-5.0, 25.0]


def test_out_root_mirrors_the_splits_and_ensure_returns_it(tmp_path, rng):
    data = kaggle(tmp_path / "data", rng, n_train=2, n_test=0)
    (data / "train.csv").unlink()  # not needed: the clips are what is there
    root = spectrograms.ensure(data, out=tmp_path / "specs", mode="enhanced", workers=1)
    assert root == (tmp_path / "specs").resolve()
    assert pngs(root) == ["train/train1.png", "train/train2.png"] and pngs(data) == []
    assert spectrograms.ensure(data) == data.resolve()


def test_workers_do_not_change_the_images(tmp_path, rng):
    data = kaggle(tmp_path / "data", rng, n_train=70, n_test=0)  # more than one chunk of 32
    one = spectrograms.ensure(data, out=tmp_path / "one", workers=1)
    two = spectrograms.ensure(data, out=tmp_path / "two", workers=2)
    for png in one.rglob("*.png"):
        assert png.read_bytes() == (two / png.relative_to(one)).read_bytes()
    assert len(pngs(two)) == 70


def test_bad_clips_are_reported_one_line_each_and_the_rest_converted(tmp_path, rng, capsys):
    data = kaggle(tmp_path / "data", rng)
    problems = add_bad_clips(data, rng)
    assert main(["spectrograms", str(data), "--workers", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    for name, problem in problems.items():
        [line] = [e for e in err if e.startswith(str(data.resolve() / "train" / name) + ": ")]
        assert problem in line
    assert err[-1] == (
        "upcall spectrograms: error: 7 of 15 clips failed (listed above); the other 8 were done"
    )
    assert len(pngs(data)) == 8
    # the options fix what can be fixed; the broken files still fail
    assert main(["spectrograms", str(data), "--resample", "--mixdown", "--fit", "pad-trim"]) == 1
    err = capsys.readouterr().err
    assert "3 of 15 clips failed" in err and "stereo.aiff" not in err
    assert {"train/rate.png", "train/stereo.png", "train/short.png", "train/long.png"} <= set(
        pngs(data)
    )
    with pytest.raises(BatchFailed):
        spectrograms.ensure(data, workers=1)


def test_interrupted_run_resumes(tmp_path, rng, monkeypatch, capsys):
    data = kaggle(tmp_path / "data", rng, n_train=6, n_test=0)
    real_write = spectrograms.write_png
    calls = []

    def write_then_interrupt(path, image):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real_write(path, image)

    monkeypatch.setattr(spectrograms, "write_png", write_then_interrupt)
    assert main(["spectrograms", str(data), "--workers", "1"]) == 130
    assert pngs(data) == [f"train/train{k}.png" for k in (1, 2, 3)]
    kept = {".upcall-clips"}  # the clips' stamps (upcall.data.stamps)
    assert not [p for p in data.rglob(".*") if p.name not in kept]  # no temporaries left
    monkeypatch.setattr(spectrograms, "write_png", real_write)
    killed = data / "train" / ".train5.png.999.tmp.png"  # as a worker killed mid-write leaves
    killed.write_bytes(b"\x89PNG half")
    capsys.readouterr()
    assert main(["spectrograms", str(data), "--workers", "1"]) == 0
    assert "3 spectrograms made, 3 already up to date" in capsys.readouterr().out
    assert not killed.exists()


def test_same_name_in_two_formats_is_reported(tmp_path, rng, capsys):
    data = kaggle(tmp_path / "data", rng, n_train=1, n_test=0)
    sf.write(data / "train" / "train1.wav", clip(rng), 2000, subtype="PCM_16")
    assert main(["spectrograms", str(data)]) == 1
    assert "train1.wav: same name as train1.aiff; both would make train1.png" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "no such data directory"),
        ("flat", "has no train/ or test/ folder"),
        ("empty", "no audio clips (.aiff, .aif, .wav, .flac) in train/"),
    ],
)
def test_unusable_data_directory(tmp_path, layout, message, capsys):
    data = tmp_path / "data"
    if layout != "missing":
        data.mkdir()
    if layout == "empty":
        (data / "train").mkdir()
        (data / "train" / "train.csv").write_text("clip_name,label\n")
    assert main(["spectrograms", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("upcall spectrograms: error: ") and message in err


def run_door(*args, cwd):
    return subprocess.run(
        [sys.executable, str(REPO / "preprocess-aiff.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_preprocess_aiff_keeps_the_tutorial_usage(tmp_path, rng):
    kaggle(tmp_path / "data", rng, n_train=3, n_test=2)
    done = run_door(cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pngs(tmp_path / "data") == [
        "test/test1.png",
        "test/test2.png",
        "train/train1.png",
        "train/train2.png",
        "train/train3.png",
    ]
    np.testing.assert_array_equal(
        read_png(tmp_path / "data" / "train" / "train3.png"),
        compute(read_clip(tmp_path / "data" / "train" / "train3.aiff")),
    )


def test_preprocess_aiff_reports_bad_clips(tmp_path, rng):
    data = kaggle(tmp_path / "d", rng, n_train=2, n_test=1)
    problems = add_bad_clips(data, rng)
    done = run_door(str(data), "--workers", "1", cwd=tmp_path)
    assert done.returncode == 1
    for name, problem in problems.items():
        assert f"{name}: {problem}" in done.stderr
    assert "7 of 10 clips failed (listed above); the other 3 were done" in done.stderr
    assert len(pngs(data)) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "fancy"}, r"^unknown spectrogram mode 'fancy' \(choose from tutorial, "),
        ({"read": ReadOptions(fit="stretch")}, r"^unknown --fit 'stretch' \("),
        ({"workers": 0}, r"^--workers must be at least 1, got 0$"),
    ],
)
def test_bad_options_are_refused_before_any_png_is_touched(tmp_path, rng, options, message):
    data = kaggle(tmp_path / "data", rng, n_train=2, n_test=0)
    spectrograms.ensure(data, workers=1)
    before = mtimes(data)
    with pytest.raises(UpcallError, match=message):
        spectrograms.make(data, **options)
    assert mtimes(data) == before and len(before) == 2


def test_settings_file_round_trips_and_an_unversioned_one_keeps_the_pngs(tmp_path, rng, capsys):
    data = kaggle(tmp_path / "data", rng)
    assert main(["spectrograms", str(data), "--mode", "enhanced", "--workers", "1"]) == 0
    saved = json.loads((data / "spectrograms.json").read_text())
    assert saved["format"] == 1 and saved["range_db"] == [-5.0, 25.0] and saved["fit"] == "strict"
    settings = SpectrogramSettings.read(data)
    assert settings.to_json() == saved
    assert (settings.mode, settings.params["time_window"], settings.read_options) == (
        "enhanced",
        [5, 29],
        ReadOptions(),
    )
    del saved["format"]  # as written before files carried a format
    (data / "spectrograms.json").write_text(json.dumps(saved))
    before = mtimes(data)
    capsys.readouterr()
    assert main(["spectrograms", str(data), "--mode", "enhanced", "--workers", "1"]) == 0
    assert "0 spectrograms made, 8 already up to date" in capsys.readouterr().out
    assert mtimes(data) == before


def test_newer_settings_file_is_refused_in_one_line(tmp_path, rng):
    data = kaggle(tmp_path / "data", rng)
    assert main(["spectrograms", str(data), "--workers", "1"]) == 0
    before = mtimes(data)
    (data / "spectrograms.json").write_text('{"format": 2, "mode": "tutorial"}')
    with pytest.raises(UpcallError) as e:
        spectrograms.ensure(data, workers=1)
    assert str(e.value).startswith(f"{data / 'spectrograms.json'}: spectrograms.json format 2 is")
    assert "\n" not in str(e.value)
    assert mtimes(data) == before  # nothing remade or removed
