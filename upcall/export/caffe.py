"""A job's deploy net and snapshot as one folder real Caffe loads (torch-free).

OUT/deploy.prototxt              the job's, as it is
OUT/snapshot_iter_N.caffemodel   the snapshot's weights, as they are
OUT/mean.binaryproto             the full-size mean the transform subtracts (mean values
                                 broadcast to the stored image size; zeros when none)
OUT/labels.txt                   one class name a line
OUT/export.json                  DeployInfo: crop, scale, input size, spectrogram settings
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from upcall.data.datum import write_mean
from upcall.fsutil import atomic_dir
from upcall.inference.onnx.metadata import DeployInfo
from upcall.job.deploy import Deploy


def export_caffe(deploy: Deploy, info: DeployInfo, out: Path) -> Path:
    """Write the folder ``out`` (replacing one there, atomically); returns ``out``."""
    c = deploy.input_shape[0]
    height, width = info.input["height"], info.input["width"]
    mean = deploy.preprocess.mean
    full = (
        np.zeros((c, height, width), np.float32)
        if mean is None
        else np.broadcast_to(mean, (c, height, width))
    )
    # only an earlier export is replaced, never the job exported from (`--out JOB`)
    inputs = (deploy.prototxt, deploy.weights)
    with atomic_dir(out, kind="export", legacy=(DeployInfo.FILE,), inputs=inputs) as tmp:
        shutil.copyfile(deploy.prototxt, tmp / "deploy.prototxt")
        shutil.copyfile(deploy.weights, tmp / deploy.weights.name)
        write_mean(tmp / "mean.binaryproto", full)
        (tmp / "labels.txt").write_text("".join(f"{n}\n" for n in deploy.class_names))
        info.write(tmp)
    return out
