"""torch at run time: only the torch engine and the torch inference backend import it on load.

The import-linter contract "torch" (.importlinter, ``make lint``) checks that no other module
names torch in an import statement. This checks what the contract cannot see, the imports that
actually run: every other module is imported in an interpreter in which ``import torch`` fails,
so a torch import anywhere in what it loads is caught, and ``upcall --help`` (which loads every
command's module) runs there too.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import upcall

# Their modules may import torch when loaded; the packages themselves and the torch engine's
# registry entry (upcall.engines.ENGINES: its options and flags, read by --help) may not.
TORCH_PACKAGES = ("upcall.engines.torch", "upcall.inference.torch")
LIGHT = ("upcall.engines.torch.options", "upcall.engines.torch.start")


def torch_free_modules() -> list[str]:
    """Every module of upcall but those of TORCH_PACKAGES (LIGHT ones and the packages kept)
    and ``upcall.__main__`` (it runs the command: test_upcall_help_runs_without_torch)."""
    names = ["upcall"]
    for info in pkgutil.walk_packages(upcall.__path__, prefix="upcall."):
        inside = any(info.name.startswith(f"{package}.") for package in TORCH_PACKAGES)
        if info.name != "upcall.__main__" and (not inside or info.name in LIGHT):
            names.append(info.name)
    return names


def block_torch(folder: Path) -> dict[str, str]:
    """An environment in which ``import torch`` raises ImportError (a shadowing module)."""
    (folder / "torch.py").write_text("raise ImportError('torch is not installed here')\n")
    return {"PYTHONPATH": str(folder)}


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory):
    env = dict(os.environ)
    env.update(block_torch(tmp_path_factory.mktemp("no_torch")))
    return env


def test_the_blocker_blocks(no_torch_env):
    done = subprocess.run(
        [sys.executable, "-c", "import torch"], env=no_torch_env, capture_output=True
    )
    assert done.returncode != 0 and b"not installed here" in done.stderr


def test_torch_free_modules_import_without_torch(no_torch_env):
    """One interpreter imports them all in turn: a module that failed is not kept in
    sys.modules, so each one loads what it would load in a fresh interpreter."""
    modules = torch_free_modules()
    assert "upcall.engines.loop" in modules and "upcall.engines.torch.net" not in modules
    done = subprocess.run(
        [sys.executable, __file__, *modules], env=no_torch_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_upcall_help_runs_without_torch(no_torch_env):
    done = subprocess.run(
        [sys.executable, "-m", "upcall", "--help"], env=no_torch_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr.strip()
    assert "digits" in done.stdout


def _import_each(modules: list[str]) -> int:
    """Import each module; print one line per failure; the number of failures."""
    failed = 0
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:
            failed += 1
            print(f"{name}: {type(e).__name__}: {e}")
    return failed


if __name__ == "__main__":  # the child of test_torch_free_modules_import_without_torch
    sys.exit(min(_import_each(sys.argv[1:]), 1))
