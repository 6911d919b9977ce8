"""The DIGITS image-classification dataset: train/val/test LMDBs of Caffe Datum, mean and labels.

Like DIGITS's create_db, each list is shuffled (seeded here), every image is converted to one
channel, resized with the chosen DIGITS resize mode and stored under the key
``%08d_%d`` (running index, label); the mean of the training images, rounded as DIGITS rounds
it, goes to mean.binaryproto and mean.png. Each chunk of a list is decoded, resized in one
batch, encoded and summed for the mean on a worker thread (``workers`` of them); meanwhile the
main thread writes the LMDB in transactions of 1000 records, as Caffe's convert_imageset commits.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

from upcall.data.datum import ENCODINGS, array_to_datum, write_mean
from upcall.data.lists import read_labels
from upcall.data.resize import RESIZE_MODES, load_image, resize_stack
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_dir, atomic_path, atomic_write_text, read_json
from upcall.parallel import map_chunks
from upcall.proto import caffe_pb2

HELP = "build the DIGITS dataset (Caffe LMDBs, mean.binaryproto, labels) from train/val/test lists"

DBS = ("train", "val", "test")  # list LISTS/<name>.txt -> DATASET/<name>_db
TXN_RECORDS = 1000  # records per LMDB transaction, as convert_imageset commits
_CHUNK = 64  # images per worker task: resized in one batch
_LINE = re.compile(r"(.+?)\s+(\d+)\s*$")  # DIGITS's "path label" (paths may contain spaces)


@dataclass(frozen=True)
class DatasetSettings:
    size: tuple[int, int] | None = (256, 256)  # (height, width); None keeps each list's native size
    resize_mode: str = "squash"
    encoding: str = "png"
    seed: int = 0  # shuffles the lists and draws the fill/half_crop noise
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise UpcallError(f"--resize-mode must be one of {', '.join(RESIZE_MODES)}")
        if self.encoding not in ENCODINGS:
            raise UpcallError(f"--encoding must be one of {', '.join(ENCODINGS)}")
        if self.seed < 0:
            raise UpcallError(f"--seed must be zero or positive, got {self.seed}")


def parse_size(text: str) -> tuple[int, int] | None:
    """``"WIDTHxHEIGHT"`` (DIGITS's order, e.g. ``"256x256"``) → (height, width); ``"native"`` → None."""
    if text == "native":
        return None
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m or min(int(m.group(1)), int(m.group(2))) < 1:
        raise UpcallError(f"--size must be WIDTHxHEIGHT (e.g. 256x256) or native, not {text!r}")
    return int(m.group(2)), int(m.group(1))


def read_list(path: Path, *, n_labels: int) -> list[tuple[Path, int]]:
    """Parse a DIGITS list; relative image paths resolve against the list's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UpcallError(f"{path}: cannot read the list: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise UpcallError(f"{path}: not UTF-8 text (byte {e.start})") from e
    items = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise UpcallError(f"{path}:{line_no}: expected 'PATH LABEL', got {line!r}")
        label = int(m.group(2))
        if label >= n_labels:
            raise UpcallError(
                f"{path}:{line_no}: label {label} has no line in labels.txt ({n_labels} labels)"
            )
        items.append((path.parent / m.group(1), label))
    if not items:
        raise UpcallError(f"{path}: lists no images")
    return items


@dataclass(frozen=True)
class _Work:
    """What a worker needs to turn one list entry into a Datum (picklable)."""

    height: int
    width: int
    native: bool
    resize_mode: str
    encoding: str
    seed: int
    db: int  # index in DBS, so the noise differs between DBs
    keep_pixels: bool  # sum the images for the mean (train only)


def _native_png(path: Path, height: int, width: int) -> bytes | None:
    """The file's own bytes when it already is the 8-bit grey PNG we would write (saves an encode)."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        ok = im.format == "PNG" and im.mode == "L" and im.size == (width, height)
    return data if ok else None


def _load(work: _Work, path: Path) -> np.ndarray:
    image = load_image(path, channels=1)
    if work.native and image.shape != (work.height, work.width):
        raise UpcallError(
            f"{path}: image is {image.shape[1]}x{image.shape[0]}, the dataset's "
            f"native size is {work.width}x{work.height}"
        )
    return image


def _resize_all(
    work: _Work, images: dict[int, np.ndarray], items: Sequence[tuple[int, Path, int]]
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


def _encode(work: _Work, image: np.ndarray, path: Path, label: int) -> bytes:
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


def _prepare_chunk(work: _Work, items: Sequence[tuple[int, Path, int]]) -> list[tuple]:
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


def _write_db(
    items: list[tuple[Path, int]],
    db_path: Path,
    *,
    work: _Work,
    workers: int | None,
    report: BatchReport,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Write one LMDB; returns the labels written (in key order) and the pixel sum if kept."""
    order = np.random.default_rng((work.seed, work.db)).permutation(len(items))
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


def _counts(labels: np.ndarray, names: list[str]) -> dict[str, int]:
    return {name: int(np.sum(labels == i)) for i, name in enumerate(names)}


def _native_size(list_path: Path, items: list[tuple[Path, int]]) -> tuple[int, int]:
    """The size of the first training image that reads; the unreadable ones before it are
    skipped here and reported by the build like any other bad image."""
    first_problem = None
    for path, _ in items:
        try:
            h, w = load_image(path, channels=1).shape
            return h, w
        except (UpcallError, OSError) as e:
            first_problem = first_problem or str(e)
    raise UpcallError(
        f"{list_path}: none of its {len(items)} images can be read for --size native "
        f"(first: {first_problem})"
    )


def build_dataset(
    lists_dir: str | Path, *, out: str | Path, settings: DatasetSettings = DatasetSettings()
) -> dict:
    """Build DATASET from LISTS (see ARCHITECTURE.md §4); returns the content of dataset.json.

    Images that cannot be read are reported one per line and skipped; the dataset is still
    written, then :class:`~upcall.errors.BatchFailed` is raised.
    """
    lists_dir, out = Path(lists_dir).resolve(), Path(out).resolve()
    if (
        out.exists()
        and (not out.is_dir() or any(out.iterdir()))
        and not (out / "dataset.json").is_file()
    ):
        raise UpcallError(f"{out}: exists and is not an upcall dataset; refusing to replace it")
    label_names = read_labels(lists_dir / "labels.txt")
    lists = {
        name: read_list(lists_dir / f"{name}.txt", n_labels=len(label_names))
        for name in DBS
        if name != "test" or (lists_dir / "test.txt").is_file()
    }
    lists_info = read_json(lists_dir / "lists.json") or {}
    height, width = settings.size or _native_size(lists_dir / "train.txt", lists["train"])
    report = BatchReport("images")
    info: dict = {
        "image": {"height": height, "width": width, "channels": 1},
        "size": "native" if settings.size is None else f"{width}x{height}",
        "resize_mode": settings.resize_mode if settings.size else "none",
        "encoding": settings.encoding,
        "seed": settings.seed,
        "counts": {},
        "test_images": 0,
        "labels": label_names,
        "spectrograms": lists_info.get("spectrograms"),
        "lists": lists_info,
        "lists_dir": str(lists_dir),
    }
    with atomic_dir(out) as tmp:
        for db, items in lists.items():
            work = _Work(
                height,
                width,
                settings.size is None,
                settings.resize_mode,
                settings.encoding,
                settings.seed,
                DBS.index(db),
                keep_pixels=db == "train",
            )
            labels, total = _write_db(
                items, tmp / f"{db}_db", work=work, workers=settings.workers, report=report
            )
            if db == "test":
                info["test_images"] = len(labels)
            else:
                info["counts"][db] = _counts(labels, label_names)
            if total is not None and len(labels):
                _write_mean(tmp, total, len(labels))
        shutil.copyfile(lists_dir / "labels.txt", tmp / "labels.txt")
        info["settings"] = asdict(settings)
        atomic_write_text(tmp / "dataset.json", json.dumps(info, indent=2, default=str) + "\n")
    report.finish()
    return info


def _write_mean(folder: Path, total: np.ndarray, count: int) -> None:
    # DIGITS: np.around(sum / count) as uint8, stored as floats (CHW; one channel here).
    mean = np.around(total / count).astype(np.uint8)
    write_mean(folder / "mean.binaryproto", mean.astype(np.float32))
    with atomic_path(folder / "mean.png") as tmp:
        Image.fromarray(mean).save(tmp, format="PNG")


def configure(parser: argparse.ArgumentParser) -> None:
    d = DatasetSettings()
    parser.add_argument("lists_dir", type=Path, help="folder with train.txt, val.txt, labels.txt")
    parser.add_argument("--out", type=Path, required=True, help="the dataset folder to write")
    parser.add_argument(
        "--size",
        default="256x256",
        help="WIDTHxHEIGHT to resize to, or native (default 256x256, as the tutorial)",
    )
    parser.add_argument(
        "--resize-mode",
        choices=RESIZE_MODES,
        default=d.resize_mode,
        help="DIGITS's: squash (stretch; the tutorial's), crop (cover, centre-crop), fill (fit, "
        "pad with noise), half_crop (halfway: crop some, pad the rest)",
    )
    parser.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default=d.encoding,
        help="png: lossless PNG inside each Datum (DIGITS's default); none: raw bytes",
    )
    parser.add_argument(
        "--seed", type=int, default=d.seed, help="seed of the shuffle and fill noise"
    )
    parser.add_argument("--workers", type=int, help="worker threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    settings = DatasetSettings(
        size=parse_size(args.size),
        resize_mode=args.resize_mode,
        encoding=args.encoding,
        seed=args.seed,
        workers=args.workers,
    )
    info = build_dataset(args.lists_dir, out=args.out, settings=settings)
    image = info["image"]
    print(
        f"{args.out}: {image['width']}x{image['height']} grey, {info['encoding']} encoding, "
        f"resize {info['resize_mode']}"
    )
    for db, per_class in info["counts"].items():
        print(f"  {db}_db: " + ", ".join(f"{n} {name}" for name, n in per_class.items()))
    if info["test_images"]:
        print(f"  test_db: {info['test_images']} images")
    return 0
