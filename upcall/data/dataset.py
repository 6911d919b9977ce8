"""The DIGITS image-classification dataset: train/val/test LMDBs of Caffe Datum, mean and labels.

Like DIGITS's create_db, each list is shuffled (seeded here), every image is converted to one
channel, resized with the chosen DIGITS resize mode and stored under the key
``%08d_%d`` (running index, label) by ``upcall.data.dbwriter``; the mean of the training
images, rounded as DIGITS rounds it, goes to mean.binaryproto and mean.png, and dataset.json
(:class:`DatasetManifest`) describes the whole.
"""

from __future__ import annotations

import argparse
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from upcall.data.datum import ENCODINGS, write_mean
from upcall.data.dbwriter import Work, write_db
from upcall.data.lists import ListsManifest, class_counts, read_labels
from upcall.data.render import SpectrogramSettings
from upcall.data.resize import RESIZE_MODES, load_image
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_dir, atomic_path
from upcall.jsonfile import JsonFile

HELP = "build the DIGITS dataset (Caffe LMDBs, mean.binaryproto, labels) from train/val/test lists"

DBS = ("train", "val", "test")  # list LISTS/<name>.txt -> DATASET/<name>_db
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


@dataclass(frozen=True)
class ImageShape:
    height: int
    width: int
    channels: int = 1


@dataclass(frozen=True)
class DatasetManifest(JsonFile):
    """DATASET/dataset.json (ARCHITECTURE.md §4), written last with the LMDBs it describes.

    Fields after ``size`` have defaults, so hand-made dataset folders (tests, benchmarks) need
    only the image shape and size.
    """

    FILE = "dataset.json"

    image: ImageShape
    size: str  # "WIDTHxHEIGHT" (DIGITS's order) or "native"
    resize_mode: str = "squash"  # "none" for a native-size dataset
    encoding: str = "png"
    seed: int = 0
    # "train" / "val" → class name → images; a hand-made file may hold a total per list.
    counts: dict[str, dict[str, int] | int] = field(default_factory=dict)
    test_images: int = 0
    labels: tuple[str, ...] = ()  # empty: read labels.txt
    spectrograms: SpectrogramSettings | None = None  # None: lists made without upcall
    lists: ListsManifest | None = None
    lists_dir: str | None = None
    settings: DatasetSettings | None = None  # the build's settings (``workers`` included)

    @property
    def native(self) -> bool:
        return self.size == "native"

    def count(self, db: str) -> int:
        """Images in ``db`` ("train" / "val"); KeyError if the file does not say."""
        value = self.counts[db]
        return sum(value.values()) if isinstance(value, dict) else int(value)


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
) -> DatasetManifest:
    """Build DATASET from LISTS (see ARCHITECTURE.md §4); returns what dataset.json holds.

    Images that cannot be read are reported one per line and skipped; the dataset is still
    written, then :class:`~upcall.errors.BatchFailed` is raised.
    """
    lists_dir, out = Path(lists_dir).resolve(), Path(out).resolve()
    if (
        out.exists()
        and (not out.is_dir() or any(out.iterdir()))
        and not (out / DatasetManifest.FILE).is_file()
    ):
        raise UpcallError(f"{out}: exists and is not an upcall dataset; refusing to replace it")
    label_names = read_labels(lists_dir / "labels.txt")
    lists = {
        name: read_list(lists_dir / f"{name}.txt", n_labels=len(label_names))
        for name in DBS
        if name != "test" or (lists_dir / "test.txt").is_file()
    }
    lists_info = ListsManifest.read(lists_dir)  # None: lists made without upcall
    height, width = settings.size or _native_size(lists_dir / "train.txt", lists["train"])
    report = BatchReport("images")
    counts, test_images = {}, 0
    with atomic_dir(out) as tmp:
        for db, items in lists.items():
            work = Work(
                height,
                width,
                settings.size is None,
                settings.resize_mode,
                settings.encoding,
                settings.seed,
                DBS.index(db),
                keep_pixels=db == "train",
            )
            labels, total = write_db(
                items, tmp / f"{db}_db", work=work, workers=settings.workers, report=report
            )
            if db == "test":
                test_images = len(labels)
            else:
                counts[db] = class_counts(labels, label_names)
            if total is not None and len(labels):
                _write_mean(tmp, total, len(labels))
        shutil.copyfile(lists_dir / "labels.txt", tmp / "labels.txt")
        info = DatasetManifest(
            image=ImageShape(height, width, 1),
            size="native" if settings.size is None else f"{width}x{height}",
            resize_mode=settings.resize_mode if settings.size else "none",
            encoding=settings.encoding,
            seed=settings.seed,
            counts=counts,
            test_images=test_images,
            labels=tuple(label_names),
            spectrograms=lists_info.spectrograms if lists_info else None,
            lists=lists_info,
            lists_dir=str(lists_dir),
            settings=settings,
        )
        info.write(tmp)
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
    print(
        f"{args.out}: {info.image.width}x{info.image.height} grey, {info.encoding} encoding, "
        f"resize {info.resize_mode}"
    )
    for db, per_class in info.counts.items():
        print(f"  {db}_db: " + ", ".join(f"{n} {name}" for name, n in per_class.items()))
    if info.test_images:
        print(f"  test_db: {info.test_images} images")
    return 0
