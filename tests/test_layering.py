"""The layering rule: audio, data, model and results never import torch.

Each module is imported in a fresh interpreter in which ``import torch`` fails, so a torch import
anywhere in its import graph (not only in the module itself) is caught.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import upcall

ROOT = Path(upcall.__file__).resolve().parent
TORCH_FREE = ("audio", "data", "model", "results", "classical", "detect")
# Shared modules every stage uses, and the torch-free parts of the engines.
SHARED = (
    "upcall.cli",
    "upcall.door",
    "upcall.helpformat",
    "upcall.errors",
    "upcall.fsutil",
    "upcall.jsonfile",
    "upcall.parallel",
    "upcall.plotting",
    "upcall.progress",
    "upcall.proto",
    "upcall.lock",
    "upcall.engines",
    "upcall.engines.base",
    "upcall.engines.jobspec",
    "upcall.engines.jobstate",
    "upcall.engines.loop",
    "upcall.engines.predict",
    "upcall.engines.snapshots",
    "upcall.engines.torch.options",
    "upcall.engines.caffe.options",
    "upcall.engines.caffe.root",
    "upcall.engines.caffe.engine",
    "upcall.engines.caffe.pylayer",
    "upcall.engines.caffe.predict",
    "upcall.engines.onnx",
    "upcall.engines.onnx.metadata",
    "upcall.engines.onnx.predict",
    "upcall.engines.onnx.fcn",
    "upcall.export",
    "upcall.export.command",
    "upcall.export.info",
    "upcall.export.caffe",
    "upcall.export.onnx",
    "upcall.engines.digits.options",
    "upcall.engines.digits.record",
    "upcall.engines.digits.engine",
    "upcall.digits.client",
    "upcall.digits.fields",
    "upcall.digits.jobfile",
    "upcall.digits.cli",
    "upcall.digits.server",
    "upcall.digits.jobs",
    "upcall.digits.forms",
    "upcall.digits.work",
    "upcall.digits.views",
    "upcall.digits.page",
    "upcall.digits.paths",
)


def _modules() -> list[str]:
    names = list(SHARED)
    for stage in TORCH_FREE:
        package = f"upcall.{stage}"
        names.append(package)
        for info in pkgutil.walk_packages([str(ROOT / stage)], prefix=f"{package}."):
            names.append(info.name)
    return names


def block_torch(folder: Path) -> dict[str, str]:
    """An environment in which ``import torch`` raises ImportError (a shadowing module)."""
    (folder / "torch.py").write_text("raise ImportError('torch is not installed here')\n")
    return {"PYTHONPATH": str(folder)}


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory):
    import os

    env = dict(os.environ)
    env.update(block_torch(tmp_path_factory.mktemp("no_torch")))
    return env


def test_the_blocker_blocks(no_torch_env):
    done = subprocess.run([sys.executable, "-c", "import torch"], env=no_torch_env, capture_output=True)
    assert done.returncode != 0 and b"not installed here" in done.stderr


@pytest.mark.parametrize("module", _modules())
def test_module_imports_without_torch(module, no_torch_env):
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], env=no_torch_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
