"""Caffe's loss and accuracy layers: SoftmaxWithLoss (normalisation modes, ignore_label),
InfogainLoss (the same with a K×K weight matrix H read from a file) and Accuracy (top_k, ties
count as wrong)."""

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
