"""Kill the data steps at random moments, rerun them, and get what an unbroken run gets; and
kill a command's parent process and see its workers go with it.

Each of synth, spectrograms, lists and lmdb runs once unbroken (A), then again in a fresh folder
(B) where it gets SIGINT or SIGKILL at a seeded random moment between the start of upcall's
main() and the end of A's run time, then is rerun as a user would. After the rerun B must equal
A file by file (LMDBs record by record), with no temporaries left behind; a SIGINT ends the
process by SIGINT after one line, never a traceback (README: "Interrupts").

`benchmarks/kill_soak.py` runs these tests many times under load (not part of CI).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from upcall.data.datum import load_db
from upcall.parallel import start_method

N_CLIPS = 1500
STEPS = ("synth", "spectrograms", "lists", "lmdb")
UNBROKEN_ROOT: list[str] = []
# benchmarks/kill_soak.py: each kill test REPEAT times, at other moments (seed + repeat)
SEED, REPEAT = "UPCALL_KILL_SEED", "UPCALL_KILL_REPEAT"


def pytest_generate_tests(metafunc):
    if "repeat" in metafunc.fixturenames and int(os.environ.get(REPEAT, "1")) > 1:
        runs = int(os.environ[REPEAT])
        metafunc.parametrize("repeat", range(runs), ids=[f"run{i}" for i in range(runs)])


@pytest.fixture
def repeat() -> int:
    return 0  # one run of each test, unless UPCALL_KILL_REPEAT asks for more


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


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict; empty once the process is gone (or a zombie: it is dead)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    return {} if status.get("State", "").startswith(("Z", "X")) else status


def handles(pid: int, sig: signal.Signals) -> bool:
    """Whether ``pid`` catches ``sig`` now (its SigCgt mask)."""
    return bool(int(proc_status(pid).get("SigCgt", "0"), 16) >> (sig - 1) & 1)


def ignores(pid: int, sig: signal.Signals) -> bool:
    return bool(int(proc_status(pid).get("SigIgn", "0"), 16) >> (sig - 1) & 1)


def wait_for_main(proc: subprocess.Popen) -> None:
    """Until upcall's main() handles the stop signals: Python catches SIGINT from its own
    start-up on, SIGTERM only once main() has installed its handler. Before that the moments are
    CPython's (a signal there ends the process by it too, but without upcall's line)."""
    deadline = time.monotonic() + 60
    while not handles(proc.pid, signal.SIGTERM) and proc.poll() is None:  # (or it is done)
        assert time.monotonic() < deadline, "main() never started"
        time.sleep(0.005)


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (pool workers, the multiprocessing resource tracker)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(stat.parent.name)] = (int(fields[1]), fields[0])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, state) in parents.items():
            if ppid == parent and state not in ("Z", "X") and child not in found:
                found.add(child)
                todo.append(child)
    return found


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
def test_killed_step_reruns_to_the_unbroken_result(step, sig, unbroken, tmp_path, repeat):
    done, seconds = unbroken[step]
    root = prepare(step, unbroken, tmp_path)
    seed = int(os.environ.get(SEED, "0")) + repeat
    rng = np.random.default_rng([STEPS.index(step), int(sig), seed])
    delay = rng.uniform(0.3, max(0.4, seconds))  # from start-up to the end of the unbroken run

    proc = upcall(argv(step, root))
    wait_for_main(proc)
    time.sleep(delay)
    workers = descendants(proc.pid)
    proc.send_signal(sig)  # to the parent only: it must stop its workers itself
    _, err = proc.communicate(timeout=120)
    assert gone(workers, within=5.0) == set()
    if sig == signal.SIGINT:
        assert "Traceback" not in err, err
        if proc.returncode != 0:  # 0: it had finished
            assert proc.returncode == -signal.SIGINT, (proc.returncode, err)
            assert err.splitlines()[-1] == f"upcall {step}: interrupted", err
    else:
        assert proc.returncode in (0, -signal.SIGKILL), (proc.returncode, err)

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


# Beside a command's workers, and ignoring SIGINT as they do: multiprocessing's resource tracker
# and, when workers start that way, the forkserver.
HELPERS = 2 if start_method() == "forkserver" else 1


def gone(pids: set[int], *, within: float) -> set[int]:
    """The processes of ``pids`` still alive after waiting up to ``within`` seconds."""
    deadline = time.monotonic() + within
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {pid for pid in alive if proc_status(pid)}
    return alive


def started_workers(proc: subprocess.Popen, count: int) -> set[int]:
    """The parent's descendants once ``count`` of them are workers set up to die with it (they
    ignore SIGINT: upcall.parallel.start_worker has run in them)."""
    deadline = time.monotonic() + 120
    while True:
        found = descendants(proc.pid)
        if len([pid for pid in found if ignores(pid, signal.SIGINT)]) >= count:
            return found
        assert proc.poll() is None, f"it ended first: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, "its workers never started"
        time.sleep(0.02)


def kill_parent(proc: subprocess.Popen, sig: signal.Signals, workers: set[int]) -> str:
    """Send ``sig`` to the parent alone; check how it ends and that its workers go within 5 s."""
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert gone(workers, within=5.0) == set(), (sig.name, err)
    assert proc.returncode == -sig, (proc.returncode, err)
    assert "Traceback" not in err, err
    if sig == signal.SIGTERM:  # handled like Ctrl-C: one line, then death by the same signal
        assert err.splitlines()[-1].endswith("interrupted (SIGTERM)"), err
    return err


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("clips") / "data"
    proc = upcall(["synth", str(data), "--n-train", "1000", "--seed", "5", "--workers", "2"])
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return data


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_spectrogram_workers_die_with_their_parent(clips, sig, tmp_path):
    """The pool of every clip step (synth, spectrograms, lmdb, baseline, augment)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: upcall starts one worker, in its own process")
    out = tmp_path / "png"
    proc = upcall(["spectrograms", str(clips), "--out", str(out), "--workers", "2"])
    workers = started_workers(proc, 2 + HELPERS)
    kill_parent(proc, sig, workers)
    assert len(list(out.rglob("*.png"))) < 1000  # it was stopped before the end


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_detect_workers_and_resource_tracker_die_with_their_parent(
    tiny_job, sig, tmp_path_factory, tmp_path
):
    """The pool of `upcall detect` and multiprocessing's resource tracker beside it."""
    from upcall.audio.recording import RecordingSettings, write_recording

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: upcall starts one worker, in its own process")
    recordings = tmp_path_factory.getbasetemp() / "long-recordings"
    if not recordings.is_dir():  # long enough that two workers are still busy when killed
        for seed in (1, 2):
            write_recording(recordings / f"r{seed}.wav", RecordingSettings(minutes=10, seed=seed))
    out = tmp_path / "out"
    proc = upcall(["detect", str(tiny_job), str(recordings), "--out", str(out), "--workers", "2"])
    workers = started_workers(proc, 2 + HELPERS)
    kill_parent(proc, sig, workers)
    assert not (out / "detections.txt").exists()  # it was stopped before the end
