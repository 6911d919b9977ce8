"""``upcall spectrograms``: a PNG for every clip of a Kaggle-layout data directory.

DATA/train/trainK.aiff → ROOT/train/trainK.png (and test/ alike), with ROOT/spectrograms.json
holding the settings (ARCHITECTURE.md §2). ROOT defaults to DATA, as the tutorial wrote PNGs
beside the clips. A PNG made with the same settings from the clip as it is now is kept (what
counts as changed: ``upcall.data.stamps``), so an interrupted run resumes; a change of mode or
settings remakes them all, unless lists still use them (then it refuses; ``force`` overrides).
One run at a time writes a ROOT (``upcall.lock``). All cores work on chunks of clips, with
one batched FFT per chunk.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from upcall.audio.clip import FITS, check_fit, read_clip
from upcall.data.listsfolder import ListsManifest
from upcall.data.pngroot import (
    SPLITS,
    ReadOptions,
    SpectrogramSettings,
    find_clips,
    png_path,
)
from upcall.data.spectrogram import (
    MODES,
    as_full_scale,
    compute_batch,
    get_mode,
    write_png,
)
from upcall.data.stamps import (
    LOCK_FILE,
    ClipIndex,
    ClipStamp,
    append,
    forget_everything,
    register_root,
    registered_lists,
    stamp,
)
from upcall.errors import BatchFailed, BatchReport, UpcallError
from upcall.jsonfile import FormatError
from upcall.lock import folder_lock
from upcall.parallel import check_workers, default_workers, map_chunks

HELP = (
    "Make an 8-bit spectrogram PNG of every clip in DATA/train and DATA/test "
    "(129 × 30 in the tutorial mode, 65 × 59 in the fine one)."
)

def _start(
    root: Path,
    settings: SpectrogramSettings,
    pngs: Sequence[Path],
    *,
    force: bool = False,
    replacing: Path | None = None,
) -> None:
    """Make ROOT's PNGs answer to ``settings``: if the recorded settings differ, remove the old
    PNGs before recording the new settings, so a PNG under a settings file was made with them.
    Refuses when lists other than ``replacing`` use the old PNGs, unless ``force``.
    Also removes temporaries of workers killed mid-write (a Ctrl-C terminates the pool)."""
    for split in SPLITS:
        for tmp in (root / split).glob(".*.tmp.png"):
            tmp.unlink(missing_ok=True)
    try:
        old = SpectrogramSettings.read(root)
    except FormatError:
        raise  # written by a newer upcall: not ours to reset
    except UpcallError:
        old = None  # unreadable: remade like a change of settings
    if old == settings:
        return
    if old is not None and not force:
        _refuse_if_used(root, old, settings, replacing)
    if replacing is not None:  # those lists are being remade from the new PNGs
        (replacing / "lists.json").unlink(missing_ok=True)
    # First, so a reset cut short is redone on the next run.
    (root / SpectrogramSettings.FILE).unlink(missing_ok=True)
    forget_everything(root)
    for png in pngs:
        png.unlink(missing_ok=True)
    settings.write(root)


def _refuse_if_used(
    root: Path, old: SpectrogramSettings, new: SpectrogramSettings, replacing: Path | None
) -> None:
    """UpcallError if lists recorded in ROOT (or DATA/lists) were made from the PNGs there now."""
    candidates = registered_lists(root)
    if old.data_dir:
        candidates.append(Path(old.data_dir) / "lists")
    users = []
    for folder in dict.fromkeys(candidates):
        if replacing is not None and folder.resolve() == replacing.resolve():
            continue
        try:
            lists = ListsManifest.read(folder)
        except UpcallError:
            continue  # unreadable lists are refused by `upcall lmdb` anyway
        if lists and Path(lists.spectrogram_root) == root and lists.spectrograms == old:
            users.append(folder)
    if users:
        more = f" (and {len(users) - 1} more)" if len(users) > 1 else ""
        raise UpcallError(
            f"{root / SpectrogramSettings.FILE}: the {old.mode}-mode PNGs here are used by the "
            f"lists in {users[0]}{more}; to make {new.mode}-mode ones, write them elsewhere "
            "(`upcall spectrograms DATA --out ROOT`, or `upcall lists DATA --spectrogram-root "
            "ROOT`), or replace these with `upcall spectrograms DATA --force` and then rerun "
            "`upcall lists`"
        )


def _convert(
    items: Sequence[tuple[Path, Path]], *, mode: str, read: ReadOptions, root: Path
) -> list[str | None]:
    """Worker: read a chunk of clips, one batched spectrogram, write the PNGs and record the
    clips' stamps in ROOT (``upcall.data.stamps``).

    Returns, per item, None or the problem (a bad clip's stale PNG is removed).
    """
    problems: list[str | None] = [None] * len(items)
    stamps: list[ClipStamp | None] = [None] * len(items)
    good, clips = [], []
    for i, (clip, _) in enumerate(items):
        try:
            stamps[i] = stamp(clip)  # before the read: a clip changing now is remade next run
            clips.append(as_full_scale(read_clip(clip, **asdict(read))))
            good.append(i)
        except UpcallError as e:
            problems[i] = str(e).removeprefix(f"{clip}: ")
        except OSError as e:
            problems[i] = f"cannot read: {e.strerror or e}"
    images = compute_batch(np.stack(clips), mode=mode) if clips else []
    for i, image in zip(good, images, strict=True):
        try:
            write_png(items[i][1], image)
            append(root, [stamps[i].line(items[i][1].relative_to(root).as_posix())])
        except OSError as e:
            problems[i] = f"cannot write {items[i][1]}: {e.strerror or e}"
    for i, problem in enumerate(problems):
        if problem is not None:
            items[i][1].unlink(missing_ok=True)
    return problems


def make(
    data_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    mode: str = "tutorial",
    workers: int | None = None,
    read: ReadOptions = ReadOptions(),
    force: bool = False,
    replacing: Path | None = None,
) -> tuple[Path, int, int]:
    """Make the missing or stale PNGs; returns (ROOT, made, already up to date).

    Raises BatchFailed, after converting every good clip, if some clips could not be read;
    UpcallError if another run is writing ROOT, or if the settings change while lists (other
    than the LISTS folder ``replacing``) use ROOT's PNGs and not ``force``.
    """
    get_mode(mode)
    check_fit(read.fit)
    check_workers(workers)
    data_dir = Path(data_dir).resolve()
    root = Path(out).resolve() if out is not None else data_dir
    clips = find_clips(data_dir)
    with folder_lock(root / LOCK_FILE):
        pairs = [(clip, png_path(clip, data_dir=data_dir, root=root)) for clip in clips]
        report = BatchReport("clips")
        pairs = _drop_name_clashes(pairs, report)
        settings = SpectrogramSettings.for_mode(mode, data_dir=data_dir, read=read)
        _start(root, settings, [png for _, png in pairs], force=force, replacing=replacing)
        index = ClipIndex(root)
        rel = {png: png.relative_to(root).as_posix() for _, png in pairs}
        todo = [(clip, png) for clip, png in pairs if not index.fresh(rel[png], clip, png)]
        report.ok(len(pairs) - len(todo))
        workers = workers or default_workers()
        chunk = min(256, max(32, -(-len(todo) // (4 * workers))))  # ≥ 4 chunks a worker
        fn = functools.partial(_convert, mode=mode, read=read, root=root)
        try:
            for (clip, _), problem in zip(
                todo,
                map_chunks(
                    fn, todo, workers=workers, chunk=chunk, desc="spectrograms", unit="clip"
                ),
                strict=True,
            ):
                report.record(clip, problem)
        finally:
            index.save(set(rel.values()), made=bool(todo))
    report.finish()
    return root, len(todo), len(pairs) - len(todo)


def _drop_name_clashes(
    pairs: list[tuple[Path, Path]], report: BatchReport
) -> list[tuple[Path, Path]]:
    seen: dict[Path, Path] = {}
    kept = []
    for clip, png in pairs:
        if png in seen:
            report.fail(clip, f"same name as {seen[png].name}; both would make {png.name}")
        else:
            seen[png] = clip
            kept.append((clip, png))
    return kept


def ensure(
    data_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    mode: str = "tutorial",
    workers: int | None = None,
    read: ReadOptions = ReadOptions(),
    force: bool = False,
    replacing: Path | None = None,
) -> Path:
    """Make sure every clip of DATA has an up-to-date PNG of ``mode``; returns ROOT.

    Parameters
    ----------
    data_dir : Kaggle layout, DATA/train/*.aiff and/or DATA/test/*.aiff (also .aif, .wav, .flac).
    out : ROOT for the PNGs and spectrograms.json; default DATA (PNGs beside the clips).
    mode : a name in ``upcall.data.spectrogram.MODES``.
    workers : processes; default all cores.
    read : how to fit clips of another rate, channel count or length.
    force : remake PNGs of other settings even when lists use them (see ``make``).
    replacing : the LISTS folder being remade from these PNGs (its old lists do not count).

    Raises
    ------
    BatchFailed : some clips were bad (each was reported on stderr); the rest were converted.
    """
    root, _, _ = make(
        data_dir, out=out, mode=mode, workers=workers, read=read, force=force, replacing=replacing
    )
    return root


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    parser.add_argument(
        "data_dir",
        type=Path,
        metavar="DATA_DIR",
        help="data directory with train/ and/or test/ folders of clips",
    )
    parser.add_argument(
        "--mode",
        choices=list(MODES),
        default="tutorial",
        help=f"{cliargs.described(MODES)} (default tutorial: the DIGITS tutorial's images, "
        "pixel for pixel)",
    )
    cliargs.add_out(
        parser,
        "write ROOT/train/*.png, ROOT/test/*.png (default: beside the clips)",
        metavar="ROOT",
    )
    cliargs.add_workers(
        parser, "is a process converting a chunk of clips; the images do not depend on how many"
    )
    parser.add_argument(
        "--resample", action="store_true", help="resample clips of another sample rate to 2000 Hz"
    )
    parser.add_argument(
        "--mixdown",
        action="store_true",
        help="average the channels of stereo / multi-channel clips",
    )
    parser.add_argument(
        "--fit",
        choices=FITS,
        default="strict",
        help="clips not 2 s long: zero-pad short ones (pad), keep the start of "
        "long ones (trim), or both (pad-trim); default: reject them",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="remake PNGs of another mode or settings even when lists (DATA/lists, or any "
        "`upcall lists` recorded in ROOT) were made from them; without it that is refused, "
        "since those lists and their datasets would no longer describe the PNGs",
    )
    parser.epilog = (
        "A PNG is kept when it was made with the same settings from the clip as it is now: "
        "same size and modification time as recorded, and either the same inode change time "
        "or (after cp -p, touch -r, a copied folder) the same CRC-32 of the clip's bytes. "
        "Any other clip is converted again. One run at a time may write ROOT."
    )


def run(args: argparse.Namespace) -> int:
    read = ReadOptions(resample=args.resample, mixdown=args.mixdown, fit=args.fit)
    data_dir = Path(args.data_dir).resolve()
    root = Path(args.out).resolve() if args.out is not None else data_dir
    try:
        root, made, kept = make(
            args.data_dir,
            out=args.out,
            mode=args.mode,
            workers=args.workers,
            read=read,
            force=args.force,
        )
    except BatchFailed:  # the good clips were converted: lists of them may follow
        if root != data_dir:
            register_root(data_dir, root)
        raise
    print(f"{made} spectrograms made, {kept} already up to date, in {root} (mode {args.mode})")
    if root != data_dir:
        # So that `upcall lists DATA` lists these PNGs, or asks which, rather than quietly
        # making (or taking) tutorial ones beside the clips.
        recorded = register_root(data_dir, root)
        print(
            f"next: upcall lists {args.data_dir} --spectrogram-root {args.out}"
            + ("" if recorded else f" (could not note {root} in {data_dir}: pass it as shown)")
        )
    return 0
