"""A job's deploy net with a snapshot's weights as an ONNX model (torch.onnx.export of the
torch engine's CaffeNet, which reproduces Caffe), with a :class:`DeployInfo` in its metadata."""

from __future__ import annotations

from pathlib import Path

from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_bytes
from upcall.inference.onnx.metadata import DeployInfo
from upcall.job.deploy import Deploy
from upcall.network.phase import filter_net
from upcall.proto import caffe_pb2

OPSET = 17
# Layer types whose CaffeNet modules export to plain ONNX operators, checked against
# onnxruntime in tests/export/test_export.py (whalenet, whalenet-small, alexnet, the test nets).
ONNX_LAYERS = frozenset(
    {
        "Input",
        "Convolution",
        "InnerProduct",
        "ReLU",
        "LRN",
        "BatchNorm",
        "Scale",
        "Dropout",
        "Pooling",
        "Concat",
        "Eltwise",
        "Flatten",
        "Softmax",
        "Sigmoid",
        "TanH",
    }
)


def check_layers(net: caffe_pb2.NetParameter, path: Path) -> None:
    """An UpcallError naming the first TEST-phase layer the ONNX export does not cover."""
    for lay in filter_net(net, phase=caffe_pb2.TEST).layer:
        if lay.type not in ONNX_LAYERS:
            raise UpcallError(
                f"{path}: layer {lay.name!r} has type {lay.type!r}, which upcall cannot export "
                f"to ONNX (it exports {', '.join(sorted(ONNX_LAYERS))})"
            )


def onnx_bytes(deploy: Deploy, info: DeployInfo | None = None) -> bytes:
    """The serialized ONNX model of ``deploy`` (batch axis dynamic), ``info`` in its metadata."""
    import io
    import warnings

    import onnx
    import torch

    from upcall.engines.torch.caffemodel import load_caffemodel
    from upcall.engines.torch.net import CaffeNet

    check_layers(deploy.net, deploy.prototxt)
    net = CaffeNet(
        deploy.net, phase=caffe_pb2.TEST, input_shapes={deploy.input: (1, *deploy.input_shape)}
    )
    load_caffemodel(net, deploy.weights)
    _exportable_lrn(net)

    class Graph(torch.nn.Module):  # one tensor in, the output blob out
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net({deploy.input: x}, outputs=[deploy.output])[deploy.output]

    buf = io.BytesIO()
    example = torch.zeros((2, *deploy.input_shape))
    with warnings.catch_warnings():
        # The legacy exporter is deprecated in favour of torch.export's, which needs onnxscript
        # and gives the same operators for these nets; this one writes them directly.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Graph().eval(),
            (example,),
            buf,
            input_names=[deploy.input],
            output_names=[deploy.output],
            dynamic_axes={deploy.input: {0: "N"}, deploy.output: {0: "N"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: a plain static graph, no onnxscript needed
        )
    model = onnx.load_from_string(buf.getvalue())
    model.doc_string = f"upcall export of {deploy.prototxt} with {deploy.weights.name}"
    if info is not None:
        for key, value in info.to_props().items():
            model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _exportable_lrn(net) -> None:
    """Give across-channel LRN modules a forward the TorchScript exporter can write.

    The engine's LRN moves the channel axis with ``movedim(-1, 1)``, which the exporter writes as
    a Transpose with a negative perm that ONNX rejects; ``permute`` with positive axes is the
    same computation (the same matmul over the same band), so the values do not change.
    """
    import types

    import torch

    from upcall.engines.torch.layers import LRN

    def forward(self, x):  # (N, C, H, W) → (N, H, W, C) @ band → (N, C, H, W)
        sums = torch.matmul((x * x).permute(0, 2, 3, 1), self.band.to(x.dtype))
        return x * (self.k + self.alpha / self.size * sums.permute(0, 3, 1, 2)).pow(-self.beta)

    for module in net.modules():
        if isinstance(module, LRN) and not module.within:
            module.forward = types.MethodType(forward, module)


def export_onnx(deploy: Deploy, info: DeployInfo, out: Path) -> Path:
    """Write the ONNX model of ``deploy`` to ``out`` (atomically); returns ``out``."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UpcallError("exporting to ONNX needs the onnx package (pip install onnx)") from None
    atomic_write_bytes(out, onnx_bytes(deploy, info))
    return out
