"""The caffe engine: real `caffe train` on a job directory, its log parsed into the shared format."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tinydata import level_dataset
from upcall.engines import get_engine
from upcall.engines.caffe.log import LogState
from upcall.errors import UpcallError
from upcall.job.records import read_metrics, read_summary, train_records, validation_records

# Real lines of a Caffe 1.0 run (bullseye), including another thread's line inside a test.
LOG = """\
I1124 09:04:55.811535 23480 solver.cpp:347] Iteration 0, Testing net (#0)
I1124 09:04:55.820624 23485 data_layer.cpp:73] Restarting data prefetching from start.
I1124 09:04:55.822595 23480 solver.cpp:414]     Test net output #0: accuracy = 0.5
I1124 09:04:55.822603 23480 solver.cpp:414]     Test net output #1: loss = 0.518659 (* 1 = 0.518659 loss)
I1124 09:03:03.986649 22488 solver.cpp:239] Iteration 0 (-785.153 iter/s, 0s/2 iters), loss = 0.517624
I1124 09:03:03.986655 22488 solver.cpp:258]     Train net output #0: loss = 0.517624 (* 1 = 0.517624 loss)
I1124 09:03:03.986666 22488 sgd_solver.cpp:112] Iteration 0, lr = 0.01
I1124 09:03:03.986809 22488 solver.cpp:239] Iteration 2 (400 iter/s, 0.005s/2 iters), loss = 0.199894
I1124 09:03:03.986817 22488 sgd_solver.cpp:112] Iteration 2, lr = 0.001
I1124 09:03:03.986822 22488 solver.cpp:464] Snapshotting to binary proto file snapshot_iter_3.caffemodel
I1124 09:03:03.992689 22488 solver.cpp:327] Iteration 6, loss = 0.00765378
W1124 09:03:03.992690 22488 solver.cpp:1] a warning
I1124 09:03:03.992695 22488 solver.cpp:444] Optimization stopped early.
"""


def test_log_parser_reads_digits_fields():
    state = LogState()
    points = [p for line in LOG.splitlines(keepends=True) if (p := state.feed(line))]
    assert points == [(0, 0.517624, 0.01), (2, 0.199894, 0.001)]
    assert state.train == points
    assert state.tests == {0: {"accuracy": 0.5, "loss": 0.518659}}
    assert state.snapshots == ["snapshot_iter_3.caffemodel"]
    assert state.timed == (0.005, 2)  # the first display's timing is Caffe's start-up noise
    assert state.stopped_early and state.fatal is None
    state.feed("F1124 09:03:04.0 22488 io.cpp:39] Check failed: fd != -1 File not found: x\n")
    assert (
        state.fatal == "F1124 09:03:04.0 22488 io.cpp:39] Check failed: fd != -1 File not found: x"
    )


# --- real Caffe -------------------------------------------------------------------------------

TRAIN_VAL = """name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { mean_file: "DS/mean.binaryproto" scale: 0.00390625 }
  data_param { source: "DS/train_db" backend: LMDB batch_size: 4 } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { mean_file: "DS/mean.binaryproto" scale: 0.00390625 }
  data_param { source: "DS/val_db" backend: LMDB batch_size: VAL_BATCH } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 5 stride: 4 weight_filler { type: "xavier" } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip1" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""
# the same net for `upcall classify`: an Input layer for the Data layers, a Softmax for the loss
DEPLOY = TRAIN_VAL.split('layer { name: "conv1"')[1].split('layer { name: "accuracy"')[0]
DEPLOY = f"""name: "tiny"
layer {{ name: "data" type: "Input" top: "data"
  input_param {{ shape {{ dim: 1 dim: 1 dim: 129 dim: 30 }} }} }}
layer {{ name: "conv1"{DEPLOY}layer {{ name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }}
"""

SOLVER = """net: "train_val.prototxt"
test_iter: 2
test_interval: 3
base_lr: 0.01
momentum: 0.9
lr_policy: "step"
stepsize: 4
gamma: 0.1
display: 2
max_iter: MAX_ITER
snapshot: 3
snapshot_prefix: "snapshot"
solver_mode: GPU
random_seed: 1
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """12 training and 4 validation spectrogram-sized images, the classes told apart by level."""
    root = tmp_path_factory.mktemp("caffe-engine")
    return level_dataset(root, [i % 2 for i in range(16)])


def make_job(
    job: Path,
    dataset: Path,
    *,
    max_iter: int,
    every: int = 3,
    val_batch: int = 2,
    test_iter: int = 2,
) -> Path:
    """A job directory; ``every``: the test and snapshot interval."""
    job.mkdir(exist_ok=True)
    net = TRAIN_VAL.replace("DS", str(dataset)).replace("VAL_BATCH", str(val_batch))
    (job / "train_val.prototxt").write_text(net)
    (job / "deploy.prototxt").write_text(DEPLOY)
    solver = SOLVER.replace("MAX_ITER", str(max_iter)).replace(": 3\n", f": {every}\n")
    solver = solver.replace("test_iter: 2\n", f"test_iter: {test_iter}\n")
    (job / "solver.prototxt").write_text(solver)
    (job / "config.json").write_text(json.dumps({"network": "tiny", "dataset": str(dataset)}))
    return job


def caffe_tests(job: Path) -> dict[int, dict[str, float]]:
    state = LogState()
    for line in (job / "caffe_output.log").read_text().splitlines():
        state.feed(line)
    return state.tests


def test_engine_trains_with_real_caffe_into_the_shared_format(
    caffe, dataset, tmp_path, monkeypatch
):
    monkeypatch.setenv("GLOG_log_prefix", "0")  # the engine sets glog's environment for Caffe
    job = make_job(tmp_path / "job", dataset, max_iter=6)
    summary = get_engine("caffe").train(job)

    records = read_metrics(job)
    train = train_records(records)
    assert [(r.iter, r.epoch, r.lr) for r in train] == [
        (0, 0.0, 0.01),
        (2, 0.666667, 0.01),
        (4, 1.333333, 0.001),  # step policy: × 0.1 at 4
    ]
    log = (job / "caffe_output.log").read_text()
    displayed = re.findall(r"Iteration (\d+) \(.*\), loss = (\S+)", log)
    assert [(r.iter, r.loss) for r in train] == [(int(i), float(v)) for i, v in displayed]
    tests = validation_records(records)
    assert [r.iter for r in tests] == [0, 3, 6]
    # pycaffe's scores of snapshot N (and of the initial weights) give Caffe's own test figures
    for record, (it, caffe_says) in zip(tests, sorted(caffe_tests(job).items()), strict=True):
        assert record.iter == it
        assert record.val_loss == pytest.approx(caffe_says["loss"], rel=1e-4)
        assert record.val_accuracy == pytest.approx(caffe_says["accuracy"], abs=1e-6)
        assert set(record.recall) == {"not-whale", "whale"}
    assert summary.engine == "caffe" and summary.iterations == 6
    assert summary.epochs == 2.0  # 6 iterations × batch 4 / 12 training images
    assert summary.snapshots == ("snapshot_iter_3.caffemodel", "snapshot_iter_6.caffemodel")
    assert summary.final == tests[-1]
    assert read_summary(job) == summary
    assert "solver_mode: CPU" in (job / "caffe_solver.prototxt").read_text()
    assert (job / "curves.png").is_file() and (job / "snapshot_iter_6.solverstate").is_file()


def test_resume_continues_from_the_last_snapshot(caffe, dataset, tmp_path):
    job = make_job(tmp_path / "job", dataset, max_iter=3)
    get_engine("caffe").train(job)
    make_job(job, dataset, max_iter=6)  # the same job, now longer
    summary = get_engine("caffe").train(job, resume=True)

    assert (
        f"Resuming from {job}/snapshot_iter_3.solverstate" in (job / "caffe_output.log").read_text()
    )
    records = read_metrics(job)
    assert [r.iter for r in train_records(records)] == [0, 2, 4]
    assert [r.iter for r in validation_records(records)] == [0, 3, 6]
    assert summary.resumed_from == 3 and summary.iterations == 6


def test_interrupt_stops_with_a_snapshot(caffe, dataset, tmp_path):
    job = make_job(tmp_path / "job", dataset, max_iter=10_000_000, every=10_000_000)
    code = f"from upcall.engines import get_engine; get_engine('caffe').train({str(job)!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    log = job / "caffe_output.log"
    while proc.poll() is None and "Iteration 4," not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "stopped at iteration" in err and "--resume" in err
    state = LogState()
    for line in log.read_text().splitlines():
        state.feed(line)
    assert state.stopped_early
    last = state.snapshots[-1]
    assert re.fullmatch(r"snapshot_iter_\d+\.caffemodel", last) and (job / last).is_file()


def test_errors_are_one_line(caffe, dataset, tmp_path):
    job = make_job(tmp_path / "job", dataset, max_iter=2)
    with pytest.raises(
        UpcallError, match=r"there is no snapshot_iter_N\.solverstate to resume from"
    ):
        get_engine("caffe").train(job, resume=True)
    with pytest.raises(UpcallError, match="--gpu 0: the bundled Caffe is Debian's CPU build"):
        get_engine("caffe", gpu=0).train(job)
    # A kernel taller than the 129-row images: Caffe's own shape check stops it.
    (job / "train_val.prototxt").write_text(
        (job / "train_val.prototxt").read_text().replace("kernel_size: 5", "kernel_size: 200")
    )
    with pytest.raises(
        UpcallError,
        match=r"train_val.prototxt: Caffe cannot build the TRAIN net: "
        r"python3 failed \(exit status \d+\): F\d{4} .* Check failed: shape\[i\] >= 0",
    ):
        get_engine("caffe").train(job)
    # Without the initial test Caffe itself meets the error, in its log.
    with (job / "solver.prototxt").open("a") as f:
        f.write("test_initialization: false\n")
    with pytest.raises(
        UpcallError,
        match=r"caffe_output.log: caffe train failed \(exit status \d+\): "
        r"F\d{4} .* Check failed: shape\[i\] >= 0",
    ):
        get_engine("caffe").train(job)


def test_scoring_uses_the_gpu_only_with_the_users_pycaffe(monkeypatch):
    from upcall.engines.caffe.root import pycaffe_gpu

    # the bundled bullseye pycaffe is CPU-only, even when UPCALL_CAFFE trains on a GPU
    monkeypatch.setenv("UPCALL_CAFFE", "/opt/caffe/bin/caffe")
    monkeypatch.delenv("UPCALL_CAFFE_PYTHON", raising=False)
    assert pycaffe_gpu(0) is None and pycaffe_gpu(None) is None
    monkeypatch.setenv("UPCALL_CAFFE_PYTHON", "/opt/caffe/python")
    assert pycaffe_gpu(1) == 1
