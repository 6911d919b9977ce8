"""Issue 9, items 11 and 13: small faults, each through the real command (exit status and the
one-line message), each failing without its fix."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.data.test_explore import make_dataset
from tests.engines.test_train import images_for, make_job
from tests.job.test_nets import _dataset
from upcall import cli
from upcall.data import explore

REPO = Path(__file__).resolve().parents[2]
BOM = "\ufeff".encode()


def upcall(capsys, *argv) -> tuple[int, str, str]:
    """``upcall ARGV`` in this process: (exit status, stdout, stderr)."""
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A small Kaggle-layout data folder (40 train clips, 5 test clips)."""
    d = tmp_path_factory.mktemp("faults") / "data"
    assert cli.main(["synth", str(d), "--n-train", "40", "--n-test", "5", "--seed", "0"]) == 0
    return d


def copy_data(data: Path, to: Path) -> Path:
    subprocess.run(["cp", "-r", str(data), str(to)], check=True)
    return to


# --- 11: only the clips the lists use matter ---------------------------------------------------


def test_a_bad_unlisted_clip_does_not_block_lists(data, tmp_path, capsys):
    d = copy_data(data, tmp_path / "data")
    (d / "test" / "test7.aiff").write_bytes(b"")  # not in train.csv; no --test
    rc, _, err = upcall(capsys, "lists", d)
    assert rc == 0, err
    assert f"{d / 'test' / 'test7.aiff'}: empty file" in err  # still reported
    assert (d / "lists" / "lists.json").is_file()
    assert "test7" not in (d / "lists" / "train.txt").read_text()
    # Listed with --test, the same clip is an error naming its missing spectrogram.
    rc, _, err = upcall(capsys, "lists", d, "--test")
    assert rc == 1
    assert err.splitlines()[-1].startswith(f"upcall lists: error: {d / 'test' / 'test7.png'}: ")


def test_a_bad_listed_clip_still_fails_lists(data, tmp_path, capsys):
    d = copy_data(data, tmp_path / "data")
    (d / "train" / "train3.aiff").write_bytes(b"")
    rc, _, err = upcall(capsys, "lists", d)
    assert rc == 1 and not (d / "lists" / "lists.json").exists()
    assert err.splitlines()[-1].startswith(f"upcall lists: error: {d / 'train' / 'train3.png'}: ")


def test_make_lists_sh_ignores_a_bad_unlisted_clip(data, tmp_path):
    d = copy_data(data, tmp_path / "data")
    (d / "test" / "test7.aiff").write_bytes(b"")
    done = subprocess.run(
        ["bash", str(REPO / "make_lists.sh"), str(d)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (d / "lists" / "lists.json").is_file()


# --- 13: make_lists.sh passes options through ----------------------------------------------------


def test_make_lists_sh_takes_options_without_a_data_dir(data, tmp_path):
    copy_data(data, tmp_path / "data")  # the default DATA_DIR, as for preprocess-aiff.py
    done = subprocess.run(
        ["bash", str(REPO / "make_lists.sh"), "--seed", "3"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "data/lists/lists.json").read_text())["seed"] == 3


# --- 13: a UTF-8 byte-order mark -----------------------------------------------------------------


def test_a_byte_order_mark_in_train_csv_is_not_a_bad_header(data, tmp_path, capsys):
    d = copy_data(data, tmp_path / "data")
    csv_path = d / "train.csv"
    csv_path.write_bytes(BOM + csv_path.read_bytes())
    rc, _, err = upcall(capsys, "lists", d)
    assert rc == 0, err
    assert json.loads((d / "lists" / "lists.json").read_text())["counts"]["train"] == {
        "not-whale": 28,
        "whale": 8,
    }


def test_a_byte_order_mark_in_train_txt_and_labels_txt_is_not_read(tmp_path):
    # `upcall lmdb` refuses list files changed since lists.json (its digests), so a BOM reaches
    # these readers only in lists written with it; read through `upcall lmdb`'s own readers.
    from upcall.data.dataset import read_list
    from upcall.data.listsfolder import read_labels

    (tmp_path / "train.txt").write_bytes(BOM + b"/data/train/train1.png 1\nrel/train2.png 0\n")
    (tmp_path / "labels.txt").write_bytes(BOM + b"not-whale\nwhale\n")
    assert read_list(tmp_path / "train.txt", n_labels=2) == [
        (Path("/data/train/train1.png"), 1),
        (tmp_path / "rel/train2.png", 0),
    ]
    assert read_labels(tmp_path / "labels.txt") == ["not-whale", "whale"]


# --- 13: classify --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from upcall.engines import get_engine

    job = make_job(tmp_path_factory.mktemp("classify"), max_iter=6)
    get_engine("torch", threads=1).train(job)
    return job


def write_clip(path: Path, *, seconds=2.0, rate=2000, channels=1) -> Path:
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((round(seconds * rate), channels)) * 0.1
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


def test_classify_takes_the_read_options_its_hints_name(trained, tmp_path, capsys):
    short = write_clip(tmp_path / "short.wav", seconds=1.5)
    stereo = write_clip(tmp_path / "stereo.wav", channels=2)
    fast = write_clip(tmp_path / "fast.wav", rate=4000)
    rc, _, err = upcall(capsys, "classify", trained, short, stereo, fast)
    assert rc == 1
    assert "--fit pad" in err and "--mixdown" in err and "--resample" in err
    rc, out, err = upcall(
        capsys, "classify", trained, short, stereo, fast, "--fit", "pad", "--mixdown", "--resample"
    )
    assert rc == 0, err
    assert [line.split("\t")[0] for line in out.splitlines()] == [
        str(short),
        str(stereo),
        str(fast),
    ]


def test_classify_a_folder_classifies_each_clip_once(trained, tmp_path, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_clip(folder / "a.wav")
    Image.fromarray(images_for(np.array([1]), np.random.default_rng(0))[0, 0]).save(
        folder / "a.png"
    )
    Image.fromarray(images_for(np.array([0]), np.random.default_rng(1))[0, 0]).save(
        folder / "b.png"
    )
    rc, out, err = upcall(capsys, "classify", trained, folder)
    assert rc == 0, err
    assert [line.split("\t")[0] for line in out.splitlines()] == [
        str(folder / "a.wav"),
        str(folder / "b.png"),
    ]
    assert f"{folder}: 1 PNG(s) left out" in err


def test_classify_an_empty_folder_is_an_error(trained, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no clips here")
    rc, out, err = upcall(capsys, "classify", trained, tmp_path / "empty")
    assert (rc, out) == (1, "")
    assert err.strip().splitlines() == [
        f"upcall classify: error: {tmp_path / 'empty'}: no audio clips "
        "(.aiff, .aif, .wav, .flac) or PNGs in it"
    ]


# --- 13: nets ------------------------------------------------------------------------------------


def test_nets_rejects_batch_size_below_one(tmp_path, capsys):
    ds = _dataset(tmp_path / "ds", size="native")
    rc, _, err = upcall(
        capsys, "nets", "--dataset", ds, "--out", tmp_path / "jobs", "--batch-size", "0"
    )
    assert rc == 1 and not (tmp_path / "jobs").exists()
    assert err.strip().splitlines() == [
        "upcall nets: error: --batch-size must be at least 1, not 0"
    ]


@pytest.mark.parametrize("lr", ["0", "-0.01", "inf", "nan", "0.01,-1"])
def test_nets_rejects_learning_rates_that_are_not_positive(lr, tmp_path, capsys):
    ds = _dataset(tmp_path / "ds", size="native")
    rc, _, err = upcall(capsys, "nets", "--dataset", ds, "--out", tmp_path / "jobs", f"--lr={lr}")
    assert rc == 1 and not (tmp_path / "jobs").exists()
    assert err.strip().splitlines() == [
        f"upcall nets: error: --lr needs positive learning rates, got {lr!r}"
    ]


def test_nets_default_network_is_the_readmes_and_the_demos(tmp_path, capsys):
    from upcall.workflows.demo import DemoSettings

    ds = _dataset(tmp_path / "ds", size="native")
    rc, out, err = upcall(capsys, "nets", "--dataset", ds, "--out", tmp_path / "jobs")
    assert rc == 0, err
    assert out.strip() == str(tmp_path / "jobs" / "whalenet-lr0.01")
    assert DemoSettings().network == "whalenet"
    assert "| WhaleNet (default) |" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("command", ["nets", "sweep", "classify", "explore", "synth-recording"])
def test_help_states_every_default(command):
    parser = cli.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices[command]._actions:
        if action.default in (None, False, argparse.SUPPRESS) or action.required:
            continue
        assert "default" in (action.help or ""), f"{command} {action.option_strings}"


# --- 13: synth-recording and explore -------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "fmt"), [(".flac", "FLAC"), (".aiff", "AIFF"), (".wav", "WAV")])
def test_synth_recording_writes_the_format_its_suffix_names(suffix, fmt, tmp_path, capsys):
    out = tmp_path / f"rec{suffix}"
    rc, _, err = upcall(capsys, "synth-recording", out, "--minutes", "0.05")
    assert rc == 0, err
    assert (sf.info(out).format, sf.info(out).samplerate) == (fmt, 2000)


def test_synth_recording_refuses_an_unknown_suffix(tmp_path, capsys):
    out = tmp_path / "rec.mp3"
    rc, _, err = upcall(capsys, "synth-recording", out, "--minutes", "0.05")
    assert rc == 1 and os.listdir(tmp_path) == []
    assert err.strip().splitlines() == [
        f"upcall synth-recording: error: {out}: unknown audio suffix '.mp3'; "
        "use one of .wav, .flac, .aiff, .aif"
    ]


def test_explore_caps_per_class_to_the_db_and_a_maximum(tmp_path, capsys):
    ds = make_dataset(tmp_path / "ds", {0: 3, 1: 20}, size=(129, 30))
    rc, _, err = upcall(capsys, "explore", ds, "--per-class", "100000")
    assert rc == 0
    assert err.strip() == f"upcall explore: --per-class 100000 capped to {explore.MAX_PER_CLASS}"
    with Image.open(ds / "explore_train.png") as im:
        # As tall as the largest class (20 images) needs, not 100,000.
        assert (im.height, im.width) == explore.sheet_size(129, 30, classes=2, per_class=20)
