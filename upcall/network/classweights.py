"""Class weights for the training loss, as a Caffe prototxt expresses them (``nets --class-weights``).

A weighted loss is Caffe's InfogainLoss with a diagonal matrix H = diag(w): a sample of class y
costs ``-w_y log p_y`` instead of ``-log p_y``. Caffe 1.0 as built here (Debian's 1.0.0 with
the 2017 InfogainLoss) applies its own softmax to the scores, exactly as SoftmaxWithLoss does,
so the layer simply takes SoftmaxWithLoss's place and the net needs no extra Softmax; the
deploy net does not change. H is a 1×1×K×K BlobProto in the job folder (``infogain.binaryproto``)
named by a relative ``source``, which Caffe resolves in the job directory it runs in.

Only the train phase is weighted: the val phase keeps the plain SoftmaxWithLoss of the same
name and top, so the validation loss of a weighted job is the same quantity as an unweighted
one's and the curves of both can be compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from upcall.errors import UpcallError
from upcall.network import build as ns
from upcall.proto import array_to_blob, caffe_pb2

INFOGAIN_FILE = "infogain.binaryproto"  # beside train_val.prototxt in the job folder
MODES = ("none", "balanced", "manual")


@dataclass(frozen=True)
class ClassWeights:
    """What config.json records: how the weights were chosen and, once resolved, their values."""

    mode: str = "none"  # none | balanced (n / (K n_k) of the training list) | manual (given)
    weights: tuple[float, ...] = ()  # one per class, label order; empty for none

    @property
    def active(self) -> bool:
        return self.mode != "none"


UNWEIGHTED = ClassWeights()  # the default: plain SoftmaxWithLoss in both phases


def parse_class_weights(text: str) -> ClassWeights:
    """``none``, ``balanced`` or comma-separated weights ``W0,W1,...`` (label order)."""
    text = text.strip()
    if text in ("none", "balanced"):
        return ClassWeights(mode=text)
    try:
        weights = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise UpcallError(
            f"--class-weights must be none, balanced or comma-separated numbers, not {text!r}"
        ) from None
    if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise UpcallError(f"--class-weights needs finite weights >= 0, not all zero, got {text!r}")
    return ClassWeights(mode="manual", weights=weights)


def resolve(
    choice: ClassWeights, counts: Sequence[int], labels: Sequence[str], *, where: str
) -> ClassWeights:
    """The weights for a training list of ``counts`` images per class (label order).

    ``balanced`` is n / (K n_k): every class then carries the same total weight, n / K, and a
    balanced list gets weight 1 everywhere. ``where`` names the source of the counts in errors.
    """
    if not choice.active:
        return choice
    k = len(labels)
    if choice.mode == "manual":
        if len(choice.weights) != k:
            raise UpcallError(
                f"--class-weights gives {len(choice.weights)} weights; {where} has {k} classes "
                f"({', '.join(labels)})"
            )
        return choice
    if len(counts) != k or min(counts) < 1:
        found = ", ".join(f"{name} {n}" for name, n in zip(labels, counts, strict=False))
        raise UpcallError(
            f"{where}: --class-weights balanced needs images of every class in the training "
            f"list (found {found or 'no per-class counts'})"
        )
    n = sum(counts)
    return ClassWeights(mode="balanced", weights=tuple(n / (k * c) for c in counts))


def infogain_blob(weights: Sequence[float]) -> bytes:
    """H = diag(weights) as the 1×1×K×K BlobProto Caffe's InfogainLoss reads from its source."""
    h = np.diag(np.asarray(weights, np.float32))
    return array_to_blob(h[None, None]).SerializeToString()


def weigh_train_loss(
    train_val: caffe_pb2.NetParameter, *, source: str = INFOGAIN_FILE, where: str
) -> caffe_pb2.NetParameter:
    """``train_val`` with each train-phase SoftmaxWithLoss an InfogainLoss reading ``source``.

    A loss shared by both phases is split: InfogainLoss for TRAIN, the SoftmaxWithLoss for TEST
    (same name, bottoms and tops). Loss weight, normalisation, ignore_label and axis carry over.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(train_val)
    del out.layer[:]
    weighted = 0
    for layer in train_val.layer:
        phases = {rule.phase for rule in layer.include if rule.HasField("phase")}
        if layer.type != "SoftmaxWithLoss" or phases == {caffe_pb2.TEST}:
            out.layer.add().CopyFrom(layer)
            continue
        if not phases:  # both phases: the val phase keeps the plain loss
            test = out.layer.add()
            test.CopyFrom(layer)
            ns.include(test, phase="TEST")
        out.layer.append(_infogain_like(layer, source))
        weighted += 1
    if not weighted:
        raise UpcallError(f"{where}: no SoftmaxWithLoss in the train phase to weight by class")
    return out


def _infogain_like(layer: caffe_pb2.LayerParameter, source: str) -> caffe_pb2.LayerParameter:
    new = ns.infogain_loss(
        layer.name,
        list(layer.bottom),
        source=source,
        axis=layer.softmax_param.axis if layer.HasField("softmax_param") else 1,
    )
    del new.top[:]
    new.top.extend(layer.top)
    new.loss_weight.extend(layer.loss_weight)
    new.propagate_down.extend(layer.propagate_down)
    if layer.HasField("loss_param"):
        new.loss_param.CopyFrom(layer.loss_param)
    del new.include[:]
    ns.include(new, phase="TRAIN")
    return new
