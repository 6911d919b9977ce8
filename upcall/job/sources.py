"""What Caffe's file-reading data layers read, torch-free: ImageData's list of "PATH LABEL"
lines, HDF5Data's list of .h5 files (one dataset per top), and how many records each holds.

Paths resolve as Caffe resolves them when it runs in the job directory (``base``): ImageData
prefixes each listed path with ``root_folder`` as a string; HDF5Data's list holds one path per
whitespace-separated word.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from upcall.errors import UpcallError
from upcall.proto import caffe_pb2

# the data layers whose records the engines count and feed (Input comes from the caller)
DATA_LAYER_TYPES = ("Data", "ImageData", "HDF5Data", "DummyData")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UpcallError(f"{path}: cannot be read: {e}") from e


def image_list(layer: caffe_pb2.LayerParameter, base: Path) -> list[tuple[Path, int]]:
    """ImageData's records: (image path, label), in file order. Caffe splits each line at its
    last space: the path before it (spaces allowed), an integer label after it."""
    p = layer.image_data_param
    path = base / p.source
    records = []
    for row, line in enumerate(_read(path).splitlines(), start=1):
        name, space, label = line.rstrip("\r").rpartition(" ")
        if not space or not name:
            raise UpcallError(f"{path}:{row}: expected 'PATH LABEL', got {line!r}")
        try:
            records.append((base / (p.root_folder + name), int(label)))
        except ValueError:
            raise UpcallError(f"{path}:{row}: label {label!r} is not an integer") from None
    if not records:
        raise UpcallError(f"{path}: lists no images (layer {layer.name!r})")
    return records


def hdf5_files(layer: caffe_pb2.LayerParameter, base: Path) -> list[Path]:
    """HDF5Data's files, in list order."""
    path = base / layer.hdf5_data_param.source
    files = [base / word for word in _read(path).split()]
    if not files:
        raise UpcallError(f"{path}: lists no HDF5 files (layer {layer.name!r})")
    return files


def load_hdf5(path: Path, tops: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The datasets named ``tops`` of one HDF5 file as float32 (Caffe reads them as float);
    each needs at least one axis, and all the same number of rows."""
    import h5py  # only HDF5Data needs it

    try:
        with h5py.File(path, "r") as f:
            missing = [t for t in tops if t not in f]
            if missing:
                raise UpcallError(f"{path}: has no dataset {missing[0]!r} (a top of HDF5Data)")
            arrays = {t: np.asarray(f[t], dtype=np.float32) for t in tops}
    except OSError as e:
        raise UpcallError(f"{path}: cannot be read as HDF5: {e}") from e
    rows = {a.shape[0] if a.ndim else 0 for a in arrays.values()}
    if len(rows) != 1 or 0 in rows:
        shapes = {t: a.shape for t, a in arrays.items()}
        raise UpcallError(f"{path}: datasets {shapes} need the same number of rows (at least 1)")
    return arrays


def hdf5_rows(path: Path, top: str) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if top not in f:
                raise UpcallError(f"{path}: has no dataset {top!r} (a top of HDF5Data)")
            return int(f[top].shape[0]) if f[top].shape else 0
    except OSError as e:
        raise UpcallError(f"{path}: cannot be read as HDF5: {e}") from e


def record_count(layer: caffe_pb2.LayerParameter, base: Path) -> int:
    """How many records a data layer holds (DummyData: one batch, as it repeats)."""
    if layer.type == "Data":
        from upcall.data.datum import open_db  # lmdb; only a run needs it

        with open_db(base / layer.data_param.source) as env:
            return int(env.stat()["entries"])
    if layer.type == "ImageData":
        return len(image_list(layer, base))
    if layer.type == "HDF5Data":
        return sum(hdf5_rows(f, layer.top[0]) for f in hdf5_files(layer, base))
    if layer.type == "DummyData":
        return dummy_batch(layer)
    raise UpcallError(f"layer {layer.name!r} ({layer.type}) is not a data layer")


def batch_size(layer: caffe_pb2.LayerParameter) -> int:
    """The records per batch a data layer gives."""
    sizes = {
        "Data": lambda: layer.data_param.batch_size,
        "ImageData": lambda: layer.image_data_param.batch_size,
        "HDF5Data": lambda: layer.hdf5_data_param.batch_size,
        "DummyData": lambda: dummy_batch(layer),
    }
    return int(sizes[layer.type]())


def dummy_batch(layer: caffe_pb2.LayerParameter) -> int:
    p = layer.dummy_data_param
    return int(p.shape[0].dim[0] if p.shape and p.shape[0].dim else (p.num or [0])[0])
