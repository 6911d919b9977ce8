"""A CaffeNet in TEST phase as an inference plan: the same function, fewer passes over memory.

Convolution → BatchNorm (global statistics) → Scale [→ ReLU] chains are folded into one
convolution with a bias (and an in-place ReLU on its fresh output), which saves three full
passes over every activation map; everything else runs the CaffeNet's own modules. The folded
weights are computed in float64 and rounded once to float32, so the outputs differ from the
unfolded net's only by float32 rounding (≈1e-6 on probabilities).

:class:`Plan` also lets a caller run a prefix of the net (up to a blob) and the rest from that
blob, which the fully convolutional detector (:mod:`upcall.inference.torch.fcn`) uses. It is
here, below inference, because the DIGITS engine scores fetched snapshots with it too
(:mod:`upcall.engines.torch.deploy`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from upcall.engines.torch.layers import BatchNorm, Convolution, ReLU, Scale
from upcall.engines.torch.net import CaffeNet


@dataclass(frozen=True)
class Step:
    """One computation of the plan: ``fn(*bottoms) -> top(s)``; ``layers`` are the Caffe layers
    it stands for (several when folded), ``types`` their types."""

    fn: Callable
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    layers: tuple[str, ...]
    types: tuple[str, ...]
    module: torch.nn.Module | None = None  # the CaffeNet module run as is; None when folded


class FoldedConv(torch.nn.Module):
    """conv(x, W·k) + (b·k + β − μ·k) [then ReLU in place]: Convolution, BatchNorm, Scale, ReLU."""

    def __init__(self, conv: Convolution, weight: torch.Tensor, bias: torch.Tensor, relu: bool):
        super().__init__()
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
        return F.relu_(y) if self.relu else y  # y is this step's own tensor: safe in place


def _fold(conv: Convolution, bn: BatchNorm, scale: Scale | None, relu: bool) -> FoldedConv:
    with torch.no_grad():
        f = bn.factor.double()[0]
        s = 0.0 if f == 0 else 1.0 / f  # Caffe's stored sums → mean and variance
        mean, var = bn.mean.double() * s, bn.variance.double() * s
        k = 1.0 / torch.sqrt(var + bn.eps)  # (O,)
        shift = -mean * k
        if scale is not None:
            g = scale.weight.double().reshape(-1)
            k, shift = k * g, shift * g
            if "bias" in scale.blob_names:
                shift = shift + scale.bias.double().reshape(-1)
        w = conv.weight.double() * k[:, None, None, None]
        b = shift if conv.bias is None else conv.bias.double() * k + shift
        return FoldedConv(conv, w.float(), b.float(), relu)


class Plan:
    """The steps of a TEST-phase CaffeNet, with Convolution-BatchNorm-Scale-ReLU chains folded."""

    def __init__(self, net: CaffeNet) -> None:
        self.input_names = list(net.input_names)
        raw = [
            Step(m, bottoms, tops, (name,), (kind,), m)
            for (m, bottoms, tops), name, kind in zip(
                net._plan, net.layer_names, net.layer_types, strict=True
            )
        ]
        self.steps: list[Step] = []
        i = 0
        while i < len(raw):
            folded, used = self._try_fold(raw, i)
            self.steps.append(folded or raw[i])
            i += used

    @staticmethod
    def _try_fold(raw: list[Step], i: int) -> tuple[Step | None, int]:
        """(folded step, steps it replaces) for a foldable chain at ``i``, else (None, 1)."""
        conv = raw[i].module
        if not isinstance(conv, Convolution) or i + 1 >= len(raw):
            return None, 1
        chain = [raw[i]]
        bn = raw[i + 1].module
        if not (
            isinstance(bn, BatchNorm) and bn.global_stats and raw[i + 1].bottoms == chain[-1].tops
        ):
            return None, 1
        chain.append(raw[i + 1])
        scale = None
        nxt = raw[i + 2] if i + 2 < len(raw) else None
        if nxt is not None and isinstance(nxt.module, Scale) and nxt.bottoms == chain[-1].tops:
            scale = nxt.module
            chain.append(nxt)
        nxt = raw[i + len(chain)] if i + len(chain) < len(raw) else None
        relu = (
            nxt is not None
            and isinstance(nxt.module, ReLU)
            and not nxt.module.slope
            and nxt.bottoms == chain[-1].tops
        )
        if relu:
            chain.append(nxt)
        # blobs made inside the chain must not be read by anything after it
        inner = {t for s in chain[:-1] for t in s.tops} - set(chain[-1].tops)
        later = {b for s in raw[i + len(chain) :] for b in s.bottoms}
        if inner & later:
            return None, 1
        module = _fold(conv, bn, scale, relu)
        step = Step(
            module,
            raw[i].bottoms,
            chain[-1].tops,
            tuple(n for s in chain for n in s.layers),
            tuple(t for s in chain for t in s.types),
        )
        return step, len(chain)

    def to(self, device: torch.device) -> Plan:
        """Move the folded weights (the CaffeNet's own modules move with the net)."""
        for s in self.steps:
            if s.module is None:
                s.fn.to(device)
        return self

    def run(
        self,
        blobs: Mapping[str, torch.Tensor],
        *,
        steps: list[Step] | None = None,
        outputs: list[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run ``steps`` (default: all) from the given blobs; returns the blobs (or ``outputs``)."""
        found = dict(blobs)
        for s in self.steps if steps is None else steps:
            out = s.fn(*[found[b] for b in s.bottoms])
            if len(s.tops) == 1:
                found[s.tops[0]] = out
            else:
                found.update(zip(s.tops, out, strict=True))
        return found if outputs is None else {k: found[k] for k in outputs}
