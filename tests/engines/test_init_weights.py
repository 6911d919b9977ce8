"""config.json's init_weights (`fit --init-weights`): a new run starts from another job's weights,
copied in by layer name as `caffe train --weights` does, on the torch and the caffe engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engines.test_train import make_job
from upcall.engines import get_engine
from upcall.errors import UpcallError
from upcall.job.records import read_metrics, validation_records


def _first_and_last_test(job: Path):
    tests = validation_records(read_metrics(job))
    return tests[0], tests[-1]


def _with_init(job: Path, weights: Path) -> Path:
    config = json.loads((job / "config.json").read_text())
    (job / "config.json").write_text(json.dumps({**config, "init_weights": str(weights)}))
    return job


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny job trained 5 iterations: its last test scores snapshot_iter_5's weights."""
    job = make_job(tmp_path_factory.mktemp("a"), max_iter=5)
    get_engine("torch", threads=1).train(job)
    return job


@pytest.mark.parametrize("engine", ["torch", "caffe"])
def test_a_new_run_starts_from_the_weights_it_names(trained, tmp_path, engine, request):
    if engine == "caffe":
        request.getfixturevalue("caffe")  # skips without real Caffe
    weights = trained / "snapshot_iter_5.caffemodel"
    job = _with_init(make_job(tmp_path, max_iter=5), weights)  # the same data, same seed
    get_engine(engine, threads=1).train(job)
    first, _ = _first_and_last_test(job)
    _, last = _first_and_last_test(trained)
    # iteration 0 of the new run scores exactly the weights the earlier run ended with
    assert first.iter == 0 and first.clips == last.clips
    assert first.val_loss == pytest.approx(last.val_loss, rel=1e-4)
    assert first.val_accuracy == last.val_accuracy and first.val_auc == last.val_auc


def test_without_init_weights_training_is_unchanged(trained, tmp_path):
    # config.json's init_weights null: byte for byte the weights of a job that never heard of it
    job = make_job(tmp_path, max_iter=5)
    config = json.loads((job / "config.json").read_text())
    (job / "config.json").write_text(json.dumps({**config, "init_weights": None}))
    get_engine("torch", threads=1).train(job)
    for name in ("snapshot_iter_5.caffemodel", "snapshot_iter_5.solverstate"):
        assert (job / name).read_bytes() == (trained / name).read_bytes()


def test_missing_init_weights_is_one_line(tmp_path):
    job = _with_init(make_job(tmp_path, max_iter=2), tmp_path / "gone.caffemodel")
    with pytest.raises(UpcallError, match=r"gone.caffemodel: not found \(config.json's init_w"):
        get_engine("torch", threads=1).train(job)
