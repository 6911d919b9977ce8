"""Tests for upcall.results.jobdir: metric maths against sklearn, metrics.jsonl, curves.png, summary.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from upcall.errors import UpcallError
from upcall.results.jobdir import (
    JobWriter,
    auc,
    caffe_correct,
    evaluate,
    read_metrics,
    read_summary,
)

NAMES = ["not-whale", "whale"]


def test_auc_matches_sklearn_with_ties(rng):
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) + 0.3 * labels, 1)  # rounding makes many ties
    assert auc(scores, labels == 1) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_perfect_inverted_and_undefined():
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool)) == 1.0
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1], bool)) == 0.0
    assert auc(np.array([0.5, 0.5]), np.array([0, 1], bool)) == 0.5
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1], bool)))


def test_caffe_accuracy_counts_ties_as_wrong():
    scores = np.array([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1])
    assert caffe_correct(scores, labels).tolist() == [True, False, True, False]


def test_evaluate_recall_per_class():
    scores = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1, 1])
    m = evaluate(scores, labels, class_names=NAMES)
    assert m["val_accuracy"] == pytest.approx(3 / 5)
    assert m["recall"] == {"not-whale": 0.5, "whale": pytest.approx(2 / 3)}
    assert m["val_auc"] == pytest.approx(roc_auc_score(labels, scores[:, 1]))


def test_evaluate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"do not match"):
        evaluate(np.zeros((3, 2)), np.zeros(4, int), class_names=NAMES)


def test_writer_writes_every_file(tmp_path, rng):
    w = JobWriter(tmp_path, class_names=NAMES)
    w.train(iter=0, epoch=0.0, lr=0.01, loss=0.7)
    w.train(iter=10, epoch=0.5, lr=0.01, loss=0.4)
    labels = rng.integers(0, 2, 50)
    p = np.clip(0.3 + 0.4 * labels + 0.2 * rng.standard_normal(50), 0, 1)
    rec = w.test(iter=10, epoch=0.5, val_loss=0.35, scores=np.c_[1 - p, p], labels=labels)
    summary = w.finish(
        {
            "engine": "torch",
            "network": "n",
            "iterations": 10,
            "epochs": 0.5,
            "wall_seconds": 1.0,
            "train_images_per_second": 100.0,
            "snapshots": [],
        }
    )
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["train", "train", "test"]
    assert lines[1] == {"kind": "train", "iter": 10, "epoch": 0.5, "lr": 0.01, "loss": 0.4}
    assert set(lines[2]) == {
        "kind",
        "iter",
        "epoch",
        "val_loss",
        "val_accuracy",
        "val_auc",
        "recall",
    }
    assert lines[2]["val_auc"] == pytest.approx(roc_auc_score(labels, p))
    assert rec == lines[2]
    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG" and im.size == (640, 480)
    assert read_summary(tmp_path) == summary
    assert summary["final"] == lines[2]
    assert summary["best"] == {
        "val_accuracy": lines[2]["val_accuracy"],
        "val_auc": lines[2]["val_auc"],
        "val_loss": 0.35,
    }
    assert "Iteration 10" in (tmp_path / "train.log").read_text()


def test_resumed_writer_drops_records_after_the_snapshot(tmp_path):
    w = JobWriter(tmp_path, class_names=NAMES)
    for it in (0, 5, 10):
        w.train(iter=it, epoch=it / 10, lr=0.1, loss=1.0)
    w.close()
    w = JobWriter(tmp_path, class_names=NAMES, start_iter=5)
    w.train(iter=5, epoch=0.5, lr=0.1, loss=0.7)
    w.close()
    assert [(r["iter"], r["loss"]) for r in read_metrics(tmp_path)] == [(0, 1.0), (5, 0.7)]


def test_nan_loss_is_written_as_null(tmp_path):
    w = JobWriter(tmp_path, class_names=NAMES)
    w.train(iter=0, epoch=0.0, lr=0.1, loss=float("nan"))
    w.close()
    assert read_metrics(tmp_path)[0]["loss"] is None


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(UpcallError, match=r"metrics.jsonl: no such file"):
        read_metrics(tmp_path)
    with pytest.raises(UpcallError, match=r"summary.json: no such file"):
        read_summary(tmp_path)


def test_loss_axis_is_scaled_to_training_not_to_an_untrained_first_test():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from upcall.results.jobdir import scale_loss_axis

    fig, ax = plt.subplots()
    train = [{"loss": 0.8}, {"loss": 0.3}]
    scale_loss_axis(ax, train, [{"iter": 0, "val_loss": 66.9}, {"iter": 10, "val_loss": 0.2}])
    assert ax.get_ylim() == pytest.approx((0, 0.88))
    assert "66.9 at epoch 0" in ax.texts[0].get_text()
    fig2, ax2 = plt.subplots()  # a first test on the same scale sets no limit of its own
    scale_loss_axis(ax2, train, [{"iter": 0, "val_loss": 0.7}, {"iter": 10, "val_loss": 0.2}])
    assert ax2.get_ylim()[0] == 0 and not ax2.texts
    plt.close(fig)
    plt.close(fig2)
