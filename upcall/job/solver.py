"""solver.prototxt as DIGITS writes it (digits/model/tasks/caffe_train.py), per learning rate.

Iteration counts come from the dataset size and batch: an epoch is
``ceil(train_count / (batch * iter_size))`` iterations; validation and snapshots happen every
epoch; lr-policy parameters given in percent of training are scaled by ``max_iter / 100``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from upcall.errors import UpcallError
from upcall.proto import caffe_pb2

# Caffe 1.0's ``type:`` strings; DIGITS offers all six.
SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
LR_POLICIES = ("fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid")

__all__ = ["LR_POLICIES", "SOLVER_TYPES", "Schedule", "SolverSettings", "make_solver", "schedule"]


@dataclass(frozen=True)
class SolverSettings:
    """One training run's optimiser settings, in DIGITS's terms (defaults = DIGITS's form)."""

    base_lr: float = 0.01
    epochs: int = 30
    solver_type: str = "SGD"
    lr_policy: str = "step"
    step_pct: float | None = None  # step, sigmoid: where the drop happens, % of training (33, 50)
    multistep_pct: tuple[float, ...] = (50.0, 85.0)  # multistep: drops at these % of training
    gamma: float | None = None  # None: the policy's DIGITS default (step 0.1, exp 0.95, ...)
    power: float | None = None  # inv 0.5, poly 3.0 by default
    rms_decay: float = 0.99  # RMSProp only
    iter_size: int = 1  # DIGITS's "batch accumulation"
    snapshot_epochs: float = 1.0
    val_epochs: float = 1.0
    seed: int | None = None  # Caffe's random_seed; None lets Caffe pick
    gpu: bool = False  # solver_mode GPU; CPU is this project's default

    def __post_init__(self) -> None:
        if self.solver_type not in SOLVER_TYPES:
            raise UpcallError(
                f"unknown solver type {self.solver_type!r}; choose one of {', '.join(SOLVER_TYPES)}"
            )
        if self.lr_policy not in LR_POLICIES:
            raise UpcallError(
                f"unknown lr policy {self.lr_policy!r}; choose one of {', '.join(LR_POLICIES)}"
            )
        if not (math.isfinite(self.base_lr) and self.base_lr > 0):
            raise UpcallError(f"base_lr must be a positive number, got {self.base_lr}")
        if not (self.epochs >= 1 and self.iter_size >= 1):
            raise UpcallError(
                f"epochs and iter_size must be ≥ 1 (got {self.epochs}, {self.iter_size})"
            )


_DEFAULT_GAMMA = {"step": 0.1, "multistep": 0.5, "exp": 0.95, "inv": 0.1, "sigmoid": 0.1}
_DEFAULT_POWER = {"inv": 0.5, "poly": 3.0}
_DEFAULT_STEP_PCT = {"step": 33.0, "sigmoid": 50.0}


@dataclass(frozen=True)
class Schedule:
    """Iteration counts derived from the dataset and batch sizes."""

    train_iter: int  # iterations per epoch
    max_iter: int
    # validation batches per Caffe test pass (DIGITS's ceil: the last batch wraps around to the
    # first images, which Caffe's logged figures count twice; upcall's own figures count each
    # image once whatever this is: upcall.job.spec.ValPass)
    test_iter: int
    test_interval: int
    snapshot: int
    display: int


def schedule(
    settings: SolverSettings,
    *,
    train_count: int,
    val_count: int,
    batch_size: int,
    val_batch_size: int,
) -> Schedule:
    """DIGITS's iteration arithmetic (worked example: 27000/3000, batch 100, 5 epochs → 270,
    1350, test_iter 30, display 33); no validation images: no test pass (test_iter 0)."""
    if train_count < 1 or val_count < 0:
        raise UpcallError(f"need training images (got {train_count}, {val_count})")
    per_update = batch_size * settings.iter_size
    train_iter = math.ceil(train_count / per_update)
    max_iter = train_iter * settings.epochs
    # 8 display points per epoch, or one every 5000 images, whichever is more frequent.
    display = max(1, min(max_iter // (settings.epochs * 8), math.ceil(5000 / per_update)))
    return Schedule(
        train_iter=train_iter,
        max_iter=max_iter,
        test_iter=math.ceil(val_count / val_batch_size) if val_count else 0,
        test_interval=min(max(1, int(settings.val_epochs * train_iter)), max_iter)
        if val_count
        else 0,
        snapshot=_snapshot(settings.snapshot_epochs, train_iter, max_iter),
        display=display,
    )


def _snapshot(epochs: float, train_iter: int, max_iter: int) -> int:
    every = int(epochs * train_iter)
    if every >= max_iter:
        return 0  # only the final snapshot (snapshot_after_train)
    return max(1, every)


def make_solver(
    settings: SolverSettings,
    *,
    train_count: int,
    val_count: int,
    batch_size: int,
    val_batch_size: int,
    net: str = "train_val.prototxt",
) -> caffe_pb2.SolverParameter:
    """The SolverParameter DIGITS would write for ``settings`` on a dataset of these sizes."""
    s = schedule(
        settings,
        train_count=train_count,
        val_count=val_count,
        batch_size=batch_size,
        val_batch_size=val_batch_size,
    )
    sp = caffe_pb2.SolverParameter(
        net=net,
        type=settings.solver_type,
        base_lr=settings.base_lr,
        max_iter=s.max_iter,
        test_iter=[s.test_iter] if s.test_iter else [],  # DIGITS: no val set, no test net
        test_interval=s.test_interval,
        snapshot=s.snapshot,
        snapshot_prefix="snapshot",
        display=s.display,
        weight_decay=settings.base_lr / 100,  # DIGITS ties weight decay to the learning rate
        solver_mode=caffe_pb2.SolverParameter.GPU
        if settings.gpu
        else caffe_pb2.SolverParameter.CPU,
    )
    if not s.test_iter:
        sp.ClearField("test_interval")
    if settings.iter_size != 1:
        sp.iter_size = settings.iter_size
    if settings.solver_type not in ("AdaGrad", "RMSProp"):
        sp.momentum = 0.9
    if settings.solver_type == "RMSProp":
        sp.rms_decay = settings.rms_decay
    if settings.seed is not None:
        sp.random_seed = settings.seed
    _lr_policy(sp, settings, s.max_iter)
    return sp


def _lr_policy(sp: caffe_pb2.SolverParameter, settings: SolverSettings, max_iter: int) -> None:
    policy = settings.lr_policy
    scale = max_iter / 100  # DIGITS's policy parameters are in percent of training
    gamma = settings.gamma if settings.gamma is not None else _DEFAULT_GAMMA.get(policy)
    power = settings.power if settings.power is not None else _DEFAULT_POWER.get(policy)
    step_pct = settings.step_pct if settings.step_pct is not None else _DEFAULT_STEP_PCT.get(policy)
    sp.lr_policy = policy
    if policy == "step":
        sp.stepsize = math.ceil(step_pct * scale)
        sp.gamma = gamma
    elif policy == "multistep":
        sp.stepvalue.extend(math.ceil(v * scale) for v in settings.multistep_pct)
        sp.gamma = gamma
    elif policy == "exp":
        sp.gamma = gamma ** (1 / scale)  # the same total decay whatever the run length
    elif policy == "inv":
        sp.gamma = gamma / scale
        sp.power = power
    elif policy == "poly":
        sp.power = power
    elif policy == "sigmoid":
        sp.gamma = -gamma / scale  # negative: the rate falls around the step
        sp.stepsize = math.ceil(step_pct * scale)
