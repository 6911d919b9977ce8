"""The whole Caffe chain runs where torch cannot be imported: synth → spectrograms → lists →
lmdb → nets → train --engine caffe → report, each as a real command in its own process."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.test_layering import block_torch


def test_caffe_chain_runs_without_torch(tmp_path, caffe):
    env = dict(os.environ)
    env.update(block_torch(tmp_path))
    data, lists, ds, jobs = (tmp_path / n for n in ("data", "lists", "ds", "jobs"))

    def upcall(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "upcall", *args], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"upcall {args[0]}: {done.stderr.strip()[-2000:]}"
        assert "Traceback" not in done.stderr
        return done.stdout

    upcall("synth", str(data), "--n-train", "80", "--seed", "1", "--workers", "1")
    upcall("spectrograms", str(data), "--workers", "1")
    upcall("lists", str(data), "--out", str(lists), "--seed", "1")
    upcall("lmdb", str(lists), "--out", str(ds), "--size", "native", "--workers", "1")
    upcall("nets", "--dataset", str(ds), "--networks", "whalenet-small", "--lr", "0.01",
           "--epochs", "1", "--batch-size", "8", "--seed", "1", "--out", str(jobs))
    (job,) = jobs.iterdir()
    upcall("train", str(job), "--engine", "caffe")
    assert (job / "summary.json").is_file() and list(job.glob("snapshot_iter_*.caffemodel"))
    upcall("report", str(jobs))
