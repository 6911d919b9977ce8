"""DIGITS's solver rules, checked against the worked whale-tutorial numbers."""

from __future__ import annotations

import math

import pytest

from upcall.errors import UpcallError
from upcall.job.solver import LR_POLICIES, SOLVER_TYPES, SolverSettings, make_solver, schedule
from upcall.proto import caffe_pb2

TUTORIAL = dict(train_count=27000, val_count=3000)


def _solver(batch=100, val_batch=100, **kw) -> caffe_pb2.SolverParameter:
    settings = SolverSettings(**{"epochs": 5, **kw})
    return make_solver(settings, **TUTORIAL, batch_size=batch, val_batch_size=val_batch)


def test_tutorial_alexnet_numbers():
    sp = _solver(base_lr=0.01)
    assert (sp.max_iter, list(sp.test_iter), sp.test_interval, sp.snapshot) == (
        1350,
        [30],
        270,
        270,
    )
    assert (sp.lr_policy, sp.stepsize, sp.display) == ("step", 446, 33)
    assert sp.gamma == pytest.approx(0.1) and sp.momentum == pytest.approx(0.9)
    assert sp.weight_decay == pytest.approx(1e-4) and sp.base_lr == pytest.approx(0.01)
    assert (sp.net, sp.snapshot_prefix, sp.type) == ("train_val.prototxt", "snapshot", "SGD")
    assert sp.solver_mode == caffe_pb2.SolverParameter.CPU
    assert not sp.HasField("random_seed") and not sp.HasField("iter_size")


def test_other_batch_sizes_from_the_reference():
    s = schedule(SolverSettings(epochs=5), **TUTORIAL, batch_size=128, val_batch_size=32)
    assert (s.train_iter, s.max_iter, s.test_iter) == (211, 1055, 94)
    s = schedule(SolverSettings(epochs=5), **TUTORIAL, batch_size=32, val_batch_size=16)
    assert (s.train_iter, s.max_iter, s.test_iter) == (844, 4220, 188)
    # 5000 images between displays is the tighter bound here: ceil(5000/32) = 157 > 844/8 = 105
    assert s.display == 105


def test_display_uses_images_bound_when_epochs_are_long():
    s = schedule(
        SolverSettings(epochs=1),
        train_count=1_000_000,
        val_count=10,
        batch_size=100,
        val_batch_size=10,
    )
    assert s.display == 50  # ceil(5000 / 100), not 10000 // 8


def test_iter_size_counts_in_updates():
    sp = _solver(iter_size=2)
    assert (sp.max_iter, sp.iter_size, sp.test_interval, sp.display) == (675, 2, 135, 16)


def test_weight_decay_follows_lr_and_seed_and_gpu():
    sp = _solver(base_lr=0.05, seed=7, gpu=True)
    assert sp.weight_decay == pytest.approx(5e-4)
    assert (sp.random_seed, sp.solver_mode) == (7, caffe_pb2.SolverParameter.GPU)


@pytest.mark.parametrize("solver_type", SOLVER_TYPES)
def test_solver_types(solver_type):
    sp = _solver(solver_type=solver_type)
    assert sp.type == solver_type
    assert sp.HasField("momentum") == (solver_type not in ("AdaGrad", "RMSProp"))
    assert sp.HasField("rms_decay") == (solver_type == "RMSProp")


def test_lr_policies_scale_by_max_iter():
    scale = 1350 / 100
    sp = {p: _solver(lr_policy=p) for p in LR_POLICIES}
    assert sp["fixed"].lr_policy == "fixed" and not sp["fixed"].HasField("gamma")
    assert list(sp["multistep"].stepvalue) == [675, 1148]  # ceil(50·13.5), ceil(85·13.5)
    assert sp["multistep"].gamma == pytest.approx(0.5)
    assert sp["exp"].gamma == pytest.approx(0.95 ** (1 / scale))
    assert (sp["inv"].gamma, sp["inv"].power) == (pytest.approx(0.1 / scale), pytest.approx(0.5))
    assert sp["poly"].power == pytest.approx(3.0) and not sp["poly"].HasField("gamma")
    assert sp["sigmoid"].gamma == pytest.approx(-0.1 / scale)
    assert sp["sigmoid"].stepsize == math.ceil(50 * scale)
    assert _solver(lr_policy="step", step_pct=50, gamma=0.5).stepsize == 675


def test_snapshot_rules():
    assert _solver(snapshot_epochs=10).snapshot == 0  # beyond the run: only the final one
    s = schedule(
        SolverSettings(epochs=3, snapshot_epochs=0.001),
        train_count=10,
        val_count=5,
        batch_size=5,
        val_batch_size=5,
    )
    assert s.snapshot == 1 and s.test_interval == 2


@pytest.mark.parametrize(
    "bad", [dict(solver_type="sgd"), dict(lr_policy="cosine"), dict(base_lr=0), dict(epochs=0)]
)
def test_bad_settings(bad):
    with pytest.raises(UpcallError):
        SolverSettings(**bad)


def test_empty_dataset_is_an_error():
    with pytest.raises(UpcallError, match="need training images"):
        schedule(SolverSettings(), train_count=0, val_count=3, batch_size=1, val_batch_size=1)


def test_no_validation_images_no_test_pass():
    """DIGITS's dataset without a validation list: the solver has no test_iter/test_interval."""
    s = schedule(SolverSettings(), train_count=10, val_count=0, batch_size=5, val_batch_size=0)
    assert (s.train_iter, s.test_iter, s.test_interval) == (2, 0, 0)
    sp = make_solver(SolverSettings(), train_count=10, val_count=0, batch_size=5, val_batch_size=0)
    assert len(sp.test_iter) == 0 and not sp.HasField("test_interval")
