"""The trunk of a cut graph made lean for the long pass of detection: constants folded.

An exported Caffe net keeps batch norm and scale as separate nodes, each a pass over the whole
map. ONNX Runtime's basic optimisations (constant folding, batch norm and multiplication folded
into the convolution: standard ONNX operators only) leave one per-channel ``Add`` after each
convolution, which then stands between the convolution and its ReLU, so the runtime cannot fuse
them either. :func:`lean_trunk` runs those optimisations once and moves each such ``Add`` into
the convolution's bias: the trunk then makes one pass per convolution (≈ 1.7× faster on
WhaleNet's trunk; the maps agree to float32 rounding). The result is cached with the cut.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def lean_trunk(trunk: bytes) -> bytes:
    """``trunk`` (a serialised ONNX model) after ONNX Runtime's basic optimisations, with every
    convolution's per-channel ``Add`` taken into its bias."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "basic.onnx")
        options.log_severity_level = 3  # its notes on unused initialisers are not for users
        ort.InferenceSession(trunk, options, providers=["CPUExecutionProvider"])
        model = onnx.load(options.optimized_model_filepath)
    _bias_adds(model.graph)
    return model.SerializeToString()


def _bias_adds(graph) -> None:
    """Fold each ``Conv → Add(per-channel constant)`` pair into one Conv with that bias."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    by_output = {n.output[0]: n for n in graph.node if n.op_type == "Conv"}
    dropped = []
    for add in graph.node:
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        conv_out = next((t for t in add.input if t in by_output), None)
        const = next((t for t in add.input if t != conv_out and t in inits), None)
        if conv_out is None or const is None or readers[conv_out] != 1 or conv_out in outputs:
            continue
        conv = by_output[conv_out]
        channels = numpy_helper.to_array(inits[conv.input[1]]).shape[0]
        value = numpy_helper.to_array(inits[const])
        if value.size != channels or value.shape not in {(channels,), (channels, 1, 1),
                                                          (1, channels, 1, 1)}:  # fmt: skip
            continue
        bias = value.reshape(-1).astype(np.float32)
        if len(conv.input) > 2:
            bias = bias + numpy_helper.to_array(inits[conv.input[2]]).astype(np.float32)
        name = f"{conv.name or conv_out}_folded_bias"
        graph.initializer.append(numpy_helper.from_array(bias, name))
        if len(conv.input) > 2:
            conv.input[2] = name
        else:
            conv.input.append(name)
        conv.output[0] = add.output[0]
        dropped.append(add)
    for add in dropped:
        graph.node.remove(add)
    used = {t for n in graph.node for t in n.input}
    gone = {i.name for i in graph.initializer if i.name not in used}
    kept = [i for i in graph.initializer if i.name not in gone]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [v for v in graph.input if v.name not in gone]  # older models list them as inputs
    del graph.input[:]
    graph.input.extend(inputs)
