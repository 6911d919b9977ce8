"""benchmarks/gpu_check.sh and gpu_check.py on a machine without a GPU: the early exits, the
argument checks, and every check run with the CPU standing in for the GPU (``--dry-run``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCH / "gpu_check.sh"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402  (benchmarks/ is not a package)


def run_script(tmp_path: Path, *args: str, tools: dict[str, str] | None = None):
    """gpu_check.sh with PATH holding only ``dirname`` and the given fake tools (name: script)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    for name, body in (tools or {}).items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": str(bin_dir)}
    return subprocess.run(
        ["/bin/bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_without_nvidia_smi_it_exits_77_saying_so(tmp_path):
    done = run_script(tmp_path)
    assert done.returncode == 77
    assert (
        done.stderr == "gpu_check: no nvidia-smi here (no NVIDIA GPU or driver); nothing checked\n"
    )


def test_a_gpu_nvidia_smi_cannot_see_exits_77(tmp_path):
    done = run_script(tmp_path, "--gpu", "3", tools={"nvidia-smi": "exit 6"})
    assert done.returncode == 77
    assert "nvidia-smi cannot see GPU 3; nothing checked" in done.stderr


def test_a_bad_gpu_index_is_a_usage_error(tmp_path):
    done = run_script(tmp_path, "--gpu", "first")
    assert done.returncode == 2
    assert "--gpu takes a device index, not 'first'" in done.stderr


def test_python_part_exits_77_when_torch_sees_no_cuda(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--work", str(tmp_path)]) == gpu_check.SKIP
    assert "sees no CUDA device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing was run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--networks", "vgg"], "--networks: unknown vgg"),
        (["--iters", "0"], "--iters must be at least 1"),
        ([], "--work"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.parse_args(args if not args or args[0] == "--work" else ["--work", "w", *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_table_aligns_the_columns():
    rows = [gpu_check.Row("a", "ok", "1.0", "2.0", "0.50×"), gpu_check.Row("longer check", "ok")]
    lines = gpu_check.table(rows).splitlines()
    assert lines[0].startswith("check        | result | figure | cpu figure | ratio")
    assert lines[1] == "a            | ok     | 1.0    | 2.0        | 0.50×"
    assert lines[2] == "longer check | ok"


def test_dry_run_runs_every_check_on_the_cpu(tmp_path, monkeypatch):
    from upcall.cli import main

    def in_process(*args: object) -> float:  # the CLI without a fresh interpreter per command
        if main([str(a) for a in args]) != 0:
            raise SystemExit(f"failed: upcall {' '.join(map(str, args))}")
        return 0.0

    monkeypatch.setattr(gpu_check, "upcall", in_process)
    setup = gpu_check.Setup(
        gpu=None,
        work=tmp_path,
        clips=80,
        epochs=2,
        iters=2,
        cpu_iters=2,
        windows=32,
        networks=("whalenet",),
        caffe_bin=None,
    )
    rows = {r.check: r for r in gpu_check.run_checks(setup)}
    assert list(rows) == [
        "train (val AUC)",
        "resume",
        "resume (autotuned)",
        "bf16 vs fp32 (val AUC)",
        "detect (× real time)",
        "whalenet img/s",
        "caffe --gpu img/s",
    ]
    assert rows["resume"].result == "ok (bit-exact)"  # the CPU is deterministic
    assert rows["resume (autotuned)"].result == "exact"
    assert rows["train (val AUC)"].result == "ok"
    assert rows["train (val AUC)"].figure == rows["train (val AUC)"].cpu  # the same device
    assert rows["bf16 vs fp32 (val AUC)"].result.startswith("ok (top-1 agreement")
    assert rows["caffe --gpu img/s"].result == "skipped: dry run"
    assert all(not r.result.startswith("FAIL") for r in rows.values())
