"""The DIGITS image-classification dataset: train/val/test LMDBs of Caffe Datum, mean and labels.

Like DIGITS's create_db, each list is shuffled (seeded here), every image is converted to one
channel, resized with the chosen DIGITS resize mode and stored under the key
``%08d_%d`` (running index, label) by ``upcall.data.dbwriter``; the mean of the training
images, rounded as DIGITS rounds it, goes to mean.binaryproto and mean.png, and dataset.json
(:class:`DatasetManifest`) describes the whole.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image

from upcall.data.datum import ENCODINGS, write_error, write_mean
from upcall.data.dbwriter import Work, write_db
from upcall.data.listsfolder import PARTIAL_MARKER, ListsManifest, class_counts, read_labels
from upcall.data.pngroot import SpectrogramSettings
from upcall.data.resize import RESIZE_MODES
from upcall.data.stamps import LOCK_FILE
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_dir, atomic_path, check_own_dir
from upcall.jsonfile import JsonFile
from upcall.lock import folder_lock

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
    build_id: str | None = None  # new at every build, so jobs notice a rebuild (see fingerprint)

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
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of a path
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


def _check_lists(lists_dir: Path) -> ListsManifest | None:
    """LISTS/lists.json, checked against what it builds on: the list files it was written with
    and the settings of the PNGs they name (ROOT/spectrograms.json, as it is now).

    None for lists written by hand or by another tool (DIGITS's text-file dataset takes any
    "PATH LABEL" lists): no lists.json and no sign of an interrupted ``upcall lists``.
    """
    if not (lists_dir / ListsManifest.FILE).exists() and not (lists_dir / PARTIAL_MARKER).exists():
        return None
    info = ListsManifest.require(
        lists_dir,
        "the lists are incomplete (was `upcall lists` interrupted?); "
        f"rerun `upcall lists DATA --out {lists_dir}`",
    )
    info.check_files(lists_dir)
    root = Path(info.spectrogram_root)
    rerun = f"rerun `upcall lists {info.data_dir} --out {lists_dir}`"
    now = SpectrogramSettings.read(root)
    if now is None:
        raise UpcallError(
            f"{root / SpectrogramSettings.FILE}: not found; the PNGs the lists name were "
            f"removed or are being remade; {rerun}"
        )
    if now != info.spectrograms:
        what = (
            f"{now.mode}-mode, the lists were made from {info.spectrograms.mode}-mode ones"
            if now.mode != info.spectrograms.mode
            else "made with other settings than the lists were made from"
        )
        raise UpcallError(
            f"{root / SpectrogramSettings.FILE}: the PNGs there are now {what} "
            f"({lists_dir / info.FILE}); {rerun}"
        )
    return info


def _common_size(items: list[tuple[Path, int]], sample: int = 200) -> tuple[int, int]:
    """(height, width) of most images of a hand-made list, from up to ``sample`` of them spread
    evenly (PNG headers only), so one stray image does not set the size of the whole dataset."""
    from PIL import Image

    sizes: dict[tuple[int, int], int] = {}
    for path, _ in items[:: max(1, len(items) // sample)]:
        try:
            with Image.open(path) as im:
                size = (im.height, im.width)
        except (OSError, ValueError):
            continue  # reported when the image is read for the database
        sizes[size] = sizes.get(size, 0) + 1
    if not sizes:
        raise UpcallError(f"{items[0][0]}: none of the sampled images of the list can be read")
    return max(sizes, key=sizes.__getitem__)


def build_dataset(
    lists_dir: str | Path, *, out: str | Path, settings: DatasetSettings = DatasetSettings()
) -> DatasetManifest:
    """Build DATASET from LISTS (see ARCHITECTURE.md §4); returns what dataset.json holds.

    LISTS must have its lists.json (written last by ``upcall lists``) and its PNGs must still
    have the settings it records; ``--size native`` is their recorded size. Images that cannot
    be read are reported one per line and skipped; the dataset is still written, then
    :class:`~upcall.errors.BatchFailed` is raised, unless most images of a list are bad: then
    nothing is written. One run at a time writes DATASET; no ``upcall spectrograms`` may rewrite
    the PNGs meanwhile.
    """
    lists_dir, out = Path(lists_dir).resolve(), Path(out).resolve()
    label_names = read_labels(lists_dir / "labels.txt")
    lists_info = ListsManifest.read(lists_dir)
    root = Path(lists_info.spectrogram_root) if lists_info else lists_dir
    # an earlier dataset is replaced; never a folder of something else, or one holding its input
    check_own_dir(out, kind="lmdb", legacy=(DatasetManifest.FILE,), inputs=(lists_dir, root))
    with (
        folder_lock(out.parent / f".{out.name}.upcall-lmdb.lock"),
        folder_lock(root / LOCK_FILE, shared=True),
    ):
        lists_info = _check_lists(lists_dir)
        # train always; val and test where the folder has them (DIGITS's datasets may have no
        # validation list: `textfile_use_val` off)
        names = [n for n in DBS if n == "train" or (lists_dir / f"{n}.txt").is_file()]
        if lists_info is not None and lists_info.files:  # a test.txt of earlier lists is not part of this set
            names = [n for n in names if f"{n}.txt" in lists_info.files]
        lists = {n: read_list(lists_dir / f"{n}.txt", n_labels=len(label_names)) for n in names}
        return _build(lists_dir, out, settings, lists, lists_info, label_names)


def _build(
    lists_dir: Path,
    out: Path,
    settings: DatasetSettings,
    lists: dict[str, list[tuple[Path, int]]],
    lists_info: ListsManifest | None,
    label_names: list[str],
) -> DatasetManifest:
    spec = lists_info.spectrograms if lists_info is not None else None
    if settings.size:
        height, width = settings.size
    elif spec is not None:
        height, width = spec.height, spec.width
    else:
        height, width = _common_size(lists["train"])
    report = BatchReport("images")
    counts, test_images = {}, 0
    with atomic_dir(out, kind="lmdb", legacy=(DatasetManifest.FILE,), inputs=(lists_dir,)) as tmp:
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
            failed = len(report.failures)
            try:
                labels, total = write_db(
                    items, tmp / f"{db}_db", work=work, workers=settings.workers, report=report
                )
            except lmdb.Error as e:  # a full disk, typically: one line naming the database
                raise write_error(out / f"{db}_db", e) from e
            bad = len(report.failures) - failed
            if bad * 2 > len(items):  # raised inside atomic_dir: nothing is written
                raise UpcallError(
                    f"{lists_dir / (db + '.txt')}: {bad} of its {len(items)} images are bad "
                    f"(listed above); nothing written to {out}"
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
            spectrograms=spec,
            lists=lists_info,
            lists_dir=str(lists_dir),
            settings=settings,
            build_id=uuid.uuid4().hex,
        )
        info.write(tmp)
    report.finish()
    return info


def fingerprint(folder: str | Path) -> str | None:
    """What identifies one build of DATASET: a digest of its dataset.json (which holds a
    build id) and the sizes of its LMDBs' data files; None when it has no dataset.json.
    A copy of the folder keeps it; a rebuild, even with the same settings, changes it."""
    folder = Path(folder)
    try:
        h = hashlib.sha256((folder / DatasetManifest.FILE).read_bytes())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UpcallError(f"{folder / DatasetManifest.FILE}: cannot read: {e.strerror or e}") from e
    for db in DBS:
        with contextlib.suppress(OSError):
            h.update(b"%s %d;" % (db.encode(), (folder / f"{db}_db" / "data.mdb").stat().st_size))
    return h.hexdigest()[:16]


def _write_mean(folder: Path, total: np.ndarray, count: int) -> None:
    # DIGITS: np.around(sum / count) as uint8, stored as floats (CHW; one channel here).
    mean = np.around(total / count).astype(np.uint8)
    write_mean(folder / "mean.binaryproto", mean.astype(np.float32))
    with atomic_path(folder / "mean.png") as tmp:
        Image.fromarray(mean).save(tmp, format="PNG")


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    d = DatasetSettings()
    parser.add_argument("lists_dir", type=Path, help="folder with train.txt, val.txt, labels.txt")
    cliargs.add_out(parser, "the dataset folder to write", required=True)
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
    cliargs.add_seed(parser, "seed of the shuffle and the fill noise")
    cliargs.add_workers(
        parser,
        "is a thread decoding and resizing a chunk of images (threads, not processes, here: "
        "that work releases the GIL, and the images need no pickling)",
    )


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
