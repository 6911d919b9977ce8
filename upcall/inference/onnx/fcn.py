"""The fully convolutional pass of an exported ONNX model (detection, torch-free).

The same pass as the torch backend's (:mod:`upcall.inference.torch.fcn`), so a job folder and
its export give the same detections: the graph is split at its last MAX pooling over the whole
width of its input. The trunk (the nodes before it) runs once over a long image, with the
input's width made free; each window then takes its columns of the trunk's map, and the pooling
and the head (the exported nodes from the pooling on) run on those, as they do for the window
alone. A window's score so differs from its score alone only where the trunk sees past the
window's edges, exactly as in the torch pass.

The split needs the ``onnx`` package (to cut the graph) once per model: the cut graphs are
cached in the user's cache folder (:func:`cut_cache`). Without it, or for a graph whose
trunk does more than act on each position alike (convolution, batch norm, per-channel scale
and shift, ReLU, pooling, sums), :meth:`OnnxPredictor.sliding` says why and detection scores
per window.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from upcall.fsutil import atomic_write_bytes, atomic_write_text, sha256_file
from upcall.inference.onnx.fold import lean_trunk
from upcall.inference.onnx.session import session_from_bytes
from upcall.job.deploy import softmax_classes

# Operators that act on every position of a map alike along time (shift-equivariant), when
# any operand not computed from the input is per channel (see _check_trunk).
TRUNK_OPS = frozenset(
    {"Conv", "BatchNormalization", "Mul", "Add", "Sub", "Div", "Relu", "MaxPool",
     "AveragePool", "Sum", "Identity", "Dropout", "Concat"}
)  # fmt: skip
STRIDED = frozenset({"Conv", "MaxPool", "AveragePool"})
CUT_VERSION = 2  # bump when the cut changes: cached cuts of another version are not read


def _attr(node, name, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class OnnxSliding:
    """An exported model's graph split at its last full-width MAX pooling; see the module doc."""

    def __init__(self, predictor, trunk, head, pool_input: str, stride: int, width: int,
                 mean: np.ndarray | None) -> None:  # fmt: skip
        self.predictor = predictor
        self.trunk, self.head = trunk, head  # onnxruntime sessions
        self.pool_input = pool_input
        self.stride = stride  # image columns per trunk-map column
        self.width = width  # trunk-map columns of one window
        self.mean = mean  # float32 (C, H, 1) or (C, 1, 1), or None

    @classmethod
    def build(cls, predictor) -> OnnxSliding | str:
        """The sliding pass of ``predictor`` (an OnnxPredictor), or why its graph has none.

        The cut graphs are cached by the model file's SHA-256 (:func:`cut_cache`), so a model
        cut once slides without importing the onnx package again."""
        pre = predictor.deploy.preprocess
        if pre.crop_size:
            return "the model crops its images (crop_size), so windows are not columns of one image"
        folder = cut_cache(predictor.deploy.weights)
        cut = _read_cut(folder) if folder else None
        if cut is None:
            cut = _cut(predictor)
            if isinstance(cut, str):
                return cut
            if folder:
                _write_cut(folder, cut)
        trunk, head, meta = cut
        sessions = [
            session_from_bytes(m, predictor.deploy.weights, predictor.threads)
            for m in (trunk, head)
        ]
        mean = None
        if pre.mean is not None:
            mean = pre.mean.mean(axis=2, keepdims=True).astype(np.float32)
        return cls(predictor, *sessions, meta["pool_input"], meta["stride"], meta["width"], mean)

    def probabilities(self, image: np.ndarray, *, every: int, count: int) -> np.ndarray:
        """uint8 (C, H, T) → float64 (count, K): windows at columns 0, every·stride, ..."""
        d = self.predictor.deploy
        x = np.ascontiguousarray(image, np.float32)[None]
        if self.mean is not None:
            x = x - self.mean
        if d.preprocess.scale != 1.0:
            x = x * np.float32(d.preprocess.scale)
        fmap = self.trunk.run([self.pool_input], {d.input: x})[0]  # (1, C', H', T')
        need = (count - 1) * every + self.width
        if fmap.shape[3] < need:  # the last window's edge cells: nothing past the audio
            pad = np.full((*fmap.shape[:3], need - fmap.shape[3]), -np.inf, np.float32)
            fmap = np.concatenate([fmap, pad], axis=3)
        cols = np.lib.stride_tricks.sliding_window_view(fmap[0], self.width, axis=2)[:, :, ::every]
        windows = np.ascontiguousarray(
            cols[:, :, :count].transpose(2, 0, 1, 3)
        )  # (count, C', H', w)
        out = []
        for i in range(0, count, 256):  # bounded memory for the head's batch
            out.append(self.head.run([d.output], {self.pool_input: windows[i : i + 256]})[0])
        blob = np.concatenate(out).astype(np.float64)
        return softmax_classes(blob, done=d.is_prob)


def _cut(predictor) -> tuple[bytes, bytes, dict] | str:
    """(trunk, head, {pool_input, stride, width}) of the exported graph, or why it has none."""
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return "cutting an ONNX graph needs the onnx package (pip install onnx)"
    model = shape_inference.infer_shapes(onnx.load(str(predictor.deploy.weights)))
    graph = model.graph
    consts = {i.name for i in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        return "the graph has more than one input"
    data = {inputs[0]}  # tensors computed from the input
    nodes = []
    for node in graph.node:
        if any(t in data for t in node.input):
            data.update(node.output)
            nodes.append(node)
    widths = _widths(graph)
    pools = [
        i for i, n in enumerate(nodes)
        if n.op_type == "MaxPool" and widths.get(n.input[0]) == _attr(n, "kernel_shape", [0, 0])[1]
        and not any(_attr(n, "pads", [0, 0, 0, 0])[1::2])
    ]  # fmt: skip
    if not pools:
        return "the graph does not end in a MAX pooling over the whole width of its last map"
    pool = nodes[pools[-1]]
    trunk, head = nodes[: pools[-1]], nodes[pools[-1] :]
    why = _check_trunk(trunk, data, widths, _last_dims(graph))
    if why:
        return why
    made = {t for n in head for t in n.output} | {pool.input[0]}
    if any(t in data and t not in made for n in head for t in n.input):
        return "nodes after the last pooling read maps from before it"
    stride = _trunk_stride(inputs[0], trunk, data)
    if isinstance(stride, str):
        return stride
    trunk_model = _free_width(_extract(model, inputs, [pool.input[0]]), inputs[0])
    head_model = _extract(model, [pool.input[0]], [predictor.deploy.output])
    meta = {"pool_input": pool.input[0], "stride": stride, "width": widths[pool.input[0]]}
    return lean_trunk(trunk_model.SerializeToString()), head_model.SerializeToString(), meta


def cache_root() -> Path:
    """upcall's user cache folder: $XDG_CACHE_HOME/upcall (default ~/.cache/upcall)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "upcall"


def cut_cache(model: Path) -> Path | None:
    """The folder holding the cut graphs of the model file ``model`` (by its SHA-256)."""
    try:
        digest = sha256_file(model)
    except OSError:
        return None
    return cache_root() / "onnx-cut" / f"{digest[:32]}-v{CUT_VERSION}"


def _read_cut(folder: Path) -> tuple[bytes, bytes, dict] | None:
    try:
        meta = json.loads((folder / "cut.json").read_text())
        return (folder / "trunk.onnx").read_bytes(), (folder / "head.onnx").read_bytes(), meta
    except (OSError, ValueError):
        return None


def _write_cut(folder: Path, cut: tuple[bytes, bytes, dict]) -> None:
    """Store a cut (cut.json last: it marks the folder complete); a cache that cannot be
    written is left out."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / "trunk.onnx", cut[0])
        atomic_write_bytes(folder / "head.onnx", cut[1])
        atomic_write_text(folder / "cut.json", json.dumps(cut[2]))
    except OSError:
        pass


def _widths(graph) -> dict[str, int]:
    """The last dimension of every tensor whose shape inference fixed it."""
    out = {}
    for v in [*graph.value_info, *graph.input, *graph.output]:
        dims = v.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[3].HasField("dim_value"):
            out[v.name] = dims[3].dim_value
    return out


def _last_dims(graph) -> dict[str, int]:
    """The last dimension (1 for a scalar) of every constant and inferred tensor."""
    out = {i.name: (i.dims[-1] if len(i.dims) else 1) for i in graph.initializer}
    for v in graph.value_info:
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape"):
            out[v.name] = (
                dims[-1].dim_value
                if len(dims) and dims[-1].HasField("dim_value")
                else (1 if not len(dims) else -1)
            )
    return out


def _check_trunk(trunk, data: set[str], widths: dict[str, int], last: dict[str, int]) -> str | None:
    for n in trunk:
        if n.op_type not in TRUNK_OPS:
            return f"a {n.op_type} node before the last pooling"
        if n.op_type == "Concat" and _attr(n, "axis", 1) % 4 == 3:
            return "a Concat along time before the last pooling"
        if (
            n.op_type in ("MaxPool", "AveragePool")
            and widths.get(n.input[0]) == _attr(n, "kernel_shape", [0, 0])[1]
        ):
            return "a pooling over the whole width before the last one"
        if n.op_type in ("Mul", "Add", "Sub", "Div"):
            # an operand that is not from the input must not vary along time
            fixed = [t for t in n.input if t not in data]
            if any(last.get(t, -1) != 1 for t in fixed):
                return f"a {n.op_type} node with an operand that varies along time"
    return None


def _trunk_stride(first: str, trunk, data: set[str]) -> int | str:
    strides = {first: 1}
    for n in trunk:
        ins = {strides[t] for t in n.input if t in data}
        if len(ins) != 1:
            return f"node {n.name!r} adds maps of different strides"
        s = ins.pop() * (int(_attr(n, "strides", [1, 1])[1]) if n.op_type in STRIDED else 1)
        strides.update((t, s) for t in n.output)
    return strides[trunk[-1].output[0]] if trunk else 1


def _extract(model, inputs: list[str], outputs: list[str]):
    from onnx.utils import Extractor

    return Extractor(model).extract_model(inputs, outputs)


def _free_width(model, name: str):
    """``model`` with its input's width (and every inferred shape) left free."""
    for v in model.graph.input:
        if v.name == name:
            v.type.tensor_type.shape.dim[3].dim_param = "T"
    del model.graph.value_info[:]
    for v in model.graph.output:
        v.type.tensor_type.ClearField("shape")
    return model
