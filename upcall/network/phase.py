"""Caffe's NetState rules: which layers a net keeps for a phase, level and stages.

One place for Caffe's ``Net::FilterNet`` decision, used by the net builder (DIGITS's
train/val/deploy split), shape inference and the torch engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from upcall.errors import UpcallError
from upcall.proto import caffe_pb2


def rule_met(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """Caffe's StateMeetsRule: phase, level bounds, required stages and forbidden stages."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    return all(s in stages for s in rule.stage) and not any(s in stages for s in rule.not_stage)


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState) -> bool:
    """Whether Caffe keeps ``layer`` in a net of this state (include and exclude rules)."""
    if layer.include and layer.exclude:
        raise UpcallError(f"layer '{layer.name}': give include rules or exclude rules, not both")
    if layer.include:
        return any(rule_met(state, r) for r in layer.include)
    return not any(rule_met(state, r) for r in layer.exclude)


def filter_net(
    net: caffe_pb2.NetParameter, *, phase: int, stages: Sequence[str] = (), level: int = 0
) -> caffe_pb2.NetParameter:
    """The layers Caffe keeps for this NetState; net-level ``input`` fields become an Input layer."""
    state = caffe_pb2.NetState(phase=phase, level=level, stage=list(stages))
    out = caffe_pb2.NetParameter(name=net.name)
    if net.input:
        out.layer.append(_legacy_input_layer(net))
    out.layer.extend(lp for lp in net.layer if layer_included(lp, state))
    return out


def _legacy_input_layer(net: caffe_pb2.NetParameter) -> caffe_pb2.LayerParameter:
    lp = caffe_pb2.LayerParameter(name="input", type="Input", top=list(net.input))
    if net.input_shape:
        lp.input_param.shape.extend(net.input_shape)
    elif len(net.input_dim) == 4 * len(net.input):
        for i in range(len(net.input)):
            lp.input_param.shape.add(dim=net.input_dim[4 * i : 4 * i + 4])
    else:
        raise UpcallError(
            f"net '{net.name}': inputs {list(net.input)} need input_shape or 4 input_dim each"
        )
    return lp
