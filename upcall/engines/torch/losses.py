"""Caffe's loss and accuracy layers: SoftmaxWithLoss (normalisation modes, ignore_label),
InfogainLoss (the same with a K×K weight matrix H read from a file), EuclideanLoss,
SigmoidCrossEntropyLoss, HingeLoss (L1/L2), MultinomialLogisticLoss and Accuracy (top_k, ties
count as wrong). Caffe never back-propagates to a label; neither do these."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from upcall.engines.torch.base import Layer
from upcall.errors import UpcallError
from upcall.metrics import classes_at_or_above
from upcall.proto import blob_to_array, caffe_pb2, read_binary

_LOG_FLT_MIN = math.log(1.1754943508222875e-38)  # Caffe clamps probabilities at FLT_MIN
_LOG_INFOGAIN_MIN = math.log(1e-20)  # InfogainLoss's kLOG_THRESHOLD
# the loss types a net may use besides SoftmaxWithLoss, InfogainLoss (upcall.engines.torch.layers)
MORE_LOSSES = ("EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss", "MultinomialLogisticLoss")


def _labels(label: torch.Tensor, scores: torch.Tensor, axis: int) -> torch.Tensor:
    """Caffe's label blob (any shape with outer×inner elements) as int64 shaped like scores sans axis."""
    shape = scores.shape[:axis] + scores.shape[axis + 1 :]
    return label.reshape(shape).long()


class SoftmaxWithLoss(Layer):
    _Norm = caffe_pb2.LossParameter.NormalizationMode

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.loss_param
        self.axis = lp.softmax_param.axis % len(shapes[0])
        self.ignore = p.ignore_label if p.HasField("ignore_label") else None
        norm = p.normalization
        if p.HasField("normalize"):  # the deprecated bool wins when present, as in Caffe
            norm = self._Norm.VALID if p.normalize else self._Norm.BATCH_SIZE
        self.norm = norm
        self.outer = math.prod(shapes[0][: self.axis])
        if math.prod(shapes[1]) != math.prod(shapes[0]) // shapes[0][self.axis]:
            raise UpcallError(
                f"layer '{lp.name}': {list(shapes[1])} labels do not fit scores {list(shapes[0])}"
            )
        self.with_prob = len(lp.top) > 1

    def forward(self, scores, label):
        label = _labels(label, scores, self.axis)
        logp = F.log_softmax(scores.float(), dim=self.axis)
        valid = label != self.ignore if self.ignore is not None else None
        # an ignored label (often 255, or -1) may be no class index: gather at 0 instead
        safe = label.masked_fill(~valid, 0) if valid is not None else label
        picked = logp.gather(self.axis, safe.unsqueeze(self.axis))
        picked = picked.squeeze(self.axis)
        # Caffe's log(max(p, FLT_MIN)) caps the loss but its gradient is still p - 1: clamp the
        # value only. Written so that huge logits do not cancel to 0 in float32, as
        # picked + (clamped - picked).detach() did.
        picked = picked - picked.detach() + picked.detach().clamp(min=_LOG_FLT_MIN)
        if valid is not None:
            picked = picked * valid
        loss = -picked.sum() / self._normalizer(label, valid)
        return (loss, logp.exp()) if self.with_prob else loss

    def _normalizer(self, label, valid) -> torch.Tensor | float:
        if self.norm == self._Norm.VALID and valid is not None:
            return valid.sum().clamp(min=1)
        if self.norm in (self._Norm.FULL, self._Norm.VALID):
            return max(1, label.numel())
        return max(1, self.outer) if self.norm == self._Norm.BATCH_SIZE else 1.0


class InfogainLoss(SoftmaxWithLoss):
    """Caffe 1.0's InfogainLoss on raw scores: ``-1/norm sum_i sum_k H[y_i, k] log p_ik`` with
    p the softmax over ``infogain_loss_param.axis`` and log p clamped at log(1e-20) in value only;
    Caffe's gradient, ``p_k sum_l H[y, l] - H[y, k]``, ignores the clamp as autograd does here.
    H comes from the BlobProto file ``source`` (relative to the job directory); the loss
    parameters (normalisation, ignore_label) are SoftmaxWithLoss's."""

    def __init__(self, lp, shapes, ctx):
        if len(shapes) != 2:
            raise UpcallError(
                f"layer '{lp.name}': InfogainLoss with H as a third bottom is not supported"
            )
        lp2 = caffe_pb2.LayerParameter()
        lp2.CopyFrom(lp)
        lp2.softmax_param.axis = lp.infogain_loss_param.axis  # where the base class reads it
        super().__init__(lp2, shapes, ctx)
        k = shapes[0][self.axis]
        source = lp.infogain_loss_param.source
        if not source:
            raise UpcallError(f"layer '{lp.name}': InfogainLoss needs infogain_loss_param.source")
        path = (ctx.base or Path()) / source
        h = blob_to_array(read_binary(path, caffe_pb2.BlobProto()), where=str(path))
        if h.size != k * k:
            raise UpcallError(
                f"{path}: {h.size} values, expected a {k}×{k} matrix for layer '{lp.name}'"
            )
        self.register_buffer("h", torch.from_numpy(h.reshape(k, k).copy()), persistent=False)

    def forward(self, scores, label):
        label = _labels(label, scores, self.axis)
        logp = F.log_softmax(scores.float(), dim=self.axis).movedim(self.axis, -1)  # (..., K)
        valid = label != self.ignore if self.ignore is not None else None
        rows = self.h[label.masked_fill(~valid, 0) if valid is not None else label]  # H[y]
        clamped = logp - logp.detach() + logp.detach().clamp(min=_LOG_INFOGAIN_MIN)
        per_sample = (rows * clamped).sum(-1)
        if valid is not None:
            per_sample = per_sample * valid
        loss = -per_sample.sum() / self._normalizer(label, valid)
        return (loss, logp.exp().movedim(-1, self.axis)) if self.with_prob else loss


_Mode = caffe_pb2.LossParameter.NormalizationMode


def _mode(lp, default: int) -> int:
    """The layer's normalisation mode: ``normalization`` when set, else the deprecated
    ``normalize`` (VALID / BATCH_SIZE), else the layer type's ``default``."""
    p = lp.loss_param
    if p.HasField("normalization"):
        return p.normalization
    if p.HasField("normalize"):
        return _Mode.VALID if p.normalize else _Mode.BATCH_SIZE
    return default


def _divisor(mode: int, outer: int, count: int, valid) -> torch.Tensor | float:
    """Caffe's LossLayer normaliser for ``mode``, at least 1."""
    if mode == _Mode.VALID and valid is not None:
        return valid.sum().clamp(min=1)
    return float(
        max(1, {_Mode.FULL: count, _Mode.VALID: count, _Mode.BATCH_SIZE: outer}.get(mode, 1))
    )


class EuclideanLoss(Layer):
    """sum((a - b)²) / (2 N); both bottoms get gradients (b's with the opposite sign)."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        if math.prod(shapes[0][1:]) != math.prod(shapes[1][1:]):
            raise UpcallError(
                f"layer '{lp.name}': bottoms {list(shapes[0])} and {list(shapes[1])} differ in size"
            )

    def forward(self, a, b):
        return (a - b.reshape(a.shape)).float().square().sum() / (2 * max(1, a.shape[0]))


class SigmoidCrossEntropyLoss(Layer):
    """Cross-entropy of sigmoid(x) against targets in [0, 1], computed stably; a target equal to
    ``ignore_label`` counts for nothing; normalised by the batch size unless loss_param says."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        if math.prod(shapes[0]) != math.prod(shapes[1]):
            raise UpcallError(
                f"layer '{lp.name}': {list(shapes[1])} targets do not fit {list(shapes[0])} inputs"
            )
        p = lp.loss_param
        self.ignore = p.ignore_label if p.HasField("ignore_label") else None
        self.mode = _mode(lp, _Mode.BATCH_SIZE)  # BATCH_SIZE: Caffe 1.0's default here

    def forward(self, x, target):
        target = target.detach().reshape(x.shape).float()
        loss = F.binary_cross_entropy_with_logits(x.float(), target, reduction="none")
        valid = None
        if self.ignore is not None:
            valid = target.long() != self.ignore  # Caffe compares static_cast<int>(target)
            loss = loss * valid
        return loss.sum() / _divisor(self.mode, x.shape[0], x.numel(), valid)


class HingeLoss(Layer):
    """Caffe's one-vs-all hinge: s' = s with the true class negated; loss = sum(max(0, 1 + s'))
    (L1) or sum(max(0, 1 + s')²) (L2), over N."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.l2 = lp.hinge_loss_param.norm == caffe_pb2.HingeLossParameter.L2

    def forward(self, scores, label):
        s = scores.float().reshape(scores.shape[0], -1)
        sign = torch.ones_like(s).scatter_(1, label.detach().reshape(-1, 1).long(), -1.0)
        margin = F.relu(1 + s * sign)
        return (margin.square() if self.l2 else margin).sum() / s.shape[0]


class MultinomialLogisticLoss(Layer):
    """-sum(log p[label]) / N on probabilities, p clamped at 1e-20 in value only (Caffe's
    gradient is -1 / max(p, 1e-20) even below the clamp)."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()

    def forward(self, prob, label):
        p = prob.float().reshape(prob.shape[0], -1)
        picked = p.gather(1, label.detach().reshape(-1, 1).long()).squeeze(1)
        kept = picked - picked.detach() + picked.detach().clamp(min=1e-20)
        return -kept.log().sum() / p.shape[0]


class Accuracy(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.accuracy_param
        self.axis, self.top_k = p.axis % len(shapes[0]), p.top_k
        self.ignore = p.ignore_label if p.HasField("ignore_label") else None
        classes = shapes[0][self.axis]
        if self.top_k > classes:
            raise UpcallError(
                f"layer '{lp.name}': top_k {self.top_k} exceeds the {classes} classes"
            )
        if len(lp.top) > 1:
            raise UpcallError(f"layer '{lp.name}': Accuracy with per-class output is not supported")

    @torch.no_grad()
    def forward(self, scores, label):
        label = _labels(label, scores, self.axis).reshape(-1)
        s = scores.movedim(self.axis, -1).reshape(label.numel(), -1)
        valid = (
            label != self.ignore
            if self.ignore is not None
            else torch.ones_like(label, dtype=torch.bool)
        )
        true = s.gather(1, (label * valid).unsqueeze(1)).squeeze(1)
        better = classes_at_or_above(s, true)  # Caffe's rule: a tie counts against the label
        hits = ((better < self.top_k) & valid).sum()
        return (hits / valid.sum().clamp(min=1)).float()
