"""A job's deploy net, as every runner of it needs it (torch-free).

    deploy.prototxt → its Input blob and shape, the output blob (the last Softmax's top)
    the TEST Data layer's transform_param → :class:`Preprocess` (mean, centre crop, scale)
    the latest complete snapshot set (or --snapshot N) → the weights

:class:`Deploy` holds all of it; the inference backends (:mod:`upcall.inference`) and the DIGITS
engine's scoring of fetched snapshots (:mod:`upcall.engines.torch.deploy`) run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from upcall.data.datum import transform_mean
from upcall.errors import UpcallError
from upcall.network.phase import filter_net
from upcall.network.upgrade import read_net
from upcall.proto import caffe_pb2

BATCH = 64  # images per forward pass in a backend: bounded memory for any N


@dataclass(frozen=True)
class Preprocess:
    """Caffe's TEST-phase DataTransformer in numpy: (x - mean) at the centre crop, times scale."""

    mean: np.ndarray | None  # float32 (C, H, W) full-size mean image, or (C, 1, 1) mean values
    crop_size: int  # 0: no crop
    scale: float

    @classmethod
    def from_param(cls, param: caffe_pb2.TransformationParameter, *, base: Path) -> Preprocess:
        """From a Data layer's transform_param; a relative mean_file resolves against ``base``."""
        return cls(
            mean=transform_mean(param, base=base),
            crop_size=int(param.crop_size),
            scale=float(param.scale),
        )

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) → float32 (N, C, h, w): what the torch engine feeds in TEST."""
        x = np.asarray(images).astype(np.float32)
        if self.mean is not None:
            if self.mean.shape[1:] not in ((1, 1), x.shape[2:]):
                raise UpcallError(
                    f"mean of shape {self.mean.shape} does not fit images of shape {x.shape[1:]}"
                )
            # the full-size mean first, so the crop takes the mean at the pixel's own offset
            x = x - self.mean
        if self.crop_size:
            k = self.crop_size
            h, w = x.shape[2:]
            if k > h or k > w:
                raise UpcallError(f"crop_size {k} is larger than the {h}×{w} images")
            top, left = (h - k) // 2, (w - k) // 2  # Caffe's TEST crop: centred, rounded down
            x = x[:, :, top : top + k, left : left + k]
        if self.scale != 1.0:
            x = x * np.float32(self.scale)
        return np.ascontiguousarray(x, np.float32)


@dataclass(frozen=True)
class Deploy:
    """What every backend needs to run a job's deploy net, read once from the job directory."""

    job: Path
    prototxt: Path  # deploy.prototxt: every backend runs this very file
    net: caffe_pb2.NetParameter
    weights: Path  # the snapshot's .caffemodel
    input: str  # the Input blob the images go into
    input_shape: tuple[int, int, int]  # (C, H, W) the deploy net declares
    output: str  # the blob read back
    is_prob: bool  # output is a Softmax already; otherwise softmax is applied here
    class_names: tuple[str, ...]
    preprocess: Preprocess


def softmax_classes(out: np.ndarray, *, done: bool) -> np.ndarray:
    """(N, K, ...) blob → probabilities over axis 1 (Caffe's Softmax axis); (N, K, 1, 1) → (N, K)."""
    n, k = out.shape[:2]
    spatial = out.shape[2:]
    if all(d == 1 for d in spatial):
        out, spatial = out.reshape(n, k), ()
    if not done:
        z = np.exp(out - out.max(axis=1, keepdims=True))
        out = z / z.sum(axis=1, keepdims=True)
    return out.reshape(n, k, *spatial)


def read_deploy(job: Path, *, snapshot: int | None = None) -> Deploy:
    """Read what a predictor needs from a job directory (ARCHITECTURE.md §5, §6)."""
    # the job spec finds the TEST Data layer and the class names the way the engines do
    from upcall.job.spec import load_job

    job = Path(job).resolve()
    spec = load_job(job)
    data = spec.test_data or spec.train_data
    return read_deploy_net(
        job / "deploy.prototxt",
        job=job,
        weights=snapshot_weights(job, snapshot),
        class_names=tuple(spec.class_names),
        preprocess=Preprocess.from_param(data.transform_param, base=data.base),
    )


def read_deploy_net(
    path: Path,
    *,
    job: Path,
    weights: Path,
    class_names: tuple[str, ...],
    preprocess: Preprocess,
) -> Deploy:
    """The deploy net at ``path`` with its Input blob and shape and the output blob found,
    plus what the caller knows of the weights, classes and input transform."""
    net = read_net(path)
    layers = list(filter_net(net, phase=caffe_pb2.TEST).layer)
    inputs = deploy_inputs(layers, path)
    name, shape = next(iter(inputs.items()))
    output, is_prob = output_blob(layers, net_outputs(inputs, layers), path)
    return Deploy(
        job=job,
        prototxt=path,
        net=net,
        weights=weights,
        input=name,
        input_shape=shape,
        output=output,
        is_prob=is_prob,
        class_names=class_names,
        preprocess=preprocess,
    )


def deploy_inputs(
    layers: Sequence[caffe_pb2.LayerParameter], path: Path
) -> dict[str, tuple[int, int, int]]:
    """{blob: (C, H, W)} of the deploy net's Input layers (filter_net makes the legacy net-level
    ``input`` fields one), in file order."""
    found: dict[str, tuple[int, ...]] = {}
    for lay in layers:
        if lay.type == "Input":
            shapes = list(lay.input_param.shape)
            for i, top in enumerate(lay.top):
                found[top] = tuple(shapes[min(i, len(shapes) - 1)].dim) if shapes else ()
    if not found:
        raise UpcallError(f"{path}: no Input layer")
    for name, dims in found.items():
        if len(dims) != 4:
            raise UpcallError(f"{path}: input {name!r} has shape {list(dims)}, not N×C×H×W")
    return {name: tuple(int(d) for d in dims[1:]) for name, dims in found.items()}


def net_outputs(inputs: Iterable[str], layers: Sequence[caffe_pb2.LayerParameter]) -> list[str]:
    """Caffe's net outputs: blobs no later layer reads, in name order (a std::set in Caffe)."""
    available = set(inputs)
    for lay in layers:
        available.difference_update(lay.bottom)
        available.update(lay.top)
    return sorted(available)


def output_blob(
    layers: Sequence[caffe_pb2.LayerParameter], outputs: list[str], path: Path
) -> tuple[str, bool]:
    """(blob, is it probabilities) the predictor reads from the deploy net.

    DIGITS names the deploy Softmax "softmax", others "prob": find it by type, the last one in
    the TEST-phase net. A deploy net that ends in raw scores (a user's own) has one output, which
    gets the softmax here; with several outputs and no Softmax the choice would be a guess.
    """
    softmax = [lay for lay in layers if lay.type == "Softmax"]
    if softmax:
        return softmax[-1].top[0], True
    if len(outputs) == 1:
        return outputs[0], False
    raise UpcallError(
        f"{path}: no Softmax layer and {len(outputs)} outputs "
        f"({', '.join(outputs) or 'none'}); cannot tell which one holds the class scores"
    )


def snapshot_weights(job: Path, snapshot: int | None) -> Path:
    """The caffemodel of iteration ``snapshot``, or of the latest complete snapshot set (a set
    being written, or cut short by a crash, is passed over). A job holding weights alone (a
    download, an export) uses its latest caffemodel."""
    from upcall.job import snapshots as sets
    from upcall.job.spec import load_job

    models = sets.find(job, prefix=None)
    if not models:
        raise UpcallError(f"{job}: no *_iter_N.caffemodel snapshots (has it been trained?)")
    if snapshot is not None:
        if snapshot not in models:
            raise UpcallError(f"{job}: no snapshot at iteration {snapshot}; have {sorted(models)}")
        return models[snapshot]
    try:
        spec = load_job(job)
    except UpcallError:
        spec = None
    if spec is not None and sets.iterations(spec):
        latest = sets.latest_complete(spec, warn=True)
        if latest is None:
            raise UpcallError(f"{job}: no complete snapshot set (.caffemodel with .solverstate)")
        return spec.snapshot_path(latest, ".caffemodel")
    return models[max(models)]
