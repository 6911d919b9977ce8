"""``upcall sweep`` / scripts/run_sweep.py: every (network, rate) trained, failures isolated, reruns skip."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upcall import cli
from upcall.errors import BatchFailed, BatchReport
from upcall.workflows.sweep import write_jobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from upcall.audio.synth import SynthSettings, synthesize
    from upcall.data.dataset import DatasetSettings, build_dataset
    from upcall.data.lists import make_lists
    from upcall.data.listsfolder import ListSettings
    from upcall.data.render import ensure

    root = tmp_path_factory.mktemp("sweep")
    synthesize(root / "data", SynthSettings(n_train=60, seed=3), workers=1)
    ensure(root / "data", workers=1)
    make_lists(root / "data", out=root / "lists", settings=ListSettings(seed=3))
    build_dataset(root / "lists", out=root / "ds", settings=DatasetSettings(size=None, workers=1))
    return root / "ds"


def test_sweep_trains_each_job_isolates_failures_and_skips_on_rerun(dataset, tmp_path, capsys):
    jobs = tmp_path / "jobs"
    argv = [
        "sweep",
        "--dataset",
        str(dataset),
        "--lr",
        "0.01,0.05",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--out",
        str(jobs),
    ]
    # AlexNet cannot take the native 129×30 images: it is reported, the WhaleNet jobs still train
    assert cli.main([*argv, "--networks", "alexnet,whalenet-small"]) == 1
    captured = capsys.readouterr()
    assert "alexnet: alexnet needs images of at least 227×227" in captured.err
    trained = sorted(p.parent.name for p in jobs.glob("*/summary.json"))
    assert trained == ["whalenet-small-lr0.01", "whalenet-small-lr0.05"]
    assert "whalenet-small-lr0.05" in (jobs / "report.csv").read_text()
    # the sweep ends with the report, report.html included (the same code as `upcall report`)
    page = (jobs / "report.html").read_text()
    assert page.count('<td class="name">whalenet-small-lr0.0') == 2
    assert f"report: {jobs / 'report.html'}" in captured.out
    stamp = (jobs / "whalenet-small-lr0.01" / "summary.json").stat().st_mtime_ns

    # the thin door runs the same command; finished jobs are not trained again
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "run_sweep.py"),
            *argv[1:],
            "--networks",
            "whalenet-small",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("already trained") == 2
    assert (jobs / "whalenet-small-lr0.01" / "summary.json").stat().st_mtime_ns == stamp


def test_rerun_keeps_jobs_of_another_version_and_reports_changed_trained_ones(
    dataset, tmp_path, capsys
):
    out = tmp_path / "jobs"
    kw = dict(networks=["whalenet-small"], lrs=[0.01, 0.05], out=out, epochs=1, seed=0)
    folders = write_jobs(dataset, report=BatchReport("jobs"), **kw)
    assert [f.name for f in folders] == ["whalenet-small-lr0.01", "whalenet-small-lr0.05"]
    for folder in folders:
        (folder / "summary.json").write_text("{}")  # stands for training results
    config = folders[0] / "config.json"
    older = {**json.loads(config.read_text()), "upcall_version": "0.0.1"}
    config.write_text(json.dumps(older, indent=2) + "\n")

    # a newer upcall keeps the trained job
    report = BatchReport("jobs")
    assert write_jobs(dataset, report=report, **kw) == folders
    report.finish()
    assert json.loads(config.read_text())["upcall_version"] == "0.0.1"

    # other settings over trained jobs: each is reported, the sweep does not abort
    report = BatchReport("jobs")
    assert write_jobs(dataset, report=report, **{**kw, "epochs": 2}) == []
    with pytest.raises(BatchFailed):
        report.finish()
    err = capsys.readouterr().err + capsys.readouterr().out
    assert err.count("already has training results") == 2
    assert json.loads(config.read_text())["epochs"] == 1


def test_unknown_engine_is_a_usage_error(dataset, tmp_path):
    argv = ["sweep", "--dataset", str(dataset), "--out", str(tmp_path), "--engine", "tf"]
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2


def test_job_without_a_seed_loads_and_trains(dataset, tmp_path):
    from upcall.engines import get_engine
    from upcall.job.datasetinfo import load_dataset
    from upcall.job.nets import make_job, write_job
    from upcall.job.solver import SolverSettings
    from upcall.job.spec import load_job

    # as the DIGITS server writes a job whose form left random_seed blank (`upcall nets` draws
    # and records one: tests/job/test_nets.py)
    unseeded = make_job("whalenet-small", load_dataset(dataset), SolverSettings(seed=None))
    job = write_job(unseeded, tmp_path / "jobs")
    assert json.loads((job / "config.json").read_text())["seed"] is None
    assert load_job(job).seed == 0
    solver = job / "solver.prototxt"
    solver.write_text(re.sub(r"max_iter: \d+", "max_iter: 2", solver.read_text()))
    assert get_engine("torch", threads=1).train(job).iterations == 2


def test_sigint_stops_the_sweep_without_starting_the_next_job(dataset, tmp_path):
    jobs = tmp_path / "jobs"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "upcall", "sweep", "--dataset", str(dataset), "--out", str(jobs)]
    cmd += ["--networks", "whalenet-small", "--lr", "0.01,0.05", "--epochs", "10000"]
    proc = subprocess.Popen(
        [*cmd, "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = jobs / "whalenet-small-lr0.01" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    try:
        while not metrics.exists() or "train" not in metrics.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # a sweep that went on to the next job would otherwise outlive the test
    assert proc.returncode == -signal.SIGINT, err  # died by it, after one line
    # reported once, on stderr: rerun the sweep (not `upcall train JOB --resume`)
    assert err.count("run the same upcall sweep command again") == 1 and "--resume" not in err + out
    assert not (jobs / "whalenet-small-lr0.05" / "metrics.jsonl").exists()
