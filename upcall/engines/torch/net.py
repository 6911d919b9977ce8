"""A Caffe NetParameter run as a torch module: phase filtering, then layers in file order.

Blobs live in a dict keyed by name, so in-place layers (bottom == top) simply rebind a name and
a blob read by several layers needs no Split layer. Learnable blobs keep their Caffe layer names
and order, so they map 1:1 onto .caffemodel blobs and .solverstate history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from upcall.engines.torch.base import BuildContext, Layer
from upcall.engines.torch.layers import INPUT_TYPES, LOSS_TYPES, build_layer
from upcall.errors import UpcallError
from upcall.network.phase import filter_net
from upcall.network.shapes import infer_shapes
from upcall.proto import caffe_pb2


@dataclass(frozen=True, eq=False)
class ParamSpec:
    """One learnable blob in Caffe's order (the order of .solverstate history)."""

    layer: str
    index: int  # blob index within the layer (0 weight, 1 bias; BatchNorm 0–2)
    lr_mult: float
    decay_mult: float
    tensor: torch.Tensor  # the live parameter (or BatchNorm buffer, which has lr_mult 0)


class CaffeNet(nn.Module):
    """A Caffe net for one phase.

    Parameters
    ----------
    net : the NetParameter (train_val or deploy), unfiltered.
    phase : caffe_pb2.TRAIN or caffe_pb2.TEST; stages and level complete the NetState.
    input_shapes : shapes of Data-layer tops, e.g. {"data": (N, C, H, W), "label": (N,)};
        Input layers (and net-level inputs) carry their own shapes, which these override.
    seed : seeds the torch.Generator every filler draws from, in file order.
    base : what relative file paths in layers (InfogainLoss's source) resolve against: the job
        directory, where Caffe would run; None: the current directory.
    """

    def __init__(
        self,
        net: caffe_pb2.NetParameter,
        *,
        phase: int,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        stages: Sequence[str] = (),
        level: int = 0,
        seed: int = 0,
        base: Path | None = None,
    ):
        super().__init__()
        self.name, self.phase = net.name, phase
        ctx = BuildContext(phase=phase, generator=torch.Generator().manual_seed(seed), base=base)
        self.input_names: list[str] = []
        self.layer_names: list[str] = []
        self.layer_types: list[str] = []
        self.layers = nn.ModuleList()
        self.blob_shapes: dict[str, tuple[int, ...]] = {}
        self.loss_weights: dict[str, float] = {}
        self._plan: list[tuple[Layer, tuple[str, ...], tuple[str, ...]]] = []
        self._specs: list[caffe_pb2.LayerParameter] = []
        for lp in filter_net(net, phase=phase, stages=stages, level=level).layer:
            if lp.type in INPUT_TYPES:
                self._add_inputs(lp, dict(input_shapes or {}))
            else:
                self._add_layer(lp, ctx)
        self.output_names = self._outputs()
        self._freeze_zero_lr()

    # ---- construction -----------------------------------------------------------------

    def _add_inputs(self, lp: caffe_pb2.LayerParameter, given: dict) -> None:
        shapes = [tuple(s.dim) for s in lp.input_param.shape]
        if lp.type == "DummyData":  # its own shapes, as Input's
            one = caffe_pb2.NetParameter(layer=[lp])
            shapes = [infer_shapes(one, {})[t] for t in lp.top]
        for i, top in enumerate(lp.top):
            if top in given:
                shape = tuple(int(d) for d in given[top])
            elif shapes:
                shape = shapes[min(i, len(shapes) - 1)]
            else:
                raise UpcallError(
                    f"layer '{lp.name}': input blob '{top}' needs a shape (input_shapes={{'{top}': ...}})"
                )
            self.input_names.append(top)
            self.blob_shapes[top] = shape

    def _add_layer(self, lp: caffe_pb2.LayerParameter, ctx: BuildContext) -> None:
        for b in lp.bottom:
            if b not in self.blob_shapes:
                raise UpcallError(
                    f"layer '{lp.name}' reads blob '{b}', which no earlier layer makes"
                )
        if lp.name in self.layer_names:
            raise UpcallError(
                f"layer name '{lp.name}' appears twice in the {_phase(self.phase)} net"
            )
        shapes = [self.blob_shapes[b] for b in lp.bottom]
        module = build_layer(lp, shapes, ctx)
        tops = _as_tuple(_meta_forward(module, shapes))
        if len(tops) != len(lp.top):
            raise UpcallError(
                f"layer '{lp.name}' ({lp.type}) makes {len(tops)} tops, prototxt names {len(lp.top)}"
            )
        self.blob_shapes.update(
            (name, tuple(t.shape)) for name, t in zip(lp.top, tops, strict=True)
        )
        weights = list(lp.loss_weight) or ([1.0] if lp.type in LOSS_TYPES else [])
        self.loss_weights.update((t, w) for t, w in zip(lp.top, weights, strict=False) if w)
        self.layers.append(module)
        self.layer_names.append(lp.name)
        self.layer_types.append(lp.type)
        self._specs.append(lp)
        self._plan.append((module, tuple(lp.bottom), tuple(lp.top)))

    def _outputs(self) -> list[str]:
        # Caffe's net outputs: blobs no later layer reads, in name order (a std::set in Caffe).
        available = set(self.input_names)
        for _, bottoms, tops in self._plan:
            available.difference_update(bottoms)
            available.update(tops)
        return sorted(available)

    # ---- running ------------------------------------------------------------------------

    def forward(
        self, inputs: Mapping[str, torch.Tensor], *, outputs: Iterable[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Run every layer; returns all blobs by name (or only ``outputs``)."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise UpcallError(f"net '{self.name}': inputs {missing} were not given")
        blobs = dict(inputs)
        for module, bottoms, tops in self._plan:
            out = module(*[blobs[b] for b in bottoms])
            if len(tops) == 1:
                blobs[tops[0]] = out
            else:
                blobs.update(zip(tops, out, strict=True))
        return blobs if outputs is None else {k: blobs[k] for k in outputs}

    def loss(self, blobs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Σ loss_weight · sum(top), Caffe's objective (GoogLeNet: 0.3·loss1 + 0.3·loss2 + loss3)."""
        terms = [w * blobs[t].float().sum() for t, w in self.loss_weights.items()]
        if not terms:
            raise UpcallError(f"net '{self.name}' has no loss in the {_phase(self.phase)} phase")
        return torch.stack(terms).sum()

    # ---- parameters ---------------------------------------------------------------------

    def param_specs(self) -> list[ParamSpec]:
        """Every blob of every layer, in Caffe's learnable-parameter order, with its multipliers."""
        specs = []
        for lp, module in zip(self._specs, self.layers, strict=True):
            for i, tensor in enumerate(module.blobs()):
                lr, decay = (
                    (lp.param[i].lr_mult, lp.param[i].decay_mult)
                    if i < len(lp.param)
                    else (1.0, 1.0)
                )
                if lp.type == "BatchNorm":
                    lr = 0.0  # Caffe masks the statistics from the solver
                specs.append(ParamSpec(lp.name, i, lr, decay, tensor))
        return specs

    def _freeze_zero_lr(self) -> None:
        """Skip gradients of blobs with lr_mult 0, as Caffe skips their backward."""
        for spec in self.param_specs():
            if isinstance(spec.tensor, nn.Parameter):
                spec.tensor.requires_grad_(spec.lr_mult != 0)

    def layer(self, name: str) -> Layer:
        if name not in self.layer_names:
            raise UpcallError(
                f"net '{self.name}' has no layer '{name}' in the {_phase(self.phase)} phase"
            )
        return self.layers[self.layer_names.index(name)]

    def share_from(self, other: CaffeNet) -> list[str]:
        """Use ``other``'s blobs for layers of the same name (Caffe's ShareTrainedLayersWith).

        A TEST net shares the TRAIN net's weights this way; returns the shared layer names.
        """
        shared = []
        for name, module in zip(self.layer_names, self.layers, strict=True):
            if name not in other.layer_names or not module.blob_names:
                continue
            source = other.layer(name)
            if [tuple(t.shape) for t in module.blobs()] != [tuple(t.shape) for t in source.blobs()]:
                raise UpcallError(f"layer '{name}': blob shapes differ between the two nets")
            for blob in module.blob_names:
                setattr(module, blob, getattr(source, blob))
            shared.append(name)
        return shared


def _meta_forward(module: Layer, shapes: list[tuple[int, ...]]):
    # Shapes come from running the layer on meta tensors: no compute, and exactly torch's sizes.
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    state = {k: torch.empty_like(v, device="meta") for k, v in tensors.items()}
    args = [torch.empty(s, device="meta") for s in shapes]
    with torch.no_grad():
        return functional_call(module, state, tuple(args))


def _as_tuple(out) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _phase(phase: int) -> str:
    return caffe_pb2.Phase.Name(phase)
