"""Faults in spectrogram / lists / dataset provenance (issue 9, items 1, 3, 4, 12), through the
real commands: exit status, a one-line message naming the file, no traceback, nothing
half-written under a final name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import upcall.data.lists as lists_module
from upcall.audio.clip import read_clip
from upcall.cli import main
from upcall.data.spectrogram import compute, read_png


@pytest.fixture
def data(tmp_path):
    assert main(["synth", str(tmp_path / "d"), "--n-train", "24", "--n-test", "2"]) == 0
    return tmp_path / "d"


def run(capsys, *argv):
    """(exit status, the error line) of ``upcall ARGV``; asserts it is one line, no traceback."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    if rc != 0:
        assert lines, "an error without a message"
    return rc, lines[-1] if lines else ""


def pixels(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def mode_of(folder):
    return json.loads((folder / "spectrograms.json").read_text())["mode"]


# Item 1 ---------------------------------------------------------------------------------------


def test_remaking_pngs_that_lists_use_is_refused(data, tmp_path, capsys):
    assert run(capsys, "spectrograms", data)[0] == 0
    assert run(capsys, "lists", data)[0] == 0
    before = pixels(data / "train")
    rc, line = run(capsys, "spectrograms", data, "--mode", "enhanced")
    assert rc == 1 and f"{data / 'spectrograms.json'}: the tutorial-mode PNGs" in line
    assert "--force" in line and str(data / "lists") in line
    assert pixels(data / "train") == before and mode_of(data) == "tutorial"
    # Elsewhere is fine; --force replaces them, and then lmdb refuses the stale lists.
    assert run(capsys, "spectrograms", data, "--mode", "enhanced", "--out", tmp_path / "e")[0] == 0
    assert run(capsys, "spectrograms", data, "--mode", "enhanced", "--force")[0] == 0
    rc, line = run(capsys, "lmdb", data / "lists", "--out", tmp_path / "ds", "--size", "native")
    assert rc == 1 and line.startswith(f"upcall lmdb: error: {data / 'spectrograms.json'}: ")
    assert "now enhanced-mode, the lists were made from tutorial-mode" in line
    assert "upcall lists" in line and not (tmp_path / "ds").exists()


def test_lists_in_another_mode_do_not_rerender_pngs_other_lists_use(data, tmp_path, capsys):
    assert run(capsys, "lists", data)[0] == 0
    before = pixels(data / "train")
    rc, line = run(capsys, "lists", data, "--mode", "enhanced", "--out", tmp_path / "x")
    assert rc == 1 and str(data / "spectrograms.json") in line and "--spectrogram-root" in line
    assert pixels(data / "train") == before and not (tmp_path / "x" / "lists.json").exists()
    # Remaking the same lists in another mode is what the user asked for.
    assert run(capsys, "lists", data, "--mode", "enhanced")[0] == 0
    assert mode_of(data) == "enhanced"
    lists = json.loads((data / "lists" / "lists.json").read_text())
    assert lists["spectrograms"]["mode"] == "enhanced"


def test_lmdb_refuses_lists_interrupted_before_lists_json(data, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lists_module, "write_histogram", interrupted)
    assert main(["lists", str(data)]) == 130
    assert (data / "lists" / "train.txt").exists() and not (data / "lists/lists.json").exists()
    rc, line = run(capsys, "lmdb", data / "lists", "--out", tmp_path / "ds", "--size", "native")
    assert rc == 1 and f"{data / 'lists' / 'lists.json'}: not found" in line
    assert "upcall lists" in line and not (tmp_path / "ds").exists()


def test_lmdb_refuses_a_list_changed_after_lists_json(data, tmp_path, capsys):
    assert run(capsys, "lists", data)[0] == 0
    val = data / "lists" / "val.txt"
    val.write_text(val.read_text().splitlines()[0] + "\n")
    rc, line = run(capsys, "lmdb", data / "lists", "--out", tmp_path / "ds")
    assert rc == 1 and line.startswith(f"upcall lmdb: error: {val}: changed or missing")


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def held_lock():
    """Hold a lock file from another process, as a concurrent upcall run does."""
    procs = []

    def hold(path):
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
        procs.append(p)
        assert p.stdout.readline().strip() == b"locked"

    yield hold
    for p in procs:
        p.kill()
        p.wait()


def test_concurrent_writers_of_one_folder_are_refused(data, tmp_path, capsys, held_lock):
    assert run(capsys, "lists", data)[0] == 0
    lock = data / ".upcall-spectrograms.lock"
    held_lock(lock)  # a `spectrograms` run writing DATA's PNGs
    before = pixels(data)
    for argv in (
        ["spectrograms", data, "--mode", "enhanced", "--out", data],
        ["lists", data, "--out", tmp_path / "l2"],
        ["lmdb", data / "lists", "--out", tmp_path / "ds"],
    ):
        rc, line = run(capsys, *argv)
        assert rc == 1 and f"{lock}: another upcall is" in line, argv
    assert pixels(data) == before and not (tmp_path / "ds").exists()
    held_lock(data / "lists" / ".upcall-lists.lock")
    rc, line = run(capsys, "lists", data, "--seed", 3)
    assert rc == 1 and str(data / "lists" / ".upcall-lists.lock") in line


# Item 3 ---------------------------------------------------------------------------------------


def test_train_and_classify_refuse_a_dataset_rebuilt_under_the_job(data, tmp_path, capsys):
    ds, jobs = tmp_path / "ds", tmp_path / "jobs"
    assert run(capsys, "lists", data)[0] == 0
    assert run(capsys, "lmdb", data / "lists", "--out", ds, "--size", "native")[0] == 0
    assert run(capsys, "nets", "--dataset", ds, "--network", "whalenet", "--out", jobs)[0] == 0
    (job,) = jobs.iterdir()
    assert json.loads((job / "config.json").read_text())["dataset_fingerprint"]
    assert run(capsys, "lmdb", data / "lists", "--out", ds, "--size", "32x32")[0] == 0
    for argv in (["train", job], ["classify", job, data / "test"]):
        rc, line = run(capsys, *argv)
        assert rc == 1 and f"{job / 'config.json'}: the dataset {ds} was rebuilt" in line, argv
        assert "size 30x129 (native) → 32x32 (32x32)" in line and "upcall nets" in line
    assert not list(job.glob("snapshot_*")) and not (job / "metrics.jsonl").exists()


# Item 4 ---------------------------------------------------------------------------------------


def test_a_clip_copied_with_its_old_mtime_is_remade(data, capsys):
    assert run(capsys, "spectrograms", data)[0] == 0
    one, two = data / "train" / "train1.aiff", data / "train" / "train2.aiff"
    when = one.stat().st_mtime_ns
    shutil.copy2(two, one)  # cp -p: new bytes, the other clip's (older) modification time
    os.utime(one, ns=(when, when))  # even the very same size and mtime as before
    capsys.readouterr()
    assert main(["spectrograms", str(data)]) == 0
    assert capsys.readouterr().out.startswith("1 spectrograms made, 25 already up to date")
    np.testing.assert_array_equal(read_png(one.with_suffix(".png")), compute(read_clip(one)))
    os.chmod(one, 0o644)  # only the change time moves: same bytes, kept
    assert main(["spectrograms", str(data)]) == 0
    assert capsys.readouterr().out.startswith("0 spectrograms made, 26 already up to date")


# Item 12 --------------------------------------------------------------------------------------


def _stray(path, size=64):
    Image.fromarray(np.zeros((size, size), np.uint8)).save(path)


def test_native_size_comes_from_spectrograms_json(data, tmp_path, capsys):
    assert run(capsys, "lists", data)[0] == 0
    train = (data / "lists" / "train.txt").read_text().splitlines()
    _stray(train[0].rsplit(" ", 1)[0])  # a stray 64×64 first image
    rc, line = run(capsys, "lmdb", data / "lists", "--out", tmp_path / "ds", "--size", "native")
    assert rc == 1 and line.startswith("upcall lmdb: error: 1 of ")
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["image"] == {"height": 129, "width": 30, "channels": 1}
    assert sum(info["counts"]["train"].values()) == len(train) - 1


def test_mostly_bad_images_write_nothing(data, tmp_path, capsys):
    assert run(capsys, "lists", data)[0] == 0
    train = (data / "lists" / "train.txt").read_text().splitlines()
    for line in train[1:]:
        _stray(line.rsplit(" ", 1)[0])
    rc, line = run(capsys, "lmdb", data / "lists", "--out", tmp_path / "ds", "--size", "native")
    assert rc == 1 and f"{data / 'lists' / 'train.txt'}: {len(train) - 1} of its" in line
    assert "nothing written" in line and sorted(os.listdir(tmp_path)) == ["d"]


def test_hand_made_lists_build_at_the_size_of_most_images(tmp_path, capsys):
    """DIGITS takes any "PATH LABEL" lists: no lists.json, no marker of an interrupted run."""
    from PIL import Image

    (tmp_path / "png").mkdir()
    lines = []
    for i in range(12):
        size = (64, 64) if i == 0 else (30, 129)  # a stray first image
        Image.new("L", size, 40 * (i % 2)).save(tmp_path / "png" / f"{i}.png")
        lines.append(f"{tmp_path / 'png' / f'{i}.png'} {i % 2}\n")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("".join(lines[:8]))
    (lists / "val.txt").write_text("".join(lines[8:]))
    (lists / "labels.txt").write_text("not-whale\nwhale\n")
    capsys.readouterr()
    assert main(["lmdb", str(lists), "--out", str(tmp_path / "ds"), "--size", "native"]) == 1
    err = capsys.readouterr().err.splitlines()  # the stray image is reported, the rest written
    assert "0.png" in err[0] and err[-1].endswith("1 of 12 images failed (listed above); the other 11 were done")
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["image"]["height"] == 129 and info["image"]["width"] == 30
    assert info["counts"]["train"] == {"not-whale": 3, "whale": 4}
    assert info["spectrograms"] is None and info["lists"] is None
