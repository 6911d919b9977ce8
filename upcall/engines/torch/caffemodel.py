""".caffemodel and .solverstate files for a CaffeNet, interchangeable with real Caffe.

A .caffemodel is a NetParameter whose layers carry their blobs; Caffe copies them into a net by
layer name (Net::CopyTrainedLayersFrom), ignoring layers the net lacks, and so do we. A
.solverstate is a SolverState: iter, the .caffemodel's file name, one history blob per learnable
blob in net order (two for AdaDelta and Adam), and the step counter.
"""

from __future__ import annotations

import os

import torch

from upcall.engines.torch.net import CaffeNet
from upcall.engines.torch.solver import SolverSnapshot
from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_bytes
from upcall.network.upgrade import upgrade_net
from upcall.proto import array_to_blob, blob_to_array, caffe_pb2, is_legacy_4d, read_binary


def _fits(saved: tuple[int, ...], blob: caffe_pb2.BlobProto, target: tuple[int, ...]) -> bool:
    if not is_legacy_4d(blob):
        return saved == target
    # Caffe's legacy check: the target's shape padded on the left with 1s to 4 axes.
    return len(target) <= 4 and saved == (1,) * (4 - len(target)) + target


def net_to_proto(net: CaffeNet) -> caffe_pb2.NetParameter:
    """The weights of ``net`` as Caffe stores them: every layer with blobs, by name and type."""
    proto = caffe_pb2.NetParameter(name=net.name)
    for name, kind, module in zip(net.layer_names, net.layer_types, net.layers, strict=True):
        if not module.blob_names:
            continue
        layer = proto.layer.add(name=name, type=kind)
        for tensor in module.blobs():
            layer.blobs.append(array_to_blob(tensor.detach().float().cpu().numpy()))
    return proto


def save_caffemodel(net: CaffeNet, path: str | os.PathLike) -> None:
    """Write ``net``'s weights to ``path`` atomically; real Caffe's ``--weights`` loads it."""
    atomic_write_bytes(path, net_to_proto(net).SerializeToString())


def copy_from_proto(net: CaffeNet, proto: caffe_pb2.NetParameter, *, source: str) -> list[str]:
    """Copy blobs into ``net`` by layer name; returns the names copied. ``source`` names the file."""
    copied = []
    for layer in proto.layer:
        if layer.name not in net.layer_names or not layer.blobs:
            continue  # Caffe ignores source layers the target net lacks
        module = net.layer(layer.name)
        targets = module.blobs()
        if len(layer.blobs) != len(targets):
            raise UpcallError(
                f"{source}: layer '{layer.name}' has {len(layer.blobs)} blobs, the net's has {len(targets)}"
            )
        for i, (blob, target) in enumerate(zip(layer.blobs, targets, strict=True)):
            array = blob_to_array(blob, where=f"{source}: layer '{layer.name}' blob {i}")
            if not _fits(array.shape, blob, tuple(target.shape)):
                raise UpcallError(
                    f"{source}: layer '{layer.name}' blob {i} has shape {list(array.shape)}, "
                    f"the net needs {list(target.shape)}"
                )
            with torch.no_grad():
                target.copy_(torch.from_numpy(array).reshape(target.shape))
        copied.append(layer.name)
    return copied


def load_caffemodel(net: CaffeNet, path: str | os.PathLike) -> list[str]:
    """Load a .caffemodel (ours or Caffe's) into ``net`` by layer name; returns the layers loaded."""
    proto = read_binary(path, caffe_pb2.NetParameter())
    upgrade_net(proto, where=str(path))  # a V0/V1 .caffemodel keeps its blobs in `layers`
    return copy_from_proto(net, proto, source=str(path))


def save_solverstate(path: str | os.PathLike, snap: SolverSnapshot, *, learned_net: str) -> None:
    """Write a SolverState; ``learned_net`` is the matching .caffemodel's path, as Caffe records it."""
    state = caffe_pb2.SolverState(
        iter=snap.iter, learned_net=learned_net, current_step=snap.current_step
    )
    state.history.extend(array_to_blob(h) for h in snap.history)
    atomic_write_bytes(path, state.SerializeToString())


def read_solverstate(path: str | os.PathLike) -> tuple[SolverSnapshot, str]:
    """The snapshot in a .solverstate and the .caffemodel path it names (``learned_net``)."""
    state = read_binary(path, caffe_pb2.SolverState())
    history = tuple(
        blob_to_array(b, where=f"{path}: history blob {i}") for i, b in enumerate(state.history)
    )
    return SolverSnapshot(state.iter, state.current_step, history), state.learned_net
