"""Tests for upcall train and the torch engine: a real tiny job trained end to end on real LMDBs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import numpy as np
import pytest

from upcall.data.datum import array_to_datum, write_mean
from upcall.engines import get_engine
from upcall.errors import UpcallError
from upcall.job.records import read_metrics, read_summary, train_records, validation_records
from upcall.proto import caffe_pb2, read_binary

H, W, CROP = 129, 30, 28
LAYERS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 stride: 2 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool1" top: "fc1"
  inner_product_param { num_output: 16 weight_filler { type: "xavier" } } }
layer { name: "drop1" type: "Dropout" bottom: "fc1" top: "fc1" dropout_param { dropout_ratio: 0.5 } }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
"""
DATA = """
layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: {phase} }}
  transform_param {{ crop_size: {crop} mirror: {mirror} mean_file: "{mean}" scale: 0.0078125 }}
  data_param {{ source: "{source}" batch_size: 8 backend: LMDB }} }}
"""
SOLVER = """net: "train_val.prototxt"
test_iter: 2
test_interval: 5
base_lr: 0.05
lr_policy: "step"
gamma: 0.5
stepsize: 4
momentum: 0.9
weight_decay: 0.0005
display: 2
max_iter: {max_iter}
snapshot: 6
snapshot_prefix: "snapshot"
solver_mode: CPU
random_seed: 7
"""


def images_for(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise; class 1 adds a bright band (an up-call-ish stripe), so the net can learn it."""
    x = rng.integers(0, 120, (len(labels), 1, H, W)).astype(np.uint8)
    x[labels == 1, :, 40:50, 5:25] += 120
    return x


def write_db(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            txn.put(b"%08d_%d" % (i, lab), array_to_datum(img, int(lab), encoding="png"))
    env.close()


def make_job(root: Path, *, max_iter: int = 12, seed: int = 0) -> Path:
    """A dataset (train/val LMDB, mean, labels) and a job directory as `upcall nets` writes them."""
    rng = np.random.default_rng(seed)
    ds, job = root / "dataset", root / "jobs" / "tiny-lr0.05"
    ds.mkdir(parents=True)
    job.mkdir(parents=True)
    train_labels, val_labels = np.arange(40) % 2, np.arange(16) % 2
    train = images_for(train_labels, rng)
    write_db(ds / "train_db", train, train_labels)
    write_db(ds / "val_db", images_for(val_labels, rng), val_labels)
    write_mean(ds / "mean.binaryproto", train.mean(axis=0).round())
    (ds / "labels.txt").write_text("not-whale\nwhale\n")
    info = {
        "image": {"height": H, "width": W, "channels": 1},
        "size": "native",
        "resize_mode": "none",
        "seed": 0,
        "spectrograms": {"mode": "tutorial"},
    }
    (ds / "dataset.json").write_text(json.dumps(info))
    data = "".join(
        DATA.format(
            phase=p,
            crop=CROP,
            mirror=str(p == "TRAIN").lower(),
            mean=ds / "mean.binaryproto",
            source=ds / f"{s}_db",
        )
        for p, s in (("TRAIN", "train"), ("TEST", "val"))
    )
    tail = (
        'layer { name: "accuracy" type: "Accuracy" bottom: "fc2" bottom: "label" '
        'top: "accuracy" include { phase: TEST } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }\n'
    )
    (job / "train_val.prototxt").write_text('name: "tiny"\n' + data + LAYERS + tail)
    deploy_in = (
        'layer { name: "data" type: "Input" top: "data" '
        f"input_param {{ shape {{ dim: 1 dim: 1 dim: {CROP} dim: {CROP} }} }} }}\n"
    )
    prob = 'layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" }\n'
    (job / "deploy.prototxt").write_text('name: "tiny"\n' + deploy_in + LAYERS + prob)
    (job / "solver.prototxt").write_text(SOLVER.format(max_iter=max_iter))
    (job / "config.json").write_text(
        json.dumps(
            {
                "network": "tiny",
                "base_lr": 0.05,
                "dataset": str(ds),
                "dataset_info": info,
                "seed": 7,
            }
        )
    )
    return job


def caffemodel_blobs(path: Path) -> dict[str, list[np.ndarray]]:
    net = read_binary(path, caffe_pb2.NetParameter())
    return {
        lay.name: [np.asarray(b.data, np.float32) for b in lay.blobs]
        for lay in net.layer
        if lay.blobs
    }


def test_train_writes_every_job_file(tmp_path):
    job = make_job(tmp_path)
    summary = get_engine("torch", threads=1).train(job)
    names = {p.name for p in job.iterdir()}
    for it in (6, 12):
        assert {
            f"snapshot_iter_{it}.caffemodel",
            f"snapshot_iter_{it}.solverstate",
            f"snapshot_iter_{it}.rng.pt",
        } <= names
    assert {"metrics.jsonl", "curves.png", "summary.json", "train.log"} <= names
    records = read_metrics(job)
    # display 2 → train records at 0, 2, ..., 10; tests at 0, 5, 10 and at the end (12 % 5 ≠ 0: no)
    assert [r.iter for r in train_records(records)] == [0, 2, 4, 6, 8, 10]
    assert [r.iter for r in validation_records(records)] == [0, 5, 10]
    lrs = {r.iter: r.lr for r in train_records(records)}
    assert (
        lrs[2] == pytest.approx(0.05)
        and lrs[4] == pytest.approx(0.025)
        and lrs[10] == pytest.approx(0.0125)
    )
    tests = validation_records(records)
    assert tests[-1].epoch == pytest.approx(10 * 8 / 40)
    assert set(tests[-1].recall) == {"not-whale", "whale"}
    assert summary == read_summary(job)
    assert (summary.engine, summary.network, summary.iterations) == ("torch", "tiny", 12)
    assert summary.epochs == pytest.approx(12 * 8 / 40)
    assert summary.snapshots == ("snapshot_iter_6.caffemodel", "snapshot_iter_12.caffemodel")
    assert summary.final == tests[-1] and summary.train_images_per_second > 0
    assert (summary.device, summary.threads) == ("cpu", 1)
    state = read_binary(job / "snapshot_iter_12.solverstate", caffe_pb2.SolverState())
    assert (state.iter, state.learned_net, len(state.history)) == (
        12,
        "snapshot_iter_12.caffemodel",
        6,
    )
    blobs = caffemodel_blobs(job / "snapshot_iter_12.caffemodel")
    assert [len(blobs[n]) for n in ("conv1", "fc1", "fc2")] == [2, 2, 2]
    assert blobs["fc2"][0].shape == (2 * 16,)


def test_resume_ends_with_the_same_weights(tmp_path):
    straight = make_job(tmp_path / "a")
    get_engine("torch", threads=1).train(straight)
    halves = make_job(tmp_path / "b")
    (halves / "solver.prototxt").write_text(SOLVER.format(max_iter=6))
    get_engine("torch", threads=1).train(halves)
    (halves / "solver.prototxt").write_text(SOLVER.format(max_iter=12))
    summary = get_engine("torch", threads=1).train(halves, resume=True)
    assert summary.resumed_from == 6
    a = caffemodel_blobs(straight / "snapshot_iter_12.caffemodel")
    b = caffemodel_blobs(halves / "snapshot_iter_12.caffemodel")
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y)
    assert read_metrics(halves) == read_metrics(straight)  # one history, no duplicated records


def test_resume_without_snapshot_is_a_clear_error(tmp_path):
    job = make_job(tmp_path)
    with pytest.raises(UpcallError, match=r"no snapshot_iter_N.solverstate to resume from"):
        get_engine("torch", threads=1).train(job, resume=True)


def test_gpu_without_cuda_is_a_clear_error(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UpcallError, match=r"--gpu 0 asked for, but this torch build sees no CUDA"):
        get_engine("torch", threads=1, gpu=0).train(make_job(tmp_path))


def test_missing_solver_names_the_file(tmp_path):
    with pytest.raises(UpcallError, match=r"solver.prototxt: no such file"):
        get_engine("torch", threads=1).train(tmp_path)


def test_sigint_stops_with_a_snapshot_and_resume_finishes(tmp_path):
    job = make_job(tmp_path, max_iter=100000)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = [sys.executable, "-m", "upcall", "train", str(job), "--threads", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (
        not (job / "metrics.jsonl").exists() or "train" not in (job / "metrics.jsonl").read_text()
    ):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGINT, err  # died by it, after one line
    assert "--resume" not in out and err.count("--resume") == 1  # reported once, on stderr
    snaps = sorted(job.glob("snapshot_iter_*.solverstate"))
    assert len(snaps) == 1
    stopped = read_binary(snaps[0], caffe_pb2.SolverState()).iter
    assert stopped > 0 and not (job / "summary.json").exists()
    (job / "solver.prototxt").write_text(SOLVER.format(max_iter=stopped + 2))
    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert read_summary(job).iterations == stopped + 2


def test_real_caffe_resumes_from_our_snapshot(tmp_path, caffe):
    job = make_job(tmp_path, max_iter=6)
    get_engine("torch", threads=1).train(job)
    (job / "solver.prototxt").write_text(SOLVER.format(max_iter=8))
    caffe.run_tool(
        "caffe",
        "train",
        "--solver=solver.prototxt",
        "--snapshot=snapshot_iter_6.solverstate",
        binds=[tmp_path],
        cwd=job,
    )
    state = read_binary(job / "snapshot_iter_8.solverstate", caffe_pb2.SolverState())
    assert state.iter == 8
    assert caffemodel_blobs(job / "snapshot_iter_8.caffemodel").keys() == {"conv1", "fc1", "fc2"}


def test_class_names_keep_spaces(tmp_path):
    from upcall.job.spec import load_job

    job = make_job(tmp_path, max_iter=2)
    config = json.loads((job / "config.json").read_text())
    (tmp_path / "labels.txt").write_text("no whale\nright whale\n")
    config["dataset"] = str(tmp_path)
    (job / "config.json").write_text(json.dumps(config))
    assert load_job(job).class_names == ("no whale", "right whale")


def test_training_a_job_the_torch_engine_cannot_run_is_refused_before_it_starts(tmp_path):
    job = make_job(tmp_path)
    net = job / "train_val.prototxt"
    net.write_text(
        net.read_text() + 'layer { name: "odd" type: "LSTM" bottom: "fc2" top: "seq" }\n'
    )
    with pytest.raises(
        UpcallError,
        match=rf"^{net}: layer 'odd' \(type LSTM\) is not implemented by the torch engine; "
        r"--engine caffe runs it$",
    ):
        get_engine("torch").train(job)
    assert not (job / "metrics.jsonl").exists()
