"""Filesystem faults said plainly (issue 19 §4): `synth-recording` onto a full disk, a read-only
disk, a folder it may not write or a symlink loop is one line naming the file, and leaves no
partial file; reading a recording or clip that is unreadable or a symlink loop says so (libsndfile
alone says "System error").

The tests run as root, who ignores permission bits: "permission denied" runs the command under
``setpriv`` without CAP_DAC_OVERRIDE, so the bits apply as for anyone else.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.faults.test_cli import ENV, ROOT, one_line, tmpfs, upcall
from upcall.cli import main

NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def as_anyone(*args: object, cwd) -> subprocess.CompletedProcess:
    """``upcall ARGS`` with permission bits enforced even for root."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    cmd = [*NO_OVERRIDE, sys.executable, "-m", "upcall", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_recording_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    with tmpfs(tmp_path / "full", "size=64k") as full:
        for name in ("rec.wav", "rec.flac"):  # 1 min at 2 kHz is 240 kB: the disk fills up
            res = upcall("synth-recording", full / name, "--minutes", 1, cwd=tmp_path)
            one_line(res, 1, full / name, "No space left on device")
            assert list(full.iterdir()) == []


def test_recording_into_a_read_only_disk_names_the_recording(tmp_path):
    with tmpfs(tmp_path / "ro", "ro", "size=64k") as ro:
        res = upcall("synth-recording", ro / "rec.wav", "--minutes", 0.2, cwd=tmp_path)
        err = one_line(res, 1, ro / "rec.wav", "Read-only file system")
        assert ".tmp" not in err  # the file asked for, not our temporary
        assert list(ro.iterdir()) == []


def test_recording_into_a_folder_it_may_not_write(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    res = as_anyone("synth-recording", locked / "rec.wav", "--minutes", 0.2, cwd=tmp_path)
    one_line(res, 1, locked / "rec.wav", "Permission denied")
    assert list(locked.iterdir()) == []


def test_recording_into_a_symlink_loop_says_so(tmp_path, capsys):
    (tmp_path / "loop").symlink_to("loop")
    assert main(["synth-recording", str(tmp_path / "loop" / "rec.wav"), "--minutes", "0.2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{tmp_path / 'loop'}: Too many levels of symbolic links"), err


@pytest.mark.parametrize("command", ["baseline", "lmdb"])
def test_an_out_that_is_a_symlink_loop_says_so(command, tmp_path, capsys):
    """Commands that resolve --out first (Path.resolve raises RuntimeError on a loop in 3.11)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "loop").symlink_to("loop")
    assert main([command, str(tmp_path / "data"), "--out", str(tmp_path / "loop" / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(tmp_path / "loop") in err and "Too many levels of symbolic links" in err, err


def test_unreadable_and_looping_recordings_say_why(tiny_job, easy_recording, tmp_path):
    secret = tmp_path / "secret.wav"
    shutil.copyfile(easy_recording, secret)
    secret.chmod(0)
    loop = tmp_path / "loop.wav"
    loop.symlink_to("loop.wav")
    res = as_anyone("detect", tiny_job, secret, loop, "--out", tmp_path / "out", cwd=ROOT)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"{secret}: cannot read: Permission denied" in res.stderr, res.stderr
    assert f"{loop}: cannot read: Too many levels of symbolic links" in res.stderr, res.stderr
    assert "System error" not in res.stderr


def test_an_unreadable_clip_says_permission_denied(tmp_path):
    data = tmp_path / "d"
    assert main(["synth", str(data), "--n-train", "4", "--workers", "1"]) == 0
    clip = data / "train" / "train2.aiff"
    clip.chmod(0)
    res = as_anyone("spectrograms", data, "--workers", 1, cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"{clip}: cannot read: Permission denied" in res.stderr, res.stderr
