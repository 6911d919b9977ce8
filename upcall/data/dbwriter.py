"""Writing one LMDB of Caffe Datum from a DIGITS list, as DIGITS's create_db does.

Each chunk of a list is decoded, resized in one batch, encoded and summed for the mean on a
worker thread (``workers`` of them); meanwhile the main thread writes the LMDB in transactions of
1000 records, as Caffe's convert_imageset commits. ``upcall.data.dataset`` runs it per list.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

from upcall.data.datum import array_to_datum
from upcall.data.resize import load_image, resize_stack
from upcall.errors import BatchReport, UpcallError
from upcall.parallel import map_chunks
from upcall.proto import caffe_pb2

TXN_RECORDS = 1000  # records per LMDB transaction, as convert_imageset commits
_CHUNK = 64  # images per worker task: resized in one batch


@dataclass(frozen=True)
class Work:
    """What a worker needs to turn one list entry into a Datum (picklable)."""

    height: int
    width: int
    native: bool
    resize_mode: str
    encoding: str
    seed: int
    db: int  # index in upcall.data.dataset.DBS, so the noise differs between DBs
    keep_pixels: bool  # sum the images for the mean (train only)


def _native_png(path: Path, height: int, width: int) -> bytes | None:
    """The file's own bytes when it already is the 8-bit grey PNG we would write (saves an encode)."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        ok = im.format == "PNG" and im.mode == "L" and im.size == (width, height)
    return data if ok else None


def _load(work: Work, path: Path) -> np.ndarray:
    image = load_image(path, channels=1)
    if work.native and image.shape != (work.height, work.width):
        raise UpcallError(
            f"{path}: image is {image.shape[1]}x{image.shape[0]}, the dataset's "
            f"native size is {work.width}x{work.height}"
        )
    return image


def _resize_all(
    work: Work, images: dict[int, np.ndarray], items: Sequence[tuple[int, Path, int]]
) -> list[tuple[list[int], np.ndarray]]:
    """(positions in items, stack) per group of same-sized images, each resized in one batch
    (a native-size dataset keeps them as they are)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for pos, image in images.items():
        groups.setdefault(image.shape, []).append(pos)
    out = []
    for positions in groups.values():
        stack = np.stack([images[pos] for pos in positions])
        if not work.native:
            # One generator per image, keyed by its list index: noise independent of chunking.
            rngs = None
            if work.resize_mode in ("fill", "half_crop"):
                rngs = [np.random.default_rng((work.seed, work.db, items[p][0])) for p in positions]
            stack = resize_stack(
                stack, height=work.height, width=work.width, mode=work.resize_mode, rngs=rngs
            )
        out.append((positions, stack))
    return out


def _encode(work: Work, image: np.ndarray, path: Path, label: int) -> bytes:
    """Serialized Datum of one image; a native-size PNG source is stored as its own bytes."""
    reused = None
    if work.native and work.encoding == "png":
        reused = _native_png(path, work.height, work.width)
    if reused is None:
        return array_to_datum(image, label, encoding=work.encoding)
    datum = caffe_pb2.Datum(
        channels=1, height=work.height, width=work.width, label=label, data=reused, encoded=True
    )
    return datum.SerializeToString()


def _prepare_chunk(work: Work, items: Sequence[tuple[int, Path, int]]) -> list[tuple]:
    """(value, problem, pixel sum) per item; the chunk's pixel sum (for the mean) rides on its
    last result and the others carry None, so the images themselves never leave the worker."""
    results: list[tuple] = [(None, None, None)] * len(items)
    images = {}
    for pos, (_, path, _) in enumerate(items):
        try:
            images[pos] = _load(work, path)
        except (UpcallError, OSError) as e:
            results[pos] = (None, str(e).removeprefix(f"{path}: "), None)
    total = np.zeros((work.height, work.width), np.int64) if work.keep_pixels else None
    for positions, stack in _resize_all(work, images, items):
        done = []
        for i, pos in enumerate(positions):
            _, path, label = items[pos]
            try:
                results[pos] = (_encode(work, stack[i], path, label), None, None)
                done.append(i)
            except (UpcallError, OSError) as e:
                results[pos] = (None, str(e).removeprefix(f"{path}: "), None)
        if total is not None:
            kept = stack if len(done) == len(stack) else stack[done]
            # uint16 holds the sum of up to 257 images exactly, and sums far faster than int64.
            for i in range(0, len(kept), 256):
                total += kept[i : i + 256].sum(axis=0, dtype=np.uint16)
    if results and total is not None:
        results[-1] = (*results[-1][:2], total)
    return results


class _Writer:
    """Puts records in transactions of TXN_RECORDS, doubling the map when it is full (as Caffe does)."""

    def __init__(self, path: Path, expected_bytes: int) -> None:
        # No fsync per transaction: an unfinished build is thrown away whole (atomic_dir), so
        # durability matters only once, at close(), before the dataset gets its final name.
        self.env = lmdb.open(
            str(path), map_size=max(1 << 26, 2 * expected_bytes), meminit=False, sync=False
        )
        self.pending: list[tuple[bytes, bytes]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.pending.append((key, value))
        if len(self.pending) >= TXN_RECORDS:
            self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                with self.env.begin(write=True) as txn:
                    # One call for the whole batch: a put per record would hand the GIL to
                    # the worker threads and wait to get it back, a thousand times a commit.
                    txn.cursor().putmulti(self.pending)
                self.pending = []
            except lmdb.MapFullError:
                self.env.set_mapsize(2 * self.env.info()["map_size"])

    def close(self) -> None:
        self.flush()
        self.env.sync(True)
        self.env.close()


def record_order(seed: int, db: int, n: int) -> np.ndarray:
    """The list index of each record in key order (before bad images are left out): the
    shuffle ``upcall lmdb`` applies, so a report can name the clip behind a record."""
    return np.random.default_rng((seed, db)).permutation(n)


def write_db(
    items: list[tuple[Path, int]],
    db_path: Path,
    *,
    work: Work,
    workers: int | None,
    report: BatchReport,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Write one LMDB; returns the labels written (in key order) and the pixel sum if kept."""
    order = record_order(work.seed, work.db, len(items))
    jobs = [(int(i), *items[i]) for i in order]
    writer = _Writer(db_path, len(jobs) * (work.height * work.width + 64))
    labels, total = [], None
    try:
        results = map_chunks(
            functools.partial(_prepare_chunk, work),
            jobs,
            workers=workers,
            chunk=_CHUNK,
            desc=db_path.name,
            unit="img",
            # Threads: decoding, BLAS and zlib release the GIL, and 64 KB records need no pickling.
            threads=True,
            # Workers keep going while a transaction commits: a whole transaction's worth ahead.
            prefetch=TXN_RECORDS // _CHUNK + 4,
        )
        for (_, path, label), (value, problem, chunk_sum) in zip(jobs, results, strict=True):
            if chunk_sum is not None:
                total = chunk_sum if total is None else total + chunk_sum
            if problem is not None:
                report.fail(path, problem)
                continue
            writer.put(b"%08d_%d" % (len(labels), label), value)
            labels.append(label)
            report.ok()
    finally:
        writer.close()
    return np.array(labels, np.int64), total
