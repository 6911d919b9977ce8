"""Tests for upcall.job.writer and records: metrics.jsonl, curves.png, summary.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from upcall.errors import UpcallError
from upcall.job.records import Best, Summary, TestRecord, TrainRecord, read_metrics, read_summary
from upcall.job.writer import JobWriter

NAMES = ["not-whale", "whale"]


def test_writer_writes_every_file(tmp_path, rng):
    w = JobWriter(tmp_path, class_names=NAMES)
    w.train(iter=0, epoch=0.0, lr=0.01, loss=0.7)
    w.train(iter=10, epoch=0.5, lr=0.01, loss=0.4)
    labels = rng.integers(0, 2, 50)
    p = np.clip(0.3 + 0.4 * labels + 0.2 * rng.standard_normal(50), 0, 1)
    rec = w.test(iter=10, epoch=0.5, val_loss=0.35, scores=np.c_[1 - p, p], labels=labels)
    summary = w.finish(
        engine="torch",
        network="n",
        iterations=10,
        epochs=0.5,
        wall_seconds=1.0,
        train_images_per_second=100.0,
        device="cpu",
        threads=2,
        resumed_from=None,
        snapshots=(),
    )
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["train", "train", "test"]
    assert lines[1] == {
        "format": 1,
        "kind": "train",
        "iter": 10,
        "epoch": 0.5,
        "lr": 0.01,
        "loss": 0.4,
    }
    assert set(lines[2]) == {
        "format",
        "kind",
        "iter",
        "epoch",
        "val_loss",
        "val_accuracy",
        "val_auc",
        "recall",
        "clips",
        "caffe_logged",
    }
    assert lines[2]["val_auc"] == pytest.approx(roc_auc_score(labels, p))
    assert lines[2]["clips"] == 50 and lines[2]["caffe_logged"] is None
    assert rec.to_json() == lines[2] and read_metrics(tmp_path)[2] == rec
    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG" and im.size == (640, 480)
    assert read_summary(tmp_path) == summary
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["final"] == lines[2] and written["threads"] == 2
    assert summary.best == Best(rec.val_accuracy, rec.val_auc, 0.35)
    assert "Iteration 10" in (tmp_path / "train.log").read_text()


def test_resumed_writer_drops_records_after_the_snapshot(tmp_path):
    w = JobWriter(tmp_path, class_names=NAMES)
    for it in (0, 5, 10):
        w.train(iter=it, epoch=it / 10, lr=0.1, loss=1.0)
    w.close()
    w = JobWriter(tmp_path, class_names=NAMES, start_iter=5)
    w.train(iter=5, epoch=0.5, lr=0.1, loss=0.7)
    w.close()
    assert [(r.iter, r.loss) for r in read_metrics(tmp_path)] == [(0, 1.0), (5, 0.7)]


def test_the_one_summary_writer_names_complete_sets_and_counts_earlier_runs(tmp_path):
    """summary.json's "snapshots" follow upcall.job.snapshots' rule (a set cut short is not
    named); wall_time.json carries a run's training time to the run that resumes it."""
    from upcall.job import snapshots as sets
    from upcall.proto import caffe_pb2

    net = caffe_pb2.NetParameter(name="n").SerializeToString()
    for it in (2, 4):
        (tmp_path / f"snap_iter_{it}.caffemodel").write_bytes(net)
        state = caffe_pb2.SolverState(iter=it).SerializeToString()
        (tmp_path / f"snap_iter_{it}.solverstate").write_bytes(state if it == 2 else state[:1])
    job = sets.Prefix(tmp_path / "snap")
    w = JobWriter(tmp_path, class_names=NAMES, snapshots=job)
    w.snapshotted(2, 12.5)
    w.close()
    assert json.loads((tmp_path / "wall_time.json").read_text())["seconds"] == {"2": 12.5}
    w = JobWriter(tmp_path, class_names=NAMES, start_iter=2, snapshots=job)
    assert w.earlier_seconds == 12.5
    fields = dict(
        engine="torch",
        network="n",
        iterations=4,
        epochs=1.0,
        wall_seconds=20.0,
        train_images_per_second=None,
        device="cpu",
        threads=1,
        resumed_from=2,
    )
    summary = w.finish(**fields)
    assert summary.snapshots == ("snap_iter_2.caffemodel",)
    assert read_summary(tmp_path) == summary and summary.final is None
    (tmp_path / "classical").mkdir()
    w = JobWriter(tmp_path / "classical", class_names=NAMES)
    assert w.finish(**fields).snapshots == ()  # a job without snapshot sets (the baseline)


def test_nan_loss_is_written_as_null(tmp_path):
    w = JobWriter(tmp_path, class_names=NAMES)
    w.train(iter=0, epoch=0.0, lr=0.1, loss=float("nan"))
    w.close()
    assert read_metrics(tmp_path)[0].loss is None


def test_test_record_without_scores_keeps_loss_and_accuracy(tmp_path):
    w = JobWriter(tmp_path, class_names=NAMES)
    rec = w.test(iter=5, epoch=0.5, val_loss=0.3, val_accuracy=0.75)
    w.close()
    assert rec == TestRecord(iter=5, epoch=0.5, val_loss=0.3, val_accuracy=0.75)
    assert (rec.val_auc, rec.recall) == (None, None)
    assert read_metrics(tmp_path) == [rec]
    assert "AUC = n/a" in (tmp_path / "train.log").read_text()


def test_old_files_without_format_are_read_and_newer_ones_refused(tmp_path):
    old = {"kind": "train", "iter": 0, "epoch": 0.0, "lr": 0.1, "loss": 0.5}
    newer = {"format": 99, **old}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(newer) + "\n")
    with pytest.raises(UpcallError, match=r"metrics.jsonl:2: .*format 99"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(json.dumps(old) + "\n")
    assert read_metrics(tmp_path) == [TrainRecord(iter=0, epoch=0.0, lr=0.1, loss=0.5)]
    (tmp_path / "metrics.jsonl").write_text(json.dumps({**old, "kind": "eval"}) + "\n")
    with pytest.raises(UpcallError, match=r"metrics.jsonl:1: unknown record kind 'eval'"):
        read_metrics(tmp_path)
    summary = {
        "engine": "caffe",
        "network": "n",
        "iterations": 4,
        "epochs": 1.0,
        "wall_seconds": 2.0,
        "train_images_per_second": None,
        "device": "cpu",
        "threads": None,
        "resumed_from": None,
        "snapshots": ["snapshot_iter_4.caffemodel"],
        "final": {"kind": "test", **{k: 0.5 for k in ("iter", "epoch", "val_loss")}},
        "best": None,
    }
    summary["final"].update(iter=4, val_accuracy=0.5)
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    read = Summary.read(tmp_path)
    assert read.snapshots == ("snapshot_iter_4.caffemodel",) and read.final.val_auc is None


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(UpcallError, match=r"metrics.jsonl: no such file"):
        read_metrics(tmp_path)
    with pytest.raises(UpcallError, match=r"summary.json: not found; training has not finished"):
        read_summary(tmp_path)


def test_loss_axis_is_scaled_to_training_not_to_an_untrained_first_test():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from upcall.job.curves import scale_loss_axis

    def test(it: int, loss: float) -> TestRecord:
        return TestRecord(iter=it, epoch=it / 10, val_loss=loss, val_accuracy=0.5)

    fig, ax = plt.subplots()
    train = [TrainRecord(iter=i, epoch=i / 10, lr=0.1, loss=x) for i, x in ((0, 0.8), (5, 0.3))]
    scale_loss_axis(ax, train, [test(0, 66.9), test(10, 0.2)])
    assert ax.get_ylim() == pytest.approx((0, 0.88))
    assert "66.9 at epoch 0" in ax.get_title()
    fig2, ax2 = plt.subplots()  # a first test on the same scale sets no limit of its own
    scale_loss_axis(ax2, train, [test(0, 0.7), test(10, 0.2)])
    assert ax2.get_ylim()[0] == 0 and "off scale" not in ax2.get_title()
    plt.close(fig)
    plt.close(fig2)
