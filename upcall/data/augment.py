"""``upcall augment LISTS --copies K``: new training images made from the training clips' audio.

For each clip of LISTS/train.txt, K copies (``upcall.augment.clips``: time shift, frequency
shift, noise from another noise-only training clip at a drawn SNR, gain), each turned into a
spectrogram with the mode and read options of the PNGs the lists name, written as
OUT/train/<stem>.aug<k>.png. OUT (default LISTS/augmented) is a new lists folder: train.txt is
LISTS's plus the copies, val.txt (and test.txt) are LISTS's unchanged, so validation and test
clips are never touched nor used as noise. OUT/augmented.csv traces every copy to its clip,
draws and noise clip; OUT/lists.json records the settings (``augmented``) and LISTS
(``augmented_from``). Each clip's draws come from ``(seed, its index among train.txt's
distinct PNGs)`` (an oversampled list repeats a PNG), so a rerun makes the same files and keeps the PNGs already there (written atomically).
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from upcall.audio.clip import read_clip
from upcall.augment.clips import AugmentSettings, CopyParams, augment, draw
from upcall.data.dataset import read_list
from upcall.data.lists import write_histogram
from upcall.data.listsfolder import (
    PARTIAL_MARKER,
    ListsManifest,
    class_counts,
    file_digest,
    read_labels,
)
from upcall.data.pngroot import ReadOptions, SpectrogramSettings, find_clips, png_path
from upcall.data.spectrogram import as_full_scale, compute_batch, write_png
from upcall.data.stamps import LOCK_FILE, register_lists
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_text
from upcall.jsonfile import JsonFile
from upcall.lock import folder_lock
from upcall.parallel import map_chunks

HELP = "add K augmented copies of every training clip (noise, gain, time and frequency shift)"

CSV_FILE = "augmented.csv"
CSV_HEADER = [
    "png",
    "source_clip",
    "copy",
    "snr_db",
    "gain_db",
    "shift_s",
    "freq_shift_hz",
    "noise_clip",
]


@dataclass(frozen=True)
class AugmentRecord(JsonFile):
    """OUT/augment.json, written before any PNG: what OUT's PNGs are made with, so a rerun with
    other settings or other lists is refused instead of mixing copies of both."""

    FILE = "augment.json"

    source_lists: str
    settings: AugmentSettings


@dataclass(frozen=True)
class Task:
    """One training clip and its copies: (copy number, draws, noise clip, PNG to write)."""

    clip: Path
    copies: tuple[tuple[int, CopyParams, Path | None, Path], ...]


def augment_lists(
    lists_dir: str | Path,
    *,
    out: str | Path | None = None,
    settings: AugmentSettings,
    workers: int | None = None,
) -> ListsManifest:
    """Write OUT (see the module docstring); returns its lists.json. Bad clips are reported one
    a line and left out; then :class:`~upcall.errors.BatchFailed` is raised."""
    lists_dir = Path(lists_dir).resolve()
    out = Path(out).resolve() if out is not None else lists_dir / "augmented"
    if out == lists_dir:
        raise UpcallError(f"{out}: --out must be a new folder, not the lists being augmented")
    info = _source_lists(lists_dir)
    root = Path(info.spectrogram_root)
    with folder_lock(out / ".upcall-lists.lock"), folder_lock(root / LOCK_FILE, shared=True):
        record = AugmentRecord(str(lists_dir), settings)
        old = AugmentRecord.read(out)
        if old is not None and old != record:
            raise UpcallError(
                f"{out / AugmentRecord.FILE}: made from {old.source_lists} with other settings "
                f"({old.settings}); remove {out} or choose another --out"
            )
        (out / "train").mkdir(parents=True, exist_ok=True)
        record.write(out)
        return _augment(lists_dir, out, info, settings, workers)


def _source_lists(lists_dir: Path) -> ListsManifest:
    """LISTS/lists.json, checked: its lists unchanged, its PNGs still of the recorded settings."""
    info = ListsManifest.require(
        lists_dir, f"make the lists with `upcall lists DATA --out {lists_dir}`"
    )
    info.check_files(lists_dir)
    if info.augmented is not None:
        raise UpcallError(
            f"{lists_dir / info.FILE}: already augmented (from {info.augmented_from}); "
            "augment the original lists instead"
        )
    now = SpectrogramSettings.read(Path(info.spectrogram_root))
    if now != info.spectrograms:
        raise UpcallError(
            f"{Path(info.spectrogram_root) / SpectrogramSettings.FILE}: the PNGs there are no "
            f"longer those the lists were made from; rerun `upcall lists {info.data_dir} "
            f"--out {lists_dir}`"
        )
    return info


def _augment(
    lists_dir: Path,
    out: Path,
    info: ListsManifest,
    settings: AugmentSettings,
    workers: int | None,
) -> ListsManifest:
    labels = read_labels(lists_dir / "labels.txt")
    items = read_list(lists_dir / "train.txt", n_labels=len(labels))
    unique = list(dict.fromkeys(items))  # an oversampled list repeats PNGs: copy each once
    data_dir, root = Path(info.data_dir), Path(info.spectrogram_root)
    by_png = {png_path(c, data_dir=data_dir, root=root): c for c in find_clips(data_dir)}
    report = BatchReport("training clips")
    clips: list[tuple[int, Path, int]] = []  # (index in unique, clip, label)
    for i, (png, label) in enumerate(unique):
        clip = by_png.get(png.resolve())
        if clip is None or clip.parent.name != "train":
            report.fail(png, f"not a PNG of a training clip of {data_dir}; not augmented")
        else:
            clips.append((i, clip, label))
    noises = [clip for _, clip, label in clips if label == 0]  # noise-only training clips
    tasks = [_task(i, clip, noises, settings, out) for i, clip, _ in clips]
    fn = functools.partial(
        _make_copies, mode=info.spectrograms.mode, read=info.spectrograms.read_options
    )
    problems = map_chunks(fn, tasks, workers=workers, chunk=16, desc="augment", unit="clip")
    rows, lines, copy_labels = [], [], []
    for (_, clip, label), task, problem in zip(clips, tasks, problems, strict=True):
        report.record(clip, problem)
        if problem is not None:
            continue
        for k, params, noise, png in task.copies:
            lines.append(f"{png} {label}\n")
            copy_labels.append(label)
            rows.append(
                [
                    png,
                    clip,
                    k,
                    _num(params.snr_db),
                    params.gain_db,
                    params.shift_s,
                    params.freq_shift_hz,
                    noise or "",
                ]
            )
    manifest = _write_lists(lists_dir, out, info, settings, lines, rows, labels, copy_labels)
    register_lists(root, out)
    report.finish()
    return manifest


def _task(
    index: int, clip: Path, noises: Sequence[Path], settings: AugmentSettings, out: Path
) -> Task:
    """The draws of one clip's copies, from (seed, index): the same on every run."""
    rng = np.random.default_rng([settings.seed, index])
    others = [n for n in noises if n != clip]  # a noise clip is never mixed with itself
    copies = []
    for k in range(1, settings.copies + 1):
        params = draw(settings, rng, noises=len(others))
        noise = others[params.noise] if params.noise is not None else None
        copies.append((k, params, noise, out / "train" / f"{clip.stem}.aug{k}.png"))
    return Task(clip, tuple(copies))


def _make_copies(tasks: Sequence[Task], *, mode: str, read: ReadOptions) -> list[str | None]:
    """Worker: each task's missing PNGs; per task None or the problem."""
    problems: list[str | None] = []
    for task in tasks:
        todo = [c for c in task.copies if not c[3].is_file()]  # kept: written atomically
        try:
            if todo:
                x = as_full_scale(read_clip(task.clip, **asdict(read)))
                ys = [augment(x, p, _noise(noise, read)) for _, p, noise, _ in todo]
                for (_, _, _, png), image in zip(
                    todo, compute_batch(np.stack(ys), mode=mode), strict=True
                ):
                    write_png(png, image)
            problems.append(None)
        except UpcallError as e:  # the item is named where it is reported
            problems.append(str(e).removeprefix(f"{task.clip}: "))
        except OSError as e:
            problems.append(f"cannot write a copy: {e.strerror or e}")
    return problems


def _noise(path: Path | None, read: ReadOptions) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return as_full_scale(read_clip(path, **asdict(read)))
    except UpcallError as e:
        raise UpcallError(f"noise clip {e}") from None


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)


def _write_lists(
    lists_dir: Path,
    out: Path,
    info: ListsManifest,
    settings: AugmentSettings,
    lines: list[str],
    rows: list[list],
    labels: list[str],
    copy_labels: list[int],
) -> ListsManifest:
    """train.txt (LISTS's, then the copies), the other lists as they are, augmented.csv and
    lists.json last, under the same partial marker as ``upcall lists``."""
    atomic_write_text(out / PARTIAL_MARKER, "upcall augment is writing this folder\n")
    (out / ListsManifest.FILE).unlink(missing_ok=True)
    train = (lists_dir / "train.txt").read_text(encoding="utf-8")
    atomic_write_text(out / "train.txt", train + "".join(lines))
    names = [n for n in info.files if n != "train.txt"] or ["val.txt", "labels.txt"]
    for name in names:
        shutil.copyfile(lists_dir / name, out / name)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([CSV_HEADER, *rows])
    atomic_write_text(out / CSV_FILE, text.getvalue())
    train_counts = dict(info.counts["train"])
    for name, n in class_counts(np.array(copy_labels, np.int64), labels).items():
        train_counts[name] = train_counts.get(name, 0) + n
    counts = {**info.counts, "train": train_counts}
    write_histogram(out / "class_histogram.png", counts)
    files = ["train.txt", *names, CSV_FILE]
    manifest = replace(
        info,
        counts=counts,
        files={name: file_digest(out / name) for name in files},
        augmented=settings,
        augmented_from=str(lists_dir),
    )
    manifest.write(out)
    (out / PARTIAL_MARKER).unlink()
    return manifest


def _pair(text: str, flag: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UpcallError(f"{flag} must be LO,HI (two numbers), not {text!r}") from None
    return lo, hi


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    d = AugmentSettings()
    parser.add_argument(
        "lists_dir", type=Path, metavar="LISTS", help="lists made by `upcall lists`"
    )
    parser.add_argument(
        "--copies", type=int, required=True, metavar="K", help="new versions of each training clip"
    )
    cliargs.add_seed(parser, "seed of every draw")
    parser.add_argument(
        "--snr-db",
        default="5,20",
        metavar="LO,HI|off",
        help="mix in a random noise-only training clip at an SNR drawn from LO..HI dB, relative "
        "to the clip's own power (mean squares over the 2 s); off: no noise (default 5,20)",
    )
    parser.add_argument(
        "--gain-db",
        default="-6,6",
        metavar="LO,HI",
        help="gain drawn from LO..HI dB (default "
        "-6,6; the tutorial mode rescales each image, so gain alone changes nothing there)",
    )
    parser.add_argument(
        "--shift-s",
        type=float,
        default=d.shift_s,
        metavar="MAX",
        help=f"circular time shift drawn from -MAX..MAX seconds (default {d.shift_s})",
    )
    parser.add_argument(
        "--freq-shift-hz",
        type=float,
        default=d.freq_shift_hz,
        metavar="MAX",
        help="frequency shift (single-sideband, every component moved by the same Hz) drawn "
        f"from -MAX..MAX Hz (default {d.freq_shift_hz:g})",
    )
    cliargs.add_out(parser, "the new lists folder (default LISTS/augmented)")
    cliargs.add_workers(parser, "is a process making the copies of one clip after another")


def run(args: argparse.Namespace) -> int:
    settings = AugmentSettings(
        copies=args.copies,
        seed=args.seed,
        snr_db=None if args.snr_db == "off" else _pair(args.snr_db, "--snr-db"),
        gain_db=_pair(args.gain_db, "--gain-db"),
        shift_s=args.shift_s,
        freq_shift_hz=args.freq_shift_hz,
    )
    info = augment_lists(args.lists_dir, out=args.out, settings=settings, workers=args.workers)
    out = args.out or args.lists_dir / "augmented"
    train = info.counts["train"]
    print("train: " + ", ".join(f"{n} {name}" for name, n in train.items()) + " (with copies)")
    print(f"wrote {Path(out) / ListsManifest.FILE} and {Path(out) / CSV_FILE}")
    return 0
