"""Fault injection for `upcall train`, `sweep` and `report`: the real commands, killed, interrupted,
on a full disk (a small tmpfs; the tests run as root) and given cut-short files. Each asserts the
exit status, one line naming the file, no traceback, nothing half-written under a final name, and
results identical to an uninterrupted run where the run could finish."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engines.test_train import SOLVER, make_job
from tests.workflows.test_sweep import dataset  # noqa: F401  (a fixture)
from upcall.engines import get_engine
from upcall.job.records import METRICS as METRICS_FILE
from upcall.job.records import WallTimes, read_metrics, read_summary
from upcall.job.writer import JobWriter
from upcall.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
SNAPSHOT = ("caffemodel", "solverstate", "rng.pt")


def upcall(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """Run ``upcall ARGS`` (or python ``code`` that runs it) in a child process."""
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "upcall", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)


def one_line(done: subprocess.CompletedProcess, status: int, *names: str) -> str:
    """The single line on stderr (warnings aside), which names ``names``; no traceback."""
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip() and "warning:" not in x]
    assert len(lines) == 1, done.stderr
    assert all(n in lines[0] for n in names), lines[0]
    return lines[0]


def set_solver(job: Path, max_iter: int, **changes: str) -> None:
    text = SOLVER.format(max_iter=max_iter)
    for key, value in changes.items():
        text = text.replace(f"{key}: ", f"{key}: {value} #", 1)
    (job / "solver.prototxt").write_text(text)


def files(job: Path) -> dict[str, bytes]:
    """Snapshot files by name (every one must be whole: it parses)."""
    out = {}
    for p in sorted(job.rglob("*_iter_*")):
        assert not p.name.startswith("."), p  # no temporary left behind
        if p.suffix in (".caffemodel", ".solverstate"):
            message = (
                caffe_pb2.NetParameter() if p.suffix == ".caffemodel" else caffe_pb2.SolverState()
            )
            message.ParseFromString(p.read_bytes())
        out[p.name] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run: 12 iterations, snapshots at 6 and 12, into snaps/."""
    job = make_job(tmp_path_factory.mktemp("reference"))
    set_solver(job, 12, snapshot_prefix='"snaps/snapshot"')
    (job / "snaps").mkdir()
    get_engine("torch", threads=1).train(job)
    return job


def fresh(tmp_path: Path) -> Path:
    job = make_job(tmp_path)
    set_solver(job, 12, snapshot_prefix='"snaps/snapshot"')
    (job / "snaps").mkdir()
    return job


@pytest.fixture
def tmpfs(tmp_path):
    mounts = []

    def mount(folder: Path, kib: int) -> None:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)], check=True
        )
        mounts.append(folder)

    yield mount
    for folder in reversed(mounts):
        subprocess.run(["umount", str(folder)], check=False)


# 2 ---------------------------------------------------------------------------------------------
def test_retraining_a_trained_job_is_refused_and_restart_starts_over(tmp_path, reference):
    job = fresh(tmp_path)
    set_solver(job, 12, snapshot_prefix='"snaps/snapshot"', base_lr="0.01")
    assert upcall("train", str(job), "--threads", "1").returncode == 0
    before = files(job)
    summary = (job / "summary.json").read_bytes()
    set_solver(job, 12, snapshot_prefix='"snaps/snapshot"')  # back to the reference's rate
    line = one_line(
        upcall("train", str(job), "--threads", "1"), 1, str(job), "--resume", "--restart"
    )
    assert "summary.json" in line
    assert files(job) == before and (job / "summary.json").read_bytes() == summary  # untouched
    (job / "snaps" / "snapshot_iter_18.caffemodel").write_bytes(b"stale")  # from a longer run
    done = upcall("train", str(job), "--threads", "1", "--restart")
    assert done.returncode == 0, done.stderr
    assert files(job) == files(reference)  # the old run is gone entirely
    assert read_metrics(job) == read_metrics(reference)
    assert not list(job.glob(".restart-*"))


# 6 ---------------------------------------------------------------------------------------------
def test_full_disk_keeps_the_last_complete_set_and_resume_finishes(tmp_path, tmpfs, reference):
    job = fresh(tmp_path)
    pages = {n: -(-len(b) // 4096) for n, b in files(reference).items()}
    room = sum(pages.values()) - 1  # every page of both sets but one: set 12 cannot be written
    tmpfs(job / "snaps", room * 4)
    line = one_line(upcall("train", str(job), "--threads", "1"), 1, "snapshot_iter_12")
    assert "No space left on device" in line
    assert sorted(files(job)) == [f"snapshot_iter_6.{s}" for s in sorted(SNAPSHOT)]
    subprocess.run(["mount", "-o", "remount,size=1m", str(job / "snaps")], check=True)
    done = upcall("train", str(job), "--threads", "1", "--resume")
    assert done.returncode == 0, done.stderr
    assert files(job) == files(reference)
    assert read_metrics(job) == read_metrics(reference)


# SIGKILL in the middle of writing snapshot 12: after its first member was renamed into place
KILL_IN_SET = """
import os, signal, sys
from pathlib import Path
from upcall import cli
replace = os.replace
def replace_then_die(src, dst):
    replace(src, dst)
    if "_iter_12." in Path(dst).name and not Path(dst).name.startswith("."):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace_then_die
sys.exit(cli.main(["train", *sys.argv[1:]]))
"""


def test_sigkill_while_writing_a_set_then_resume(tmp_path, reference):
    job = fresh(tmp_path)
    killed = upcall(str(job), "--threads", "1", code=KILL_IN_SET)
    assert killed.returncode == -9, killed.stderr
    left = sorted(p.name for p in (job / "snaps").iterdir())
    assert [n for n in left if not n.startswith(".")] == sorted(
        [
            *(f"snapshot_iter_6.{s}" for s in SNAPSHOT),
            "snapshot_iter_12.rng.pt",  # renamed first; the .caffemodel comes last
        ]
    )
    assert any(n.startswith(".snapshot_iter_12.caffemodel.") for n in left)  # a temporary
    done = upcall("train", str(job), "--threads", "1", "--resume")
    assert done.returncode == 0, done.stderr
    assert "snapshot 12 is incomplete" in done.stderr
    assert files(job) == files(reference)  # temporaries gone, set 12 made whole
    assert read_metrics(job) == read_metrics(reference)


def test_resume_skips_a_pair_cut_short(tmp_path, reference):
    """Real Caffe writes its pair in place: a .caffemodel cut short (a crash, a full disk) is not
    resumed from; the set before it is, with a warning."""
    job = fresh(tmp_path)
    shutil.copytree(reference / "snaps", job / "snaps", dirs_exist_ok=True)
    model = job / "snaps" / "snapshot_iter_12.caffemodel"
    model.write_bytes(model.read_bytes()[:1000])
    (job / "metrics.jsonl").write_text(
        "".join(json.dumps(r.to_json()) + "\n" for r in read_metrics(reference) if r.iter < 9)
    )
    done = upcall("train", str(job), "--threads", "1", "--resume")
    assert done.returncode == 0, done.stderr
    assert "snapshot_iter_12" in done.stderr and "incomplete" in done.stderr
    assert files(job) == files(reference)
    assert read_metrics(job) == read_metrics(reference)


# 7 ---------------------------------------------------------------------------------------------
def test_truncated_rng_state_is_one_line(tmp_path, reference):
    job = fresh(tmp_path)
    shutil.copytree(reference / "snaps", job / "snaps", dirs_exist_ok=True)
    rng = job / "snaps" / "snapshot_iter_12.rng.pt"
    rng.write_bytes(rng.read_bytes()[:100])
    set_solver(job, 14, snapshot_prefix='"snaps/snapshot"')
    one_line(upcall("train", str(job), "--threads", "1", "--resume"), 1, str(rng))


# 8 ---------------------------------------------------------------------------------------------
# Ctrl-C as the first job's last iteration ends: the engine's run is over, the summary not yet
# written. Chosen exactly by sending SIGINT from inside the engine's generator as it returns.
SWEEP_AT_END = """
import os, signal, sys
from upcall import cli
from upcall.engines.torch import engine
run = engine._Run.run
def run_then_ctrl_c(self, start):
    yield from run(self, start)
    os.kill(os.getpid(), signal.SIGINT)
engine._Run.run = run_then_ctrl_c
sys.exit(cli.main(["sweep", *sys.argv[1:]]))
"""


def test_sweep_stops_on_ctrl_c_after_a_jobs_last_iteration(tmp_path, dataset):  # noqa: F811
    out = tmp_path / "jobs"
    args = ["--dataset", str(dataset), "--out", str(out), "--networks", "whalenet-small"]
    args += ["--lr", "0.01,0.05", "--epochs", "1", "--threads", "1"]
    done = upcall(*args, code=SWEEP_AT_END)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "--resume" not in done.stderr + done.stdout
    assert "run the same upcall sweep command again" in done.stderr
    assert (out / "whalenet-small-lr0.01" / "summary.json").exists()
    assert not (out / "whalenet-small-lr0.05" / "metrics.jsonl").exists()  # never started
    again = upcall("sweep", *args)
    assert again.returncode == 0, again.stderr
    assert "whalenet-small-lr0.01: already trained" in again.stdout
    assert (out / "whalenet-small-lr0.05" / "summary.json").exists()


# 10 --------------------------------------------------------------------------------------------
def test_torn_metrics_line_is_dropped_on_resume(tmp_path, reference):
    """A crash after snapshot 6 while writing a record: resume drops the torn line, warns, and
    ends with the records of an uninterrupted run."""
    job = fresh(tmp_path)
    for s in SNAPSHOT:
        shutil.copy(reference / "snaps" / f"snapshot_iter_6.{s}", job / "snaps")
    lines = (reference / "metrics.jsonl").read_text().splitlines(keepends=True)
    kept = [x for x in lines if json.loads(x)["iter"] < 8]
    (job / "metrics.jsonl").write_text("".join(kept) + lines[len(kept)][:20])
    done = upcall("train", str(job), "--threads", "1", "--resume")
    assert done.returncode == 0, done.stderr
    assert "metrics.jsonl" in done.stderr and "torn" in done.stderr
    assert read_metrics(job) == read_metrics(reference)
    assert files(job) == files(reference)


def test_report_reports_the_bad_job_and_goes_on(tmp_path, reference):
    jobs = tmp_path / "jobs"
    for name in ("a-torn", "b-garbled", "c-fine"):
        shutil.copytree(reference, jobs / name)
    torn = jobs / "a-torn" / "metrics.jsonl"
    torn.write_text(torn.read_text()[:-30])
    garbled = jobs / "b-garbled" / "metrics.jsonl"
    lines = garbled.read_text().splitlines(keepends=True)
    garbled.write_text("".join(lines[:2]) + "{nonsense\n" + "".join(lines[2:]))
    done = upcall("report", str(jobs), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    # a warning for the torn line, one line for the bad job, the batch's summary (the notes
    # between them: the HTML page finds no snapshots to score in these copied jobs)
    lines = done.stderr.splitlines()
    warning, bad, summary = lines[0], lines[1], lines[-1]
    assert all("no per-clip scores for the report" in line for line in lines[2:-1])
    assert warning.startswith(f"{torn}:") and "warning: dropped a torn last line" in warning
    assert bad.startswith(f"{garbled.parent}: {garbled}:3: not a JSON line")
    assert "1 of 3 jobs failed" in summary
    csv = (tmp_path / "out" / "report.csv").read_text()
    assert "a-torn" in csv and "c-fine" in csv and "b-garbled" not in csv


# 13 --------------------------------------------------------------------------------------------
def test_resumed_summary_counts_the_whole_training_time(tmp_path):
    job = make_job(tmp_path, max_iter=6)
    first = get_engine("torch", threads=1).train(job)
    at_six = WallTimes.read(job).upto(6)
    assert 0 < at_six <= first.wall_seconds
    set_solver(job, 7)
    second = get_engine("torch", threads=1).train(job, resume=True)
    assert second.wall_seconds >= at_six and second.resumed_from == 6


def test_best_leaves_out_the_untrained_test(tmp_path):
    writer = JobWriter(tmp_path, class_names=["not-whale", "whale"])
    writer.test(iter=0, epoch=0.0, val_loss=0.1, val_accuracy=0.9)
    writer.test(iter=5, epoch=1.0, val_loss=0.5, val_accuracy=0.6)
    summary = writer.finish(
        engine="torch", network="tiny", iterations=5, epochs=1.0, wall_seconds=1.0,
        train_images_per_second=None, device="cpu", threads=1, resumed_from=None, snapshots=(),
    )  # fmt: skip
    assert (summary.best.val_loss, summary.best.val_accuracy) == (0.5, 0.6)
    assert read_summary(tmp_path).best == summary.best


@pytest.mark.parametrize("rate", ["0", "-0.01"])
def test_non_positive_base_lr_is_refused(tmp_path, rate):
    job = make_job(tmp_path)
    set_solver(job, 12, base_lr=rate)
    one_line(
        upcall("train", str(job), "--threads", "1"), 1, str(job / "solver.prototxt"), "base_lr"
    )
    assert not list(job.glob("snapshot_*")) and not (job / "metrics.jsonl").exists()


def test_job_given_as_its_solver_file(tmp_path):
    job = make_job(tmp_path, max_iter=2)
    done = upcall("train", str(job / "solver.prototxt"), "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert f"summary:   {job / 'summary.json'}" in done.stdout
    assert read_summary(job).iterations == 2


# 6, real Caffe ---------------------------------------------------------------------------------
def test_caffe_full_disk_then_resume_from_the_last_complete_pair(tmp_path, tmpfs, caffe):
    """Real Caffe writes its own pair, in place: on a full disk it stops with one line naming the
    snapshot, and --resume takes the latest pair where both files exist and parse."""
    job = fresh(tmp_path)
    straight = fresh(tmp_path / "straight")
    get_engine("caffe").train(straight)
    pages = {n: -(-len(b) // 4096) for n, b in files(straight).items()}
    tmpfs(job / "snaps", (sum(pages.values()) - 1) * 4)
    line = one_line(upcall("train", str(job), "--engine", "caffe"), 1, "snapshot_iter_12")
    assert "Caffe could not write this snapshot" in line
    subprocess.run(["mount", "-o", "remount,size=1m", str(job / "snaps")], check=True)
    done = upcall("train", str(job), "--engine", "caffe", "--resume")
    assert done.returncode == 0, done.stderr
    assert "Resuming from" in (job / "caffe_output.log").read_text()
    assert read_summary(job).resumed_from == 6
    assert sorted(files(job)) == sorted(files(straight))


def test_a_job_trains_in_one_process_at_a_time(tmp_path):
    """A second `upcall train` of a job being trained is refused, and its status says so."""
    from upcall.engines import JobStatus
    from upcall.engines.base import TRAIN_LOCK

    job = fresh(tmp_path)
    set_solver(job, 1_000_000, snapshot_prefix='"snaps/snapshot"')
    first = subprocess.Popen(
        [sys.executable, "-m", "upcall", "train", str(job), "--threads", "1"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (job / METRICS_FILE).exists() or not (job / METRICS_FILE).stat().st_size:
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.1)
        assert get_engine("torch").status(job) is JobStatus.RUNNING
        one_line(upcall("train", str(job), "--restart"), 1, str(job / TRAIN_LOCK), "another upcall")
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert get_engine("torch").status(job) is JobStatus.RESUMABLE
