"""Models made elsewhere: a DIGITS download and a folder of deploy.prototxt + caffemodel.

DIGITS's ``/models/<id>/download`` (.tar.gz by default; .tgz, .tar, .tar.bz2, .zip) holds, at
its top level, deploy.prototxt, train_val.prototxt, solver.prototxt, original.prototxt,
labels.txt, mean.binaryproto, one snapshot_iter_N.caffemodel and info.json. An archive is
checked before anything is written (plain files and folders only, no member outside the folder
it unpacks to) and unpacked to a temporary folder that lives as long as the model.

What runs: deploy.prototxt with the caffemodel (``snapshot_iter_N`` names, the latest or
``--snapshot N``; else the only .caffemodel). The transform is train_val.prototxt's TEST Data
layer's (its mean_file is the mean.binaryproto beside it); without train_val.prototxt, the mean
image is subtracted, Caffe's centre crop takes the deploy net's input size from it, and the
scale is Caffe's default, 1. Inputs
are the whale tutorial's spectrograms (DIGITS users made theirs so), resized to the size of the
mean image, else info.json's "image dimensions", with info.json's "image resize mode".
"""

from __future__ import annotations

import stat
import tarfile
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np

from upcall.data.datum import read_mean
from upcall.data.listsfolder import read_labels
from upcall.data.resize import RESIZE_MODES
from upcall.errors import UpcallError
from upcall.fsutil import read_json
from upcall.inference.inputs import InputSpec
from upcall.inference.model import NetModel
from upcall.job import snapshots
from upcall.job.deploy import Deploy, Preprocess, read_deploy_net
from upcall.network.phase import filter_net
from upcall.network.upgrade import read_net
from upcall.proto import caffe_pb2

ARCHIVES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".zip")
MODE = "tutorial"  # the spectrograms of the whale tutorial, which DIGITS users followed


def open_archive(archive: Path, *, snapshot: int | None = None, **run) -> NetModel:
    """A DIGITS download, unpacked to a temporary folder kept with the model."""
    archive = Path(archive)
    tmp = tempfile.TemporaryDirectory(prefix="upcall-model-")
    try:
        folder = unpack(archive, Path(tmp.name))
        try:
            return open_folder(folder, snapshot=snapshot, source=archive, keep=tmp, **run)
        except UpcallError as e:  # name the archive, not the temporary folder
            raise UpcallError(str(e).replace(str(folder), str(archive))) from None
    except BaseException:
        tmp.cleanup()
        raise


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest`` after checking every member; the folder holding
    deploy.prototxt (``dest``, or its one subfolder)."""
    if archive.name.lower().endswith(".zip"):
        _unzip(archive, dest)
    else:
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for m in members:
                    _check_name(archive, m.name)
                    if not (m.isfile() or m.isdir()):
                        raise UpcallError(
                            f"{archive}: member {m.name!r} is a link or special file; a model "
                            "download holds plain files only"
                        )
                tar.extractall(dest, members=members, filter="data")
        except tarfile.ReadError:
            raise UpcallError(f"{archive}: not a tar archive (plain, gzip, bzip2 or xz)") from None
        except (tarfile.TarError, EOFError, OSError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UpcallError(f"{archive}: not a readable tar archive ({why})") from None
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        dest = entries[0]  # an archive of one folder
    if not (dest / "deploy.prototxt").is_file():
        raise UpcallError(f"{archive}: no deploy.prototxt in it (is it a DIGITS model download?)")
    return dest


def _unzip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                _check_name(archive, info.filename)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UpcallError(
                        f"{archive}: member {info.filename!r} is a link; a model download "
                        "holds plain files only"
                    )
            z.extractall(dest)
    except (zipfile.BadZipFile, OSError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UpcallError(f"{archive}: not a readable zip archive ({why})") from None


def _check_name(archive: Path, name: str) -> None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise UpcallError(
            f"{archive}: member {name!r} would be written outside the folder it is unpacked to"
        )


def open_folder(
    folder: Path,
    *,
    snapshot: int | None = None,
    source: Path | None = None,
    keep: object = None,
    **run,
) -> NetModel:
    """deploy.prototxt, a caffemodel, labels.txt and optionally mean.binaryproto,
    train_val.prototxt and info.json (DIGITS's) in ``folder``; see the module doc."""
    folder = Path(folder).resolve()
    if not (folder / "labels.txt").is_file():
        raise UpcallError(f"{folder}: no labels.txt (one class name a line) beside deploy.prototxt")
    labels = tuple(read_labels(folder / "labels.txt"))
    mean_path = folder / "mean.binaryproto"
    mean = read_mean(mean_path) if mean_path.is_file() else None
    deploy = read_deploy_net(
        folder / "deploy.prototxt",
        job=folder,
        weights=caffemodel(folder, snapshot),
        class_names=labels,
        preprocess=Preprocess(mean=None, crop_size=0, scale=1.0),
    )
    deploy = replace(deploy, preprocess=transform(folder, mean, deploy))
    check_classes(deploy)
    info = _info(folder)
    kind = "digits" if source is not None or info else "caffe-folder"
    return NetModel(source or folder, kind, deploy, input_spec(folder, deploy, mean, info),
                    keep=keep, **run)  # fmt: skip


def caffemodel(folder: Path, snapshot: int | None) -> Path:
    """The weights: ``*_iter_N.caffemodel`` of iteration ``snapshot`` (default: the latest),
    else the folder's one .caffemodel."""
    found = snapshots.find(folder, prefix=None)
    if snapshot is not None:
        if snapshot not in found:
            raise UpcallError(f"{folder}: no snapshot at iteration {snapshot}; have {sorted(found)}")
        return found[snapshot]
    if found:
        return found[max(found)]
    models = sorted(folder.glob("*.caffemodel"))
    if not models:
        raise UpcallError(f"{folder}: no .caffemodel beside deploy.prototxt")
    if len(models) > 1:
        names = ", ".join(m.name for m in models)
        raise UpcallError(
            f"{folder}: {len(models)} .caffemodel files ({names}); keep one, or name them "
            "NAME_iter_N.caffemodel and choose with --snapshot N"
        )
    return models[0]


def transform(folder: Path, mean: np.ndarray | None, deploy: Deploy) -> Preprocess:
    """train_val.prototxt's TEST transform, with the mean.binaryproto beside it; else the mean
    image and the centre crop that makes it the deploy net's input size."""
    train_val = folder / "train_val.prototxt"
    param = _test_transform(train_val) if train_val.is_file() else None
    if param is not None:
        if param.HasField("mean_file"):
            if mean is None:
                raise UpcallError(f"{train_val}: subtracts a mean_file; no mean.binaryproto beside it")
            m = mean
        elif len(param.mean_value):
            m = np.asarray(param.mean_value, np.float32)[:, None, None]
        else:
            m = None
        return Preprocess(mean=m, crop_size=int(param.crop_size), scale=float(param.scale))
    _, h, w = deploy.input_shape
    if mean is None or mean.shape[1:] == (h, w):
        return Preprocess(mean=mean, crop_size=0, scale=1.0)
    if h != w or h > min(mean.shape[1:]):  # Caffe's crop is square
        raise UpcallError(
            f"{folder / 'mean.binaryproto'}: the mean image is {mean.shape[2]}x{mean.shape[1]} "
            f"and the deploy net takes {w}x{h}, which no centre crop of it gives"
        )
    return Preprocess(mean=mean, crop_size=h, scale=1.0)


def _test_transform(path: Path) -> caffe_pb2.TransformationParameter | None:
    net = filter_net(read_net(path), phase=caffe_pb2.TEST)
    for layer in net.layer:
        if layer.type in ("Data", "ImageData") and layer.HasField("transform_param"):
            return layer.transform_param
    return None


def check_classes(deploy: Deploy) -> None:
    """labels.txt names as many classes as the layer before the Softmax has outputs."""
    layers = filter_net(deploy.net, phase=caffe_pb2.TEST).layer
    softmax = [lay for lay in layers if lay.type == "Softmax"]
    if not softmax:
        return  # a net ending in raw scores: the count is checked on the first prediction
    before = [lay for lay in layers if softmax[-1].bottom[0] in lay.top and lay is not softmax[-1]]
    if not before or before[-1].type not in ("InnerProduct", "Convolution"):
        return
    last = before[-1]
    param = last.inner_product_param if last.type == "InnerProduct" else last.convolution_param
    k = int(param.num_output)
    if k and k != len(deploy.class_names):
        raise UpcallError(
            f"{deploy.job / 'labels.txt'}: {len(deploy.class_names)} class names, and the deploy "
            f"net's {last.name!r} gives {k} classes"
        )


def _info(folder: Path) -> dict:
    path = folder / "info.json"
    return (read_json(path) or {}) if path.is_file() else {}


def input_spec(folder: Path, deploy: Deploy, mean: np.ndarray | None, info: dict) -> InputSpec:
    """The whale tutorial's spectrograms at the stored size: the mean image's, else info.json's
    "image dimensions" [H, W, C], else the deploy net's input (with no crop)."""
    dims = info.get("image dimensions")
    if mean is not None and mean.shape[1:] != (1, 1):
        height, width = mean.shape[1:]
    elif isinstance(dims, list) and len(dims) >= 2 and all(isinstance(d, int) for d in dims[:2]):
        height, width = dims[:2]
    elif not deploy.preprocess.crop_size:
        height, width = deploy.input_shape[1:]
    else:
        raise UpcallError(
            f"{folder}: the images are cropped, and neither mean.binaryproto nor info.json says "
            "their size"
        )
    mode = info.get("image resize mode")
    return InputSpec(
        height=int(height),
        width=int(width),
        native=False,
        resize_mode=mode if mode in RESIZE_MODES else "squash",
        spectrogram_mode=MODE,
        seed=0,
    )
