"""upcall.export.cached: a job's ONNX export for detection, where it is cached and what a
damaged or unwritable cache does."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from upcall.detect.score import Scorer


def test_the_cache_moves_to_the_user_folder_and_a_damaged_file_falls_back_to_torch(
    tiny_job, tmp_path, monkeypatch
):
    job = tmp_path / "job"
    shutil.copytree(tiny_job, job, ignore=shutil.ignore_patterns(".cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (job / ".cache").write_text("a file where the cache folder would go")  # cannot be written
    scorer = Scorer(job, backend="onnx")
    (cached,) = (tmp_path / "xdg" / "upcall" / "onnx").glob("detect-*.onnx")
    assert scorer.model.backend == "onnx" and str(cached) in scorer.note
    torch = Scorer(job, backend="torch")
    x = np.random.default_rng(0).normal(size=(3, 4000)) * 0.1
    np.testing.assert_allclose(scorer.model.score(x), torch.model.score(x), atol=1e-5)

    # a second run reuses the file; a damaged one: torch, and the note names the file
    assert Scorer(job, backend="onnx").note == scorer.note  # the same file, reused
    cached.write_bytes(b"not a model")
    fallback = Scorer(job, backend="onnx")
    assert fallback.model.backend == "torch" and str(cached) in fallback.note
    assert fallback.note.startswith("torch (remove the cached ONNX export: ")
    assert "\n" not in fallback.note and Path(cached).read_bytes() == b"not a model"
