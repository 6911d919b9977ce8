"""One inference interface: a job's deploy net and a snapshot → class probabilities.

    uint8 images as the dataset stored them (N, C, H, W)
      → Preprocess: the job's validation transform (mean, centre crop, scale), numpy, once for
        every backend
      → Predictor.predict: deploy.prototxt with the snapshot's weights on float32 (N, C, h, w),
        run by a backend (torch, pycaffe; ONNX Runtime for a model from `upcall export`)
      → softmax probabilities (N, K)

This module is torch-free; a backend is imported only when asked for (:data:`BACKENDS`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from upcall.errors import UpcallError
from upcall.model.netstate import filter_net
from upcall.proto import caffe_pb2, read_text

BATCH = 64  # images per forward pass in a backend: bounded memory for any N

# name -> "module:class"; the class takes (Deploy, *, gpu) and implements Predictor._forward.
# ONNX Runtime is a Predictor too (upcall.engines.onnx.predict.OnnxPredictor) but not a name
# here: it runs a model exported from a job (`upcall export`), not the job's own files, so
# load_predictor picks it for a .onnx path and a job folder cannot choose it.
BACKENDS: dict[str, str] = {
    "torch": "upcall.engines.torch.predict:TorchPredictor",
    "caffe": "upcall.engines.caffe.predict:PycaffePredictor",
}


# Jobs that are not a Caffe net: config.json's network_source["kind"] -> "module:class" with a
# ``load(job)`` classmethod; the object classifies input files itself (the classical baseline
# computes its own features from the audio), so it has no deploy net, Preprocess or backend.
JOB_KINDS: dict[str, str] = {"classical": "upcall.classical.model:ClassicalModel"}


def job_kind(job: Path) -> str | None:
    """The :data:`JOB_KINDS` kind of ``job``, or None for a job with a deploy net."""
    from upcall.model.jobconfig import JobConfig

    config = JobConfig.read(Path(job))
    kind = config.network_source.get("kind") if config is not None else None
    return kind if kind in JOB_KINDS else None


def load_job_model(job: Path):
    """The model of a :data:`JOB_KINDS` job (see :func:`job_kind`), loaded from its folder."""
    kind = job_kind(job)
    if kind is None:
        raise UpcallError(f"{job}: a network job; load it with load_predictor")
    module_name, cls = JOB_KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), cls).load(Path(job))


def transform_mean(param: caffe_pb2.TransformationParameter, *, base: Path) -> np.ndarray | None:
    """The mean a transform_param subtracts: float32 (C, H, W) from its mean_file (relative to
    ``base``), (C, 1, 1) from its mean_values, or None. Training and inference both use this."""
    from upcall.data.datum import read_mean

    if param.HasField("mean_file") and len(param.mean_value):
        raise UpcallError(f"{base}: transform_param has both mean_file and mean_value")
    if param.HasField("mean_file"):
        return read_mean(base / param.mean_file).astype(np.float32)
    if len(param.mean_value):
        return np.asarray(param.mean_value, np.float32)[:, None, None]
    return None


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


class Sliding(Protocol):
    """A fully convolutional pass: the scores of windows ``width`` columns wide, every
    ``every · stride`` columns of a long stored image, from one pass of the network's
    convolutional trunk over the whole image (see :meth:`Predictor.sliding`)."""

    stride: int  # image columns between two positions the trunk can tell apart

    def probabilities(self, image: np.ndarray, *, every: int, count: int) -> np.ndarray:
        """uint8 (C, H, T) → float64 (count, K) for windows starting at columns
        0, every·stride, 2·every·stride, ..."""
        ...


class Predictor(ABC):
    """A job's deploy net with one snapshot's weights, run by one backend.

    A backend implements :meth:`_forward` only; preparing the input and turning the output blob
    into probabilities is done here, the same for every backend.
    """

    name: ClassVar[str]
    # Whether predict() takes inputs wider or taller than the deploy Input layer and returns
    # score maps (N, K, h', w'). None does: the deploy nets end in InnerProduct layers, which
    # need the training size. Detection's one-pass scoring of long images is sliding() instead.
    fully_convolutional: ClassVar[bool] = False

    def __init__(
        self, deploy: Deploy, *, gpu: int | None = None, threads: int | None = None
    ) -> None:
        self.deploy = deploy
        self.gpu = gpu
        # CPU threads the backend may use (None: every core); N processes sharing the cores
        # each take cores // N, or their thread pools oversubscribe the cores
        self.threads = threads

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.deploy.class_names

    @property
    def weights(self) -> Path:
        return self.deploy.weights

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W), as the dataset stored the images → float64 (N, K)."""
        return self.predict(self.deploy.preprocess.apply(images))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Network input float32 (N, C, h, w) → softmax probabilities float64 (N, K).

        (h, w) is the deploy Input layer's size. With ``fully_convolutional`` a larger (h, w)
        is allowed and the result is (N, K, h', w'): the class probabilities at every position.
        All N go to the backend in one call, which batches them itself (pycaffe starts one
        process per call).
        """
        x = np.ascontiguousarray(x, np.float32)
        c, h, w = self.deploy.input_shape
        if x.ndim != 4 or x.shape[1] != c:
            raise UpcallError(f"{self.deploy.prototxt}: takes (N, {c}, H, W) input, got {x.shape}")
        if (x.shape[2], x.shape[3]) != (h, w) and not self.fully_convolutional:
            raise UpcallError(
                f"{self.deploy.prototxt}: takes {w}x{h} input, got {x.shape[3]}x{x.shape[2]} "
                f"(the {self.name} backend has no fully-convolutional pass)"
            )
        k = len(self.class_names)
        if len(x) == 0:
            return np.empty((0, k))
        out = np.asarray(self._forward(x), np.float64)
        probs = _softmax_classes(out, done=self.deploy.is_prob)
        if probs.shape[1] != k:
            raise UpcallError(
                f"{self.deploy.prototxt}: blob {self.deploy.output!r} has {probs.shape[1]} "
                f"values per image, the job has {k} classes"
            )
        return probs

    @abstractmethod
    def _forward(self, x: np.ndarray) -> np.ndarray:
        """The deploy net's output blob (N, K, ...) for float32 input x (N, C, h, w)."""

    def sliding(self) -> Sliding | str:
        """The net's fully convolutional pass over images wider than its input, or why there
        is none (a backend that has one overrides this)."""
        return f"the {self.name} backend has no fully convolutional pass"


def _softmax_classes(out: np.ndarray, *, done: bool) -> np.ndarray:
    """(N, K, ...) blob → probabilities over axis 1 (Caffe's Softmax axis); (N, K, 1, 1) → (N, K)."""
    n, k = out.shape[:2]
    spatial = out.shape[2:]
    if all(d == 1 for d in spatial):
        out, spatial = out.reshape(n, k), ()
    if not done:
        z = np.exp(out - out.max(axis=1, keepdims=True))
        out = z / z.sum(axis=1, keepdims=True)
    return out.reshape(n, k, *spatial)


def load_predictor(
    job: Path,
    *,
    snapshot: int | None = None,
    backend: str = "torch",
    gpu: int | None = None,
    threads: int | None = None,
) -> Predictor:
    """The predictor for ``job``'s deploy.prototxt and snapshot (default: the latest).

    ``backend``: a name in :data:`BACKENDS`; ``gpu``: device index, or None for the CPU;
    ``threads``: CPU threads the backend may use (None: every core).
    A ``job`` ending in .onnx is a model from ``upcall export``, run by ONNX Runtime.
    """
    if is_exported(job):
        if snapshot is not None:
            raise UpcallError(f"{job}: an exported model holds one snapshot; leave out --snapshot")
        from upcall.engines.onnx.predict import load_onnx

        return load_onnx(Path(job), gpu=gpu, threads=threads)
    if backend not in BACKENDS:
        raise UpcallError(f"unknown backend {backend!r}; known: {', '.join(sorted(BACKENDS))}")
    if (kind := job_kind(job)) is not None:
        raise UpcallError(f"{job}: a {kind} job has no deploy net; use load_job_model")
    deploy = read_deploy(job, snapshot=snapshot)
    module_name, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module_name), cls)(deploy, gpu=gpu, threads=threads)


def is_exported(model: Path) -> bool:
    """Whether ``model`` is a .onnx file from ``upcall export`` (not a job folder)."""
    return Path(model).suffix.lower() == ".onnx"


def read_deploy(job: Path, *, snapshot: int | None = None) -> Deploy:
    """Read what a predictor needs from a job directory (ARCHITECTURE.md §5, §6)."""
    # jobspec finds the TEST Data layer and the class names the way the engines do
    from upcall.engines.jobspec import load_job

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
    net = read_text(path, caffe_pb2.NetParameter())
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
    from upcall.engines import snapshots as sets
    from upcall.engines.jobspec import load_job, snapshots

    models = snapshots(job, prefix=None)
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
