"""upcall detect on a model exported with ``upcall export --format onnx``: the same detections as
the job folder it came from, and no torch needed (a fresh interpreter where torch cannot load)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.detect.test_run import job, recording  # noqa: F401  (fixtures)
from tests.test_layering import block_torch
from upcall.audio.raven import read_table
from upcall.cli import main
from upcall.detect.run import DetectSettings, detect

SCORE_ATOL = 1e-5  # float32 on both sides, summed in different orders (as in test_export)


@pytest.fixture(scope="module")
def exported(job, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", str(job), "--format", "onnx", "--out", str(out)]) == 0
    return out


def same_detections(a, b):
    rows_a, rows_b = read_table(a), read_table(b)
    assert [(r.begin_s, r.end_s, r.low_hz, r.high_hz) for r in rows_a] == [
        (r.begin_s, r.end_s, r.low_hz, r.high_hz) for r in rows_b
    ]
    assert all(abs(x.score - y.score) <= SCORE_ATOL for x, y in zip(rows_a, rows_b, strict=True))
    return rows_a


def test_onnx_model_gives_the_job_folders_detections(job, exported, recording, tmp_path):  # noqa: F811
    detect(job, [recording], tmp_path / "job", threshold=0.0).finish()
    detect(exported, [recording], tmp_path / "onnx", threshold=0.0).finish()
    rows = same_detections(tmp_path / "job" / "rec.wav.detections.txt",
                           tmp_path / "onnx" / "rec.wav.detections.txt")  # fmt: skip
    assert rows  # threshold 0: every run of windows is a detection
    settings = DetectSettings.require(tmp_path / "onnx")
    assert settings.model == settings.weights == str(exported.resolve())


def test_onnx_detect_runs_without_torch(job, exported, recording, tmp_path):  # noqa: F811
    env = dict(os.environ)
    env.update(block_torch(tmp_path))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "upcall", "detect", str(exported), str(recording),
           "--out", str(out), "--threshold", "0.0", "--workers", "2"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    detect(job, [recording], tmp_path / "job", threshold=0.0).finish()
    same_detections(tmp_path / "job" / "rec.wav.detections.txt", out / "rec.wav.detections.txt")


def test_a_missing_onnx_model_is_one_line(tmp_path, recording):  # noqa: F811
    from upcall.errors import UpcallError

    with pytest.raises(UpcallError, match="no such ONNX model"):
        detect(tmp_path / "nope.onnx", [recording], tmp_path / "out")
