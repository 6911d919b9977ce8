"""The fully convolutional pass of a deploy net over a long image (detection in recordings).

A net whose layers before its last pooling are convolutions, batch norm, scale, ReLU, pooling,
element-wise sums and (TEST-phase) dropout, and whose last pooling is a MAX over the whole
width of its input (a global max pool, or a max over time only), gives a window's score as:
trunk(window) → max over the map's columns → head. :class:`SlidingNet` runs the trunk once over
the long image, takes the max over the map columns each window covers, and runs the head on
those. A window's score then differs from the window computed alone only where the trunk sees
past the window's edges (the convolutions' zero padding and the last, partial pooling cells
become the neighbouring audio): a few edge columns of the final map. Those columns see up to
half the trunk's receptive field (≈0.5 s for WhaleNet) past the window, so a call just outside a
window raises its score, and nets trained on 2-s images have learnt that their edges are zero
padding: the scores are close to per-window scores, not equal (tests/detect/test_fcn.py, and
the figures of benchmarks/bench_detect.py).

The image must be one whose columns do not depend on the rest of the image (a spectrogram mode
with ``per_image`` False) and must not be cropped or resized; the stored mean image is averaged
over its columns (one mean per row), as the columns of a long image have no place in it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from upcall.engines.torch.layers import Convolution, Pooling
from upcall.engines.torch.plan import FoldedConv, Plan, Step
from upcall.job.deploy import softmax_classes

# Layer types that act on each position of the map alike along time (shift-equivariant).
TRUNK_TYPES = frozenset(
    {"Convolution", "BatchNorm", "Scale", "ReLU", "Pooling", "Eltwise", "Dropout", "Concat"}
)


def _width_stride(step: Step) -> int:
    module = step.fn
    if isinstance(module, (Convolution, Pooling, FoldedConv)):
        return int(module.stride[1])
    return 1


class SlidingNet:
    """A TorchPredictor's plan split at its last (full-width MAX) pooling; see the module doc."""

    def __init__(self, predictor, trunk: list[Step], pool: Step, head: list[Step], stride: int,
                 width: int, mean: torch.Tensor | None) -> None:  # fmt: skip
        self.predictor = predictor
        self.trunk, self.pool, self.head = trunk, pool, head
        self.stride = stride  # image columns per final-map column
        self.width = width  # final-map columns of one window
        self.mean = mean  # float32 (C, H, 1) or (C, 1, 1), or None

    @classmethod
    def build(cls, predictor) -> SlidingNet | str:
        """The sliding pass of ``predictor`` (a TorchPredictor), or why its net has none."""
        deploy, plan, net = predictor.deploy, predictor.plan, predictor.net
        pre = deploy.preprocess
        if pre.crop_size:
            return "the job crops its images (crop_size), so windows are not columns of one image"
        if len(plan.input_names) != 1:
            return "the net has more than one input"
        last = _last_full_width_max(plan, net)
        if last is None:
            return "the net does not end in a MAX pooling over the whole width of its last map"
        trunk, pool, head = plan.steps[:last], plan.steps[last], plan.steps[last + 1 :]
        bad = sorted({t for s in trunk for t in s.types} - TRUNK_TYPES)
        if bad:
            return f"layers of type {', '.join(bad)} before the last pooling"
        if any("Concat" in s.types and getattr(s.fn, "axis", 1) == 3 for s in trunk):
            return "a Concat along time before the last pooling"
        if any(isinstance(s.fn, Pooling) and s.fn.kernel == tuple(net.blob_shapes[s.bottoms[0]][2:4])
               and s.fn.stride == (1, 1) for s in trunk):  # fmt: skip
            return "a global pooling before the last one"
        strides = {plan.input_names[0]: 1}
        for s in trunk:
            ins = {strides[b] for b in s.bottoms}
            if len(ins) != 1:
                return f"layer {s.layers[0]!r} adds maps of different strides"
            strides.update((t, ins.pop() * _width_stride(s)) for t in s.tops)
        made = {t for s in head for t in s.tops} | set(pool.tops)
        if any(b not in made for s in head for b in s.bottoms):
            return "layers after the last pooling read maps from before it"
        mean = None
        if pre.mean is not None:
            mean = torch.from_numpy(pre.mean.mean(axis=2, keepdims=True).astype(np.float32))
        width = int(net.blob_shapes[pool.bottoms[0]][3])
        return cls(predictor, trunk, pool, head, strides[pool.bottoms[0]], width, mean)

    def probabilities(self, image: np.ndarray, *, every: int, count: int) -> np.ndarray:
        """uint8 (C, H, T) → float64 (count, K): windows at columns 0, every·stride, ..."""
        p = self.predictor
        d = p.deploy
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None].to(p.device)
            if self.mean is not None:
                x = x - self.mean.to(p.device)
            if d.preprocess.scale != 1.0:
                x = x * d.preprocess.scale
            fmap = p.plan.run({d.input: x}, steps=self.trunk, outputs=[self.pool.bottoms[0]])
            fmap = fmap[self.pool.bottoms[0]]  # (1, C', H', T')
            need = (count - 1) * every + self.width
            if fmap.shape[3] < need:  # the last window's edge cells: nothing past the audio
                fmap = F.pad(fmap, (0, need - fmap.shape[3]), value=float("-inf"))
            k = self.pool.fn
            # the last pooling's own rows, over each window's columns, every `every` columns
            pooled = F.max_pool2d(
                fmap, (k.kernel[0], self.width), (k.stride[0], every), (k.pad[0], 0),
                ceil_mode=k.ceil,
            )[..., :count]  # fmt: skip
            windows = pooled[0].permute(2, 0, 1)[..., None].contiguous()  # (count, C', H'', 1)
            out = p.plan.run({self.pool.tops[0]: windows}, steps=self.head, outputs=[d.output])
            blob = out[d.output].float().cpu().numpy().astype(np.float64)
        return softmax_classes(blob, done=d.is_prob)


def _last_full_width_max(plan: Plan, net) -> int | None:
    """Index of the last pooling step if it is a MAX over its input's whole width."""
    pools = [i for i, s in enumerate(plan.steps) if isinstance(s.fn, Pooling)]
    if not pools:
        return None
    i = pools[-1]
    pool = plan.steps[i].fn
    width = net.blob_shapes[plan.steps[i].bottoms[0]][3]
    if not pool.max or pool.kernel[1] != width or pool.pad[1] != 0:
        return None
    return i
