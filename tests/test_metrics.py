"""Tests for upcall.metrics: rank AUC against sklearn, Caffe's tie rule, recall."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from upcall.metrics import auc, caffe_correct, cross_entropy, evaluate

NAMES = ["not-whale", "whale"]


def test_auc_matches_sklearn_with_ties(rng):
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) + 0.3 * labels, 1)  # rounding makes many ties
    assert auc(scores, labels == 1) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_equals_scipy_rankdata_exactly(rng):
    from scipy.stats import rankdata

    labels = rng.integers(0, 2, 3000)
    scores = np.round(rng.random(3000), 3)
    n_pos, n_neg = labels.sum(), (1 - labels).sum()
    ranked = (rankdata(scores)[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    assert auc(scores, labels == 1) == float(ranked)


def test_auc_perfect_inverted_and_undefined():
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1], bool)) == 1.0
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1], bool)) == 0.0
    assert auc(np.array([0.5, 0.5]), np.array([0, 1], bool)) == 0.5
    assert np.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1], bool)))


def test_caffe_accuracy_counts_ties_as_wrong():
    scores = np.array([[0.7, 0.3], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1])
    assert caffe_correct(scores, labels).tolist() == [True, False, True, False]
    three = np.array([[0.3, 0.3, 0.3], [0.5, 0.3, 0.2]])  # a three-way tie loses even in top 2
    assert caffe_correct(three, np.array([1, 1]), top_k=2).tolist() == [False, True]


def test_torch_accuracy_layer_uses_the_same_tie_rule(rng):
    torch = pytest.importorskip("torch")
    from upcall.engines.torch.losses import Accuracy
    from upcall.proto import caffe_pb2

    scores = np.round(rng.random((64, 3)), 1)  # many ties
    labels = rng.integers(0, 3, 64)
    for k in (1, 2):
        lp = caffe_pb2.LayerParameter(name="acc", type="Accuracy", top=["acc"])
        lp.accuracy_param.top_k = k
        layer = Accuracy(lp, [(64, 3), (64,)], None)
        got = layer(torch.from_numpy(scores), torch.from_numpy(labels))
        assert float(got) == pytest.approx(caffe_correct(scores, labels, top_k=k).mean())


def test_evaluate_recall_per_class():
    scores = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    labels = np.array([0, 0, 1, 1, 1])
    m = evaluate(scores, labels, class_names=NAMES)
    assert m["val_accuracy"] == pytest.approx(3 / 5)
    assert m["recall"] == {"not-whale": 0.5, "whale": pytest.approx(2 / 3)}
    assert m["val_auc"] == pytest.approx(roc_auc_score(labels, scores[:, 1]))
    # the loss per sample, not per batch: sklearn's log loss of the same probabilities
    assert m["val_loss"] == pytest.approx(log_loss(labels, scores[:, 1]))


def test_cross_entropy_clips_a_zero_probability_as_caffe_does():
    scores = np.array([[1.0, 0.0], [0.5, 0.5]])
    got = cross_entropy(scores, np.array([1, 0]))
    assert got == pytest.approx((-np.log(np.finfo(np.float32).tiny) + np.log(2)) / 2)


def test_evaluate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"do not match"):
        evaluate(np.zeros((3, 2)), np.zeros(4, int), class_names=NAMES)
