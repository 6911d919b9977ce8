"""Caffe's solvers on a CaffeNet's parameters: learning-rate policies and update rules.

Follows Caffe 1.0's Solver::Step / SGDSolver::ApplyUpdate order exactly: learning rate for this
iteration → clip the accumulated gradient (global L2 norm) → divide by iter_size → weight decay
(× decay_mult) → the solver type's update with local rate lr × lr_mult → w -= update. Caffe's
SGD keeps the learning rate inside the velocity (v = μ·v + lr·g), unlike torch.optim.SGD, which
differs right after every learning-rate change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from upcall.engines.torch.net import ParamSpec
from upcall.errors import UpcallError
from upcall.proto import caffe_pb2

_LEGACY_TYPES = {0: "SGD", 1: "Nesterov", 2: "AdaGrad", 3: "RMSProp", 4: "AdaDelta", 5: "Adam"}
_TWO_HISTORIES = {"AdaDelta", "Adam"}  # Caffe appends a second history blob per parameter


@dataclass(frozen=True)
class SolverSnapshot:
    """What a .solverstate holds: Caffe's SolverState minus the model file name."""

    iter: int  # iterations done; training resumes at this iteration
    current_step: int  # Caffe's step counter for the step / multistep policies
    history: tuple[np.ndarray, ...]  # one per parameter in net order (two for AdaDelta / Adam)


def solver_type(sp: caffe_pb2.SolverParameter) -> str:
    """The solver's type name, honouring the deprecated ``solver_type`` enum as Caffe upgrades it."""
    return _LEGACY_TYPES[sp.solver_type] if sp.HasField("solver_type") else sp.type


def learning_rate(sp: caffe_pb2.SolverParameter, iteration: int) -> float:
    """Caffe's GetLearningRate for ``lr_policy`` at ``iteration`` (0-based, stepped per iteration)."""
    policy, base, it = sp.lr_policy, sp.base_lr, iteration
    if policy == "fixed":
        return base
    if policy in ("step", "multistep"):
        return base * sp.gamma ** current_step(sp, it)
    if policy == "exp":
        return base * sp.gamma**it
    if policy == "inv":
        return base * (1 + sp.gamma * it) ** (-sp.power)
    if policy == "poly":
        return base * (1 - it / sp.max_iter) ** sp.power
    if policy == "sigmoid":
        return base / (1 + math.exp(-sp.gamma * (it - sp.stepsize)))
    raise UpcallError(
        f"solver: unknown lr_policy '{policy}' (fixed, step, multistep, exp, inv, poly, sigmoid)"
    )


def current_step(sp: caffe_pb2.SolverParameter, iteration: int) -> int:
    """Caffe's current_step_: floor(iter / stepsize) for step, stepvalues passed for multistep."""
    if sp.lr_policy == "step":
        if sp.stepsize <= 0:
            raise UpcallError("solver: lr_policy 'step' needs stepsize > 0")
        return iteration // sp.stepsize
    if sp.lr_policy == "multistep":
        return sum(1 for v in sp.stepvalue if iteration >= v)
    return 0


class CaffeSolver:
    """Applies Caffe's update to ``params`` (from ``CaffeNet.param_specs()``) using their ``.grad``.

    The caller runs forward + ``loss.backward()`` ``iter_size`` times (gradients accumulate),
    then calls ``step(iteration)``, which updates the weights and clears the gradients.
    """

    def __init__(self, params: Sequence[ParamSpec], sp: caffe_pb2.SolverParameter):
        self.params, self.sp = list(params), sp
        self.type = solver_type(sp)
        if self.type not in _UPDATES:
            raise UpcallError(f"solver: unknown type '{self.type}' ({', '.join(_UPDATES)})")
        if self.type in ("AdaGrad", "RMSProp") and sp.momentum != 0:
            raise UpcallError(f"solver: {self.type} cannot use momentum (got {sp.momentum})")
        if sp.regularization_type not in ("L1", "L2"):
            raise UpcallError(f"solver: unknown regularization_type '{sp.regularization_type}'")
        learning_rate(sp, 0)  # fail now, not at the first step, on a bad policy
        copies = 2 if self.type in _TWO_HISTORIES else 1
        self.history = [torch.zeros_like(p.tensor) for _ in range(copies) for p in self.params]

    def lr(self, iteration: int) -> float:
        return learning_rate(self.sp, iteration)

    @torch.no_grad()
    def step(self, iteration: int) -> float:
        """One Caffe update for ``iteration`` (0-based); returns the learning rate it used."""
        rate = self.lr(iteration)
        grads = [_grad(p.tensor) for p in self.params]
        self._clip(grads)
        n = len(self.params)
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            if p.lr_mult == 0 or g is None:
                continue
            if self.sp.iter_size > 1:
                g = g / self.sp.iter_size
            decay = self.sp.weight_decay * p.decay_mult
            if decay:
                w = p.tensor
                g = g + decay * (w if self.sp.regularization_type == "L2" else w.sign())
            hist = self.history[i::n]
            update = _UPDATES[self.type](self.sp, g, hist, rate * p.lr_mult, iteration)
            p.tensor.sub_(update)
            p.tensor.grad = None
        return rate

    def _clip(self, grads: list[torch.Tensor | None]) -> None:
        limit = self.sp.clip_gradients
        present = [g for g in grads if g is not None]
        if limit < 0 or not present:
            return
        norm = math.sqrt(sum(float(g.double().square().sum()) for g in present))
        if norm > limit:
            for g in present:
                g.mul_(limit / norm)

    # ---- state ----------------------------------------------------------------------

    def state(self, iteration: int) -> SolverSnapshot:
        """The state after ``iteration`` iterations (Caffe's SolverState)."""
        history = tuple(h.detach().cpu().contiguous().numpy().copy() for h in self.history)
        return SolverSnapshot(iteration, current_step(self.sp, iteration), history)

    def load_state(self, snap: SolverSnapshot) -> int:
        """Restore history blobs; returns the iteration to resume at. Shapes must match."""
        if len(snap.history) != len(self.history):
            raise UpcallError(
                f"solver state has {len(snap.history)} history blobs; this {self.type} solver on "
                f"this net needs {len(self.history)}"
            )
        for i, (h, saved) in enumerate(zip(self.history, snap.history, strict=True)):
            if saved.size != h.numel():
                spec = self.params[i % len(self.params)]
                raise UpcallError(
                    f"solver state history {i} (layer '{spec.layer}' blob {spec.index}) has "
                    f"{saved.size} values, the net's blob {list(h.shape)}"
                )
            h.copy_(
                torch.from_numpy(np.ascontiguousarray(saved, dtype=np.float32)).reshape(h.shape)
            )
        return snap.iter


def _grad(t: torch.Tensor) -> torch.Tensor | None:
    return t.grad if isinstance(t, torch.nn.Parameter) else None


# ---- update rules: (solver, gradient, history blobs, local rate, iteration) -> update ----


def _sgd(sp, g, hist, rate, it):
    (v,) = hist
    return v.mul_(sp.momentum).add_(g, alpha=rate)


def _nesterov(sp, g, hist, rate, it):
    (v,) = hist
    previous = v.clone()
    v.mul_(sp.momentum).add_(g, alpha=rate)
    return v * (1 + sp.momentum) - previous * sp.momentum


def _adagrad(sp, g, hist, rate, it):
    (h,) = hist
    h.add_(g * g)
    return rate * g / (h.sqrt() + sp.delta)


def _rmsprop(sp, g, hist, rate, it):
    (h,) = hist
    h.mul_(sp.rms_decay).add_(g * g, alpha=1 - sp.rms_decay)
    return rate * g / (h.sqrt() + sp.delta)


def _adadelta(sp, g, hist, rate, it):
    squared_grad, squared_update = hist
    squared_grad.mul_(sp.momentum).add_(g * g, alpha=1 - sp.momentum)
    update = g * ((squared_update + sp.delta) / (squared_grad + sp.delta)).sqrt()
    squared_update.mul_(sp.momentum).add_(update * update, alpha=1 - sp.momentum)
    return update.mul_(rate)  # Caffe's AdaDelta still scales by the learning rate


def _adam(sp, g, hist, rate, it):
    m, v = hist
    b1, b2, t = sp.momentum, sp.momentum2, it + 1
    m.mul_(b1).add_(g, alpha=1 - b1)
    v.mul_(b2).add_(g * g, alpha=1 - b2)
    correction = math.sqrt(1 - b2**t) / (1 - b1**t)
    return m / (v.sqrt() + sp.delta) * (rate * correction)


_UPDATES: dict[str, Callable] = {
    "SGD": _sgd,
    "Nesterov": _nesterov,
    "AdaGrad": _adagrad,
    "RMSProp": _rmsprop,
    "AdaDelta": _adadelta,
    "Adam": _adam,
}
