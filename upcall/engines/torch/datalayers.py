"""Feeders for Caffe's other data layers, alongside data.py's Feeder for Data (LMDB):
ImageData, HDF5Data and DummyData, each with Caffe 1.0's semantics.

Every feeder gives ``next_batch()`` (one tensor per top, in the layer's top order), ``shapes``
(top → shape), ``len()`` (records in one pass) and ``state()`` / ``load_state()`` for resuming.

- ImageData: a list of "PATH LABEL" lines; images read as Caffe's OpenCV reads them (is_color:
  3 channels in BGR order, else 1 gray channel), resized to new_height × new_width when both
  are set (bilinear with half-pixel centres, OpenCV's INTER_LINEAR geometry, no antialiasing),
  then transform_param as Data's. Read in list order, wrapping; ``shuffle`` reorders the list
  before each pass and ``rand_skip`` skips up to that many lines at the start, both drawn from
  the feeder's seeded generator (Caffe's own RNG stream cannot be reproduced).
- HDF5Data: each file of the list holds one dataset per top (float32); rows in file order,
  files in list order, wrapping; ``shuffle`` permutes the files before each pass and the rows
  of each file as it is reached. No transform (Caffe refuses one).
- DummyData: tops filled by data_filler (none: constant 0; one: for every top), once when every
  filler is constant, anew for each batch otherwise, as Caffe does.
"""

from __future__ import annotations

import numpy as np
import torch

from upcall.engines.torch.data import Feeder, Transform
from upcall.engines.torch.fillers import fill
from upcall.errors import UpcallError
from upcall.job import sources
from upcall.job.spec import DataSpec
from upcall.network.shapes import infer_shapes
from upcall.proto import caffe_pb2


def make_feeder(data: DataSpec, *, train: bool, seed: int, device: torch.device | str = "cpu"):
    """The feeder of one phase's data layer."""
    if data.kind == "Data":
        return Feeder(
            data.source,
            batch_size=data.batch_size,
            transform=Transform.of(data),
            train=train,
            seed=seed,
            device=device,
        )
    kinds = {"ImageData": ImageDataFeeder, "HDF5Data": HDF5Feeder, "DummyData": DummyFeeder}
    return kinds[data.kind](data, train=train, seed=seed, device=device)


def feed_shapes(data: DataSpec, feed) -> dict[str, tuple[int, ...]]:
    """Top → shape of a feeder (data.py's Feeder gives (data, label))."""
    if isinstance(feed, Feeder):
        return {data.tops[0]: feed.output_shape, data.tops[1]: (data.batch_size,)}
    return dict(feed.shapes)


def _bgr_or_gray(path, color: bool) -> np.ndarray:
    """An image as OpenCV's imread gives it: (H, W, 3) BGR, or (H, W) gray, uint8. A colour
    PNG read as gray goes through libpng's rgb_to_gray: (9797 R + 19234 G + 3737 B) >> 15."""
    from upcall.data.resize import load_image

    rgb = load_image(path, channels=3)
    if color:
        return np.ascontiguousarray(rgb[:, :, ::-1])
    r, g, b = (rgb[:, :, i].astype(np.int64) for i in range(3))
    gray = (9797 * r + 19234 * g + 3737 * b) >> 15
    return np.where((r == g) & (g == b), r, gray).astype(np.uint8)


def _coefficients(src: int, dst: int, *, clamp: bool) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR taps along one axis: first source index and the two weights in
    units of 1/2048 (float32 arithmetic, rounded half to even); ``clamp``: the x axis, whose
    border taps OpenCV pins to one pixel (rows are clamped when fetched instead)."""
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(f).astype(np.int64)
    f = (f - first.astype(np.float32)).astype(np.float32)
    if clamp:
        low, high = first < 0, first >= src - 1
        f[low | high] = 0
        first[low], first[high] = 0, src - 1
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int64)
    w1 = np.rint(f * np.float32(2048)).astype(np.int64)
    return first, np.stack([w0, w1])


def _resize(chw: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv::resize(INTER_LINEAR) of a uint8 image in OpenCV's fixed-point arithmetic: the
    horizontal pass in int (weights × 2048), the vertical one with the truncations of its
    vectorised row loop (what the Caffe root's OpenCV gives, tail included)."""
    h, w = chw.shape[1:]
    if (h, w) == (2 * height, 2 * width):  # OpenCV then averages 2×2 blocks (INTER_AREA)
        blocks = chw.astype(np.int64).reshape(-1, height, 2, width, 2).sum(axis=(2, 4))
        return ((blocks + 2) >> 2).astype(np.uint8)
    hwc = chw.transpose(1, 2, 0).astype(np.int64)
    xs, a = _coefficients(w, width, clamp=True)
    right = np.minimum(xs + 1, w - 1)
    rows = hwc[:, xs] * a[0][None, :, None] + hwc[:, right] * a[1][None, :, None]  # (h, W, c)
    ys, b = _coefficients(h, height, clamp=False)
    top, bottom = rows[np.clip(ys, 0, h - 1)], rows[np.clip(ys + 1, 0, h - 1)]
    b0, b1 = b[0][:, None, None], b[1][:, None, None]
    out = (((b0 * (top >> 4)) >> 16) + ((b1 * (bottom >> 4)) >> 16) + 2) >> 2
    return np.ascontiguousarray(out.clip(0, 255).astype(np.uint8).transpose(2, 0, 1))


class _Cursor:
    """A position in a pass over ``n`` records; ``order`` draws each pass's order."""

    def __init__(self, n: int, generator: torch.Generator, shuffle: bool):
        self.n, self.generator, self.shuffle = n, generator, shuffle
        self.order = self._new_order()
        self.pos = 0

    def _new_order(self) -> torch.Tensor:
        if self.shuffle:
            return torch.randperm(self.n, generator=self.generator)
        return torch.arange(self.n)

    def take(self, count: int) -> torch.Tensor:
        picked = []
        for _ in range(count):
            picked.append(self.order[self.pos])
            self.pos += 1
            if self.pos == self.n:
                self.pos, self.order = 0, self._new_order()
        return torch.stack(picked)

    def state(self) -> dict:
        return {"pos": self.pos, "order": self.order.clone()}

    def load_state(self, state: dict) -> None:
        self.pos, self.order = int(state["pos"]), state["order"].clone()


class ImageDataFeeder:
    def __init__(self, data: DataSpec, *, train: bool, seed: int, device="cpu"):
        p = data.layer.image_data_param
        records = sources.image_list(data.layer, data.base)
        if bool(p.new_height) != bool(p.new_width):
            raise UpcallError(f"{data.source}: set both new_height and new_width, or neither")
        images = []
        for path, _ in records:
            image = _bgr_or_gray(path, p.is_color)
            chw = image.transpose(2, 0, 1) if image.ndim == 3 else image[None]
            if p.new_height:
                chw = _resize(chw, p.new_height, p.new_width)
            if images and chw.shape != images[0].shape:
                raise UpcallError(
                    f"{path}: {chw.shape[1]}×{chw.shape[2]}, but {records[0][0]} is "
                    f"{images[0].shape[1]}×{images[0].shape[2]}: set new_height and new_width"
                )
            images.append(chw)
        self.transform = Transform.from_param(data.transform_param, base=data.base)
        self.transform.check(tuple(images[0].shape), source=data.source)
        self.device = torch.device(device)
        self.images = torch.from_numpy(np.stack(images)).to(self.device)
        self.labels = torch.tensor([label for _, label in records], dtype=torch.int64)
        self.batch_size, self.train, self.tops = data.batch_size, train, data.tops
        self.generator = torch.Generator().manual_seed(seed)
        self.reading = _Cursor(len(records), self.generator, p.shuffle)
        if p.rand_skip:  # Caffe: skip rand() % rand_skip lines once, at the start
            skip = int(torch.randint(0, p.rand_skip, (1,), generator=self.generator))
            self.reading.pos = skip % len(records)
        chw = self.transform.output_shape(tuple(images[0].shape))
        self.shapes = {self.tops[0]: (self.batch_size, *chw), self.tops[1]: (self.batch_size,)}

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def cursor(self) -> int:
        """The position in the pass (the engine sets 0 to score from the first record)."""
        return self.reading.pos

    @cursor.setter
    def cursor(self, pos: int) -> None:
        self.reading.pos = pos

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.reading.take(self.batch_size)
        batch = self.images[idx.to(self.device)]
        data = self.transform.apply(batch, train=self.train, generator=self.generator)
        return data, self.labels[idx].to(self.device)

    def state(self) -> dict:
        return {"cursor": self.reading.state(), "generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.reading.load_state(state["cursor"])
        self.generator.set_state(state["generator"])


class HDF5Feeder:
    def __init__(self, data: DataSpec, *, train: bool, seed: int, device="cpu"):
        files = sources.hdf5_files(data.layer, data.base)
        self.tops, self.batch_size = data.tops, data.batch_size
        self.device = torch.device(device)
        self.files = [sources.load_hdf5(path, self.tops) for path in files]
        for path, arrays in zip(files[1:], self.files[1:], strict=True):
            for top in self.tops:
                if arrays[top].shape[1:] != self.files[0][top].shape[1:]:
                    raise UpcallError(
                        f"{path}: dataset {top!r} has rows of shape {arrays[top].shape[1:]}, "
                        f"{files[0]} of {self.files[0][top].shape[1:]}"
                    )
        self.shuffle = data.layer.hdf5_data_param.shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.file_cursor = _Cursor(len(self.files), self.generator, self.shuffle)
        self._open(int(self.file_cursor.take(1)))
        self.shapes = {t: (self.batch_size, *self.files[0][t].shape[1:]) for t in self.tops}

    def _open(self, index: int) -> None:
        self.current = index
        rows = len(self.files[index][self.tops[0]])
        self.rows = _Cursor(rows, self.generator, self.shuffle)

    def __len__(self) -> int:
        return sum(len(f[self.tops[0]]) for f in self.files)

    @property
    def cursor(self) -> tuple[int, int]:
        return self.current, self.rows.pos

    @cursor.setter
    def cursor(self, pos: int) -> None:
        """0: back to the first row of the pass's first file (the engine scores from there)."""
        if pos != 0:
            raise ValueError("an HDF5Data feeder rewinds to 0 only")
        self.file_cursor.pos = 0
        self._open(int(self.file_cursor.take(1)))

    def next_batch(self) -> tuple[torch.Tensor, ...]:
        parts: dict[str, list[np.ndarray]] = {t: [] for t in self.tops}
        for _ in range(self.batch_size):
            row = int(self.rows.order[self.rows.pos])
            for t in self.tops:
                parts[t].append(self.files[self.current][t][row])
            self.rows.pos += 1
            if self.rows.pos == self.rows.n:  # Caffe moves on to the next file
                self._open(int(self.file_cursor.take(1)) if len(self.files) > 1 else self.current)
        return tuple(torch.from_numpy(np.stack(parts[t])).to(self.device) for t in self.tops)

    def state(self) -> dict:
        return {
            "file": self.current,
            "files": self.file_cursor.state(),
            "rows": self.rows.state(),
            "generator": self.generator.get_state(),
        }

    def load_state(self, state: dict) -> None:
        self._open(int(state["file"]))
        self.file_cursor.load_state(state["files"])
        self.rows.load_state(state["rows"])
        self.generator.set_state(state["generator"])


class DummyFeeder:
    def __init__(self, data: DataSpec, *, train: bool, seed: int, device="cpu"):
        layer = data.layer
        net = caffe_pb2.NetParameter()
        net.layer.append(layer)
        self.tops, self.batch_size = data.tops, data.batch_size
        self.shapes = {t: infer_shapes(net, {})[t] for t in self.tops}
        fillers = list(layer.dummy_data_param.data_filler) or [caffe_pb2.FillerParameter()]
        if len(fillers) not in (1, len(self.tops)):
            raise UpcallError(
                f"layer '{layer.name}': {len(fillers)} data_filler for {len(self.tops)} tops"
            )
        self.fillers = fillers * len(self.tops) if len(fillers) == 1 else fillers
        self.refill = any(f.type != "constant" for f in self.fillers)
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.name = layer.name
        self.batch = None if self.refill else self._fill()  # Caffe fills constants once

    def _fill(self) -> tuple[torch.Tensor, ...]:
        return tuple(
            fill(self.shapes[t], f, generator=self.generator, where=f"layer '{self.name}' {t}").to(
                self.device
            )
            for t, f in zip(self.tops, self.fillers, strict=True)
        )

    def __len__(self) -> int:
        return self.batch_size

    cursor = 0  # one batch, repeated: nothing to rewind

    def next_batch(self) -> tuple[torch.Tensor, ...]:
        if self.refill:
            self.batch = self._fill()
        return self.batch

    def state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
