"""Kill the data steps at random moments, rerun them, and get what an unbroken run gets.

Each of synth, spectrograms, lists and lmdb runs once unbroken (A), then again in a fresh folder
(B) where it gets SIGINT or SIGKILL at a seeded random moment between start-up and the end of
A's run time, then is rerun as a user would. After the rerun B must equal A file by file
(LMDBs record by record), with no temporaries left behind; a SIGINT must end in exit 130 and one
line, never a traceback.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from upcall.data.datum import load_db

N_CLIPS = 1500
STEPS = ("synth", "spectrograms", "lists", "lmdb")
UNBROKEN_ROOT: list[str] = []


def argv(step: str, root: Path) -> list[str]:
    data = root / "data"
    return {
        "synth": ["synth", str(data), "--n-train", str(N_CLIPS), "--seed", "3", "--workers", "2"],
        "spectrograms": ["spectrograms", str(data), "--workers", "2"],
        "lists": ["lists", str(data), "--seed", "3"],
        "lmdb": ["lmdb", str(data / "lists"), "--out", str(root / "ds"), "--workers", "2"],
    }[step]


def upcall(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "upcall", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """Each step's folder after every step ran unbroken, and the seconds each step took."""
    root = tmp_path_factory.mktemp("unbroken")
    took = {}
    for step in STEPS:
        start = time.monotonic()
        proc = upcall(argv(step, root))
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        took[step] = time.monotonic() - start
        shutil.copytree(root, root.parent / f"after-{step}", symlinks=True)
    UNBROKEN_ROOT.append(str(root))  # the paths the copies' lists name
    return {step: (root.parent / f"after-{step}", took[step]) for step in STEPS}


def prepare(step: str, unbroken, tmp_path: Path) -> Path:
    """A folder holding what the steps before ``step`` made (paths rewritten to the new root)."""
    root = tmp_path / "run"
    if step == "synth":
        root.mkdir()
        return root
    previous = STEPS[STEPS.index(step) - 1]
    source = unbroken[previous][0]
    shutil.copytree(source, root, symlinks=True)
    if step == "lmdb":  # the lists hold absolute paths: make them name this folder's PNGs
        proc = upcall(argv("lists", root))
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    return root


def files(root: Path) -> dict[str, bytes]:
    """Every file under root except LMDB data and run-specific records, by relative path."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or "_db/" in rel or rel.endswith((".json", ".png.lock", ".lock")):
            continue
        if rel.endswith(".txt"):
            text = path.read_text()
            for prefix in (str(root), *UNBROKEN_ROOT):
                text = text.replace(prefix, "ROOT")
            out[rel] = text.encode()
        elif rel.endswith("class_histogram.png") or "/.upcall" in "/" + rel:
            continue  # a plot's bytes and our own bookkeeping may differ; their facts are above
        else:
            out[rel] = path.read_bytes()
    return out


def settings_files(root: Path) -> list[str]:
    """The JSON settings files present (their contents name the folder and the build)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json"))


def temporaries(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
@pytest.mark.parametrize("step", STEPS)
def test_killed_step_reruns_to_the_unbroken_result(step, sig, unbroken, tmp_path):
    done, seconds = unbroken[step]
    root = prepare(step, unbroken, tmp_path)
    rng = np.random.default_rng([STEPS.index(step), int(sig)])
    delay = rng.uniform(0.3, max(0.4, seconds))  # from start-up to the end of the unbroken run

    proc = upcall(argv(step, root))
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert "Traceback" not in err, err
        assert proc.returncode in (0, 130), (proc.returncode, err)  # 0: it had finished
        if proc.returncode == 130:
            assert len([line for line in err.splitlines() if "interrupted" in line]) >= 1

    again = upcall(argv(step, root))
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, f"rerun after {sig.name} at {delay:.2f} s: {err}"
    assert "Traceback" not in err
    assert temporaries(root) == []

    want, got = files(done), files(root)
    assert sorted(got) == sorted(want)
    assert settings_files(root) == settings_files(done)
    assert [k for k in want if want[k] != got[k]] == []
    if step == "lmdb":
        for db in ("train_db", "val_db"):
            a_images, a_labels = load_db(done / "ds" / db)
            b_images, b_labels = load_db(root / "ds" / db)
            np.testing.assert_array_equal(a_images, b_images)
            np.testing.assert_array_equal(a_labels, b_labels)
