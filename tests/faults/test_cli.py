"""Faults injected into the real commands (issue 9): full and read-only disks, truncated and
garbled LMDBs, interrupts, closed pipes, killed processes and their leftovers.

Each runs ``python -m upcall`` in a subprocess and checks what a user sees: the exit status, one
line naming the file, no traceback, nothing half-written under a final name. Full and read-only
disks are small tmpfs mounts (the tests run as root; root ignores permission bits, so read-only
means a read-only mount).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "UPCALL_DEBUG": "0"}


def upcall(*args: object, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "upcall", *map(str, args)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def one_line(res: subprocess.CompletedProcess, code: int, *needles: object) -> str:
    """The one stderr line of a failed command, checked: exit status, no traceback, the names."""
    err = res.stderr.strip()
    assert res.returncode == code, (res.returncode, err)
    assert "Traceback" not in err and "Error:" not in err.split(": error:")[0], err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert str(needle) in err, (needle, err)
    return err


@contextlib.contextmanager
def tmpfs(folder: Path, *options: str):
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A small data set up to its LMDB dataset: d/ (clips, PNGs, lists) and ds/."""
    root = tmp_path_factory.mktemp("faults")
    for args in (
        ("synth", "d", "--n-train", 60, "--workers", 2),
        ("spectrograms", "d", "--workers", 2),
        ("lists", "d"),
        ("lmdb", "d/lists", "--out", "ds", "--size", "native", "--workers", 2),
    ):
        res = upcall(*args, cwd=root)
        assert res.returncode == 0, res.stderr
    return root


def make_job(data: Path, cwd: Path, dataset: Path | None = None) -> Path:
    res = upcall(
        "nets", "--dataset", dataset or data / "ds", "--networks", "whalenet-small",
        "--lr", "0.01", "--epochs", 1, "--out", cwd / "jobs", cwd=cwd,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return cwd / "jobs" / "whalenet-small-lr0.01"


def copy_ds(data: Path, to: Path) -> Path:
    shutil.copytree(data / "ds", to)
    return to


# --- the CLI top level: OSErrors are one line naming the path --------------------------------


def test_read_only_output_is_one_line(tmp_path):
    with tmpfs(tmp_path / "ro", "ro", "size=64k") as ro:
        res = upcall("synth", ro / "d", "--n-train", 4, "--workers", 1, cwd=tmp_path)
        one_line(res, 1, ro / "d", "Read-only file system")


@pytest.mark.parametrize(
    "case",
    ["explore --out DIR", "synth-recording DIR", "nets --dataset FILE", "nets --out FILE"],
)
def test_wrong_kind_of_path_is_one_line(data, tmp_path, case):
    folder, file = tmp_path / "a_folder", tmp_path / "a_file"
    folder.mkdir()
    file.write_text("x")
    args = {
        "explore --out DIR": ("explore", data / "ds", "--out", folder),
        "synth-recording DIR": ("synth-recording", folder, "--minutes", 0.1),
        "nets --dataset FILE": ("nets", "--dataset", file, "--out", tmp_path / "jobs"),
        "nets --out FILE": ("nets", "--dataset", data / "ds", "--out", file),
    }[case]
    res = upcall(*args, cwd=tmp_path)
    one_line(res, 1, folder if "DIR" in case else file)
    assert file.read_text() == "x" and not any(folder.iterdir())


def test_classify_csv_into_a_folder_is_one_line(data, tmp_path):
    job = make_job(data, tmp_path)
    assert upcall("train", job, cwd=tmp_path).returncode == 0
    (tmp_path / "out.csv").mkdir()
    res = upcall("classify", job, data / "d/train/train1.aiff", "--csv", "out.csv", cwd=tmp_path)
    one_line(res, 1, "out.csv")


# --- 5: a truncated or garbled LMDB is one line naming data.mdb ------------------------------


@pytest.mark.parametrize("size", [100, 4096, 8192, -4096])
def test_truncated_lmdb_is_one_line_not_a_bus_error(data, tmp_path, size):
    ds = copy_ds(data, tmp_path / "ds")
    mdb = ds / "train_db" / "data.mdb"
    os.truncate(mdb, size if size > 0 else mdb.stat().st_size + size)
    one_line(upcall("explore", ds, cwd=tmp_path), 1, mdb, "truncated")
    job = make_job(data, tmp_path, ds)
    one_line(upcall("train", job, cwd=tmp_path), 1, mdb)


def test_garbled_lmdb_is_one_line(data, tmp_path):
    ds = copy_ds(data, tmp_path / "ds")
    mdb = ds / "train_db" / "data.mdb"
    raw = bytearray(mdb.read_bytes())
    for i in range(8192, len(raw) - 100, 37):  # every page past the two meta pages
        raw[i] ^= 0x5A
    mdb.write_bytes(raw)
    one_line(upcall("explore", ds, cwd=tmp_path), 1, mdb)


def test_caffe_engine_blames_the_database(data, tmp_path, caffe):
    ds = copy_ds(data, tmp_path / "ds")
    mdb = ds / "val_db" / "data.mdb"
    os.truncate(mdb, 8192)
    job = make_job(data, tmp_path, ds)  # after: the job is made for the truncated copy
    err = one_line(upcall("train", job, "--engine", "caffe", cwd=tmp_path), 1, mdb)
    assert "prototxt" not in err


# --- 6: a full disk ---------------------------------------------------------------------------


def test_synth_on_a_full_disk_stops_with_the_reason_once(tmp_path):
    with tmpfs(tmp_path / "full", "size=200k") as full:
        res = upcall("synth", full / "d", "--n-train", 60, "--workers", 2, cwd=tmp_path)
        one_line(res, 1, "No space left on device", full / "d" / "train")
        assert "System error" not in res.stderr
        clips = list((full / "d" / "train").glob("train*.aiff"))
        assert clips and {p.stat().st_size for p in clips} == {8054}  # only whole clips


def test_lmdb_on_a_full_disk_writes_nothing(data, tmp_path):
    with tmpfs(tmp_path / "full", "size=120k") as full:
        res = upcall("lmdb", data / "d/lists", "--out", full / "ds", "--size", "native",
                     cwd=tmp_path)  # fmt: skip
        one_line(res, 1, full / "ds", "no space left")
        assert not (full / "ds").exists()
        assert not [p for p in full.iterdir() if p.name.startswith(".ds.")]


# --- 7: interrupts and closed pipes -----------------------------------------------------------

# Sends this process SIGINT while `upcall train` imports its module: a Ctrl-C in the first second.
_CTRL_C_DURING_IMPORT = """
import os, signal, sys
class Finder:
    def find_spec(self, name, path=None, target=None):
        if name == "upcall.workflows.train":
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, Finder())
sys.argv = ["upcall", "train", "JOB"]
from upcall.cli import main
sys.exit(main())
"""


def test_ctrl_c_while_importing_is_one_line_and_death_by_sigint(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", _CTRL_C_DURING_IMPORT], cwd=tmp_path, env=ENV,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert one_line(res, -signal.SIGINT) == "upcall train: interrupted"


def test_sigterm_while_importing_is_one_line_and_death_by_sigterm(tmp_path):
    script = _CTRL_C_DURING_IMPORT.replace("signal.SIGINT", "signal.SIGTERM")
    res = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert one_line(res, -signal.SIGTERM) == "upcall train: interrupted (SIGTERM)"


def test_an_interrupt_called_from_python_returns_128_plus_the_signal(monkeypatch, capsys):
    """main(argv) from Python code (not the program) must not kill its caller: it returns the
    status a shell would show."""
    from upcall.cli import main
    from upcall.data import explore

    def stopped(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(explore, "run", stopped)
    assert main(["explore", "anything"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.splitlines() == ["upcall explore: interrupted (SIGTERM)"]
    assert signal.getsignal(signal.SIGTERM) is previous  # the caller's handler is back


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
@pytest.mark.parametrize("delay", [0.0, 0.5])
def test_stop_signal_at_random_moments_of_start_up(data, tmp_path, delay, sig):
    """From main()'s first line on (importing torch, building the job, the first iterations),
    a stop signal ends `upcall train` by that signal after one line."""
    from tests.faults.test_kill import wait_for_main

    job = make_job(data, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "upcall", "train", str(job)], cwd=tmp_path, env=ENV,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_main(proc)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    if proc.returncode != 0:  # 0: it had finished
        assert proc.returncode == -sig, (proc.returncode, err)
        assert "interrupted" in err.splitlines()[-1] or "resume" in err.splitlines()[-1], err


def test_closed_stdout_pipe_exits_141_quietly(data, tmp_path):
    job = make_job(data, tmp_path)
    r, w = os.pipe()
    os.close(r)  # `upcall train JOB | head -1` once head has gone
    res = subprocess.run(
        [sys.executable, "-m", "upcall", "train", str(job)], cwd=tmp_path, env=ENV,
        stdout=w, stderr=subprocess.PIPE, text=True, timeout=300,
    )  # fmt: skip
    os.close(w)
    assert res.returncode == 141, res.stderr
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def test_workers_die_quietly_with_a_killed_parent(tmp_path):
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("one core: upcall starts one worker, in its own process")
    assert upcall("synth", "d", "--n-train", 3000, cwd=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "upcall", "spectrograms", "d", "--workers", "64"], cwd=tmp_path,
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    want = min(cores, 64)  # 3000 clips in 94 chunks of 32: as many workers as cores, no more
    deadline = time.monotonic() + 60
    while len(_children(proc.pid)) < want and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    workers = _children(proc.pid)
    assert len(workers) == want, "not one worker a core (asked for 64)"
    proc.kill()
    _, err = proc.communicate(timeout=60)  # EOF: every worker has closed its stderr (exited)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# --- 9: temporaries of killed runs are removed by the next run -------------------------------


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_next_run_removes_temporaries_of_dead_processes(data, tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / f".ds.{dead}.tmp" / "train_db").mkdir(parents=True)
    (tmp_path / f".ds.{dead}.tmp" / "train_db" / "data.mdb").write_bytes(b"\0" * 4096)
    (tmp_path / f".ds.{alive}.tmp").mkdir()  # a live writer's: kept
    (tmp_path / f".x.png.{dead}.tmp.png").write_bytes(b"half")
    res = upcall("lmdb", data / "d/lists", "--out", "ds", "--size", "native", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert [n for n in left if ".tmp" in n] == [f".ds.{alive}.tmp"]


def test_lmdb_killed_then_rerun_leaves_no_temporary(data, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "upcall", "lmdb", str(data / "d/lists"), "--out", "ds",
         "--size", "64x64", "--workers", "1"], cwd=tmp_path, env=ENV,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".ds.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    res = upcall("lmdb", data / "d/lists", "--out", "ds", "--size", "native", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not list(tmp_path.glob(".ds.*.tmp")) and (tmp_path / "ds" / "dataset.json").is_file()


def test_an_error_raised_while_a_ctrl_c_unwinds_is_an_interrupt(monkeypatch, capsys):
    """A Ctrl-C in the middle of an import can leave a half-made module that then fails with
    another error (seen with scipy.signal): that is still the user's Ctrl-C, one line, 130."""
    from upcall.cli import main
    from upcall.data import explore

    def half_imported(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError("cannot import name 'x' from partially initialized module") from None

    monkeypatch.setattr(explore, "run", half_imported)
    assert main(["explore", "anything"]) == 130
    assert capsys.readouterr().err.splitlines() == ["upcall explore: interrupted"]
