"""Online augmentation in a job: the Python layer in train_val.prototxt and its module files.

``upcall nets --augment SPEC`` puts one Caffe Python layer right after the TRAIN Data layer, in
place on its data blob, so real Caffe runs :mod:`upcall.augment.caffe_layer` and the torch
engine runs the same numpy transform (:mod:`upcall.augment.batches`). The two module files are
copied into the job folder, where Caffe's Python imports them: the job then holds the exact
transform it was trained with, and runs wherever Caffe can import ``upcall_augment_layer``.
TEST and deploy nets never hold the layer, so validation, export and detection see plain images.
"""

from __future__ import annotations

from importlib import resources

from upcall.augment.batches import SPEC_HELP, OnlineAugment
from upcall.errors import UpcallError
from upcall.network import build as ns
from upcall.proto import caffe_pb2

LAYER_NAME = "augment"
MODULE = "upcall_augment_layer"  # python_param.module: the copy of augment/caffe_layer.py
LAYER_CLASS = "OnlineAugmentLayer"
# job file → (package, file) it is copied from
FILES = {
    "upcall_augment.py": ("upcall.augment", "batches.py"),
    f"{MODULE}.py": ("upcall.augment", "caffe_layer.py"),
}

__all__ = ["FILES", "LAYER_CLASS", "MODULE", "add_layer", "job_files", "parse_augment"]


def parse_augment(spec: str | None, *, seed: int | None = None) -> OnlineAugment | None:
    """``--augment`` text → settings; None for no text, "none" or all transforms off."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    try:
        augment = OnlineAugment.parse(spec, seed=seed or 0)
    except ValueError as e:
        raise UpcallError(f"--augment {spec!r}: {e} (format: {SPEC_HELP})") from None
    return augment if augment.active else None


def add_layer(
    train_val: caffe_pb2.NetParameter, augment: OnlineAugment, *, where: str
) -> caffe_pb2.NetParameter:
    """A copy of ``train_val`` with the augmentation layer after the TRAIN Data layer."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(train_val)
    data = [
        i
        for i, lp in enumerate(out.layer)
        if lp.type == "Data" and any(r.phase == caffe_pb2.TRAIN for r in lp.include)
    ]
    if len(data) != 1 or len(out.layer[data[0]].top) != 2:
        raise UpcallError(f"{where}: --augment needs one TRAIN Data layer with tops data, label")
    image, label = out.layer[data[0]].top
    layer = caffe_pb2.LayerParameter(
        name=LAYER_NAME, type="Python", bottom=[image, label], top=[image]
    )
    layer.python_param.module = MODULE
    layer.python_param.layer = LAYER_CLASS
    layer.python_param.param_str = augment.param_str()
    ns.include(layer, phase="TRAIN")
    out.layer.insert(data[0] + 1, layer)
    return out


def job_files() -> dict[str, bytes]:
    """The module files a job with augmentation holds, by file name."""
    return {
        name: resources.files(package).joinpath(file).read_bytes()
        for name, (package, file) in FILES.items()
    }
