"""Training, validation and test lists in DIGITS's text-file format ("PATH LABEL" per line).

The tutorial's notebook says it takes a random 90 % for training, but its shell commands take the
first 27,000 and the last 3,000 rows of train.csv. We default to a seeded stratified random split
and keep the tutorial's as ``--split ordered``. Balancing touches the training list only, so the
validation figures always describe the data as it comes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from upcall.data.groups import GroupSplit, add_group_arguments, split_by_groups
from upcall.data.listsfolder import (
    BALANCES,
    LABELS,
    PARTIAL_MARKER,
    SPLITS,
    ListSettings,
    ListsManifest,
    class_counts,
    file_digest,
)
from upcall.data.pngroot import ReadOptions, SpectrogramSettings, find_clips
from upcall.data.render import ensure
from upcall.data.resize import py2_round
from upcall.data.stamps import LOCK_FILE, clips_digest, register_lists, spectrogram_roots
from upcall.data.traincsv import Clip, groups_bytes, labels_digest, read_train_csv
from upcall.errors import BatchFailed, UpcallError
from upcall.fsutil import atomic_write_text
from upcall.lock import folder_lock
from upcall.plotting import pyplot, save_png

HELP = "write DIGITS train/val(/test) lists of spectrogram PNGs from a Kaggle-layout data directory"


def split_indices(
    labels: np.ndarray, *, val_fraction: float, split: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (ascending) of the training and validation lists."""
    n = len(labels)
    if split == "ordered":
        n_val = py2_round(val_fraction * n)
        return np.arange(n - n_val), np.arange(n - n_val, n)
    val = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        val.append(rng.permutation(rows)[: py2_round(val_fraction * len(rows))])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(n), val_idx), val_idx


def balance_indices(
    idx: np.ndarray, labels: np.ndarray, *, balance: str, rng: np.random.Generator
) -> np.ndarray:
    """Undersample every class to the smallest, or oversample every class to the largest."""
    if balance == "none":
        return idx
    by_class = [idx[labels[idx] == c] for c in np.unique(labels[idx])]
    sizes = [len(rows) for rows in by_class]
    out = []
    for rows in by_class:
        if balance == "undersample":
            out.append(rng.choice(rows, min(sizes), replace=False))
        else:
            # Whole copies first, then a random remainder without replacement: every clip is
            # repeated either k or k+1 times, never left out by chance.
            k, extra = divmod(max(sizes), len(rows))
            out.append(np.concatenate([np.tile(rows, k), rng.choice(rows, extra, replace=False)]))
    return np.sort(np.concatenate(out), kind="stable")


def spectrogram_root(data_dir: Path, settings: ListSettings) -> Path:
    """ROOT of the PNGs to list: ``--spectrogram-root``; else the ROOT that ``upcall
    spectrograms DATA --out ROOT`` made, when it is the only one and DATA holds no PNGs of its
    own; else DATA (the tutorial's PNGs beside the clips). When both exist the user says which:
    listing the tutorial PNGs after the user made others elsewhere would be silently wrong."""
    if settings.spectrogram_root is not None:
        return settings.spectrogram_root.resolve()
    others = []
    for root in spectrogram_roots(data_dir):
        found = _recorded(root.resolve())
        if found and found.data_dir and Path(found.data_dir) == data_dir != root.resolve():
            others.append((root.resolve(), found.mode))
    if not others:
        return data_dir
    own = _recorded(data_dir)
    if own is None and len(others) == 1 and settings.mode in (None, others[0][1]):
        root, mode = others[0]
        print(
            f"upcall lists: listing the {mode}-mode spectrograms in {root} (made by `upcall "
            f"spectrograms {data_dir} --out {root}`); --spectrogram-root chooses others",
            file=sys.stderr,
        )
        return root
    made = ([f"{data_dir} ({own.mode} mode)"] if own else []) + [
        f"{root} ({mode} mode)" for root, mode in others
    ]
    raise UpcallError(
        f"{data_dir}: spectrograms of these clips are in {', '.join(made)}; say which to list "
        f"with --spectrogram-root ROOT ({data_dir} for the PNGs beside the clips)"
    )


def _recorded(root: Path) -> SpectrogramSettings | None:
    try:
        return SpectrogramSettings.read(root)
    except UpcallError:
        return None  # unreadable: not a ROOT to offer


def _spectrograms(
    data_dir: Path, root: Path, settings: ListSettings, pngs: Sequence[Path], out: Path
) -> tuple[Path, SpectrogramSettings]:
    """Bring ROOT's PNGs up to date with ``upcall.data.render`` (cheap when they already are).

    The mode and read options (unless ``settings`` names them) default to those ROOT records, so a missing or stale PNG is
    remade like its neighbours rather than the whole root being remade in another mode; another
    mode is refused while other lists use ROOT's PNGs (the lists in ``out`` are being remade).
    Only the listed PNGs (``pngs``, relative to ROOT) must exist: a bad clip the lists do not
    use (an unlisted test clip) is reported and left out.
    """
    recorded = SpectrogramSettings.read(root)
    read = settings.read or (recorded.read_options if recorded else ReadOptions())
    mode = settings.mode or (recorded.mode if recorded else "tutorial")
    try:
        root = Path(ensure(data_dir, out=root, mode=mode, read=read, replacing=out)).resolve()
    except BatchFailed as e:  # every good clip was converted; each bad one was printed above
        missing = [p for p in pngs if not (root / p).is_file()]
        if missing:
            raise UpcallError(
                f"{root / missing[0]}: not made, its clip is bad (see above); "
                f"{len(missing)} listed clip(s) have no spectrogram"
            ) from e
        print(f"upcall lists: note: {e}; none of them is listed", file=sys.stderr)
    return root, SpectrogramSettings.require(root)


def _test_clips(data_dir: Path) -> list[Path]:
    tests = [p for p in find_clips(data_dir) if p.parent.name == "test"]
    if not tests:
        raise UpcallError(f"{data_dir / 'test'}: no clips to list (--test)")
    return tests


def write_histogram(path: Path, counts: dict[str, dict[str, int]]) -> None:
    """A bar chart of images per class in each list, as DIGITS shows for a new dataset."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    x = np.arange(len(LABELS))
    width = 0.8 / len(counts)
    for k, (name, per_class) in enumerate(counts.items()):
        bars = ax.bar(
            x + (k - (len(counts) - 1) / 2) * width,
            [per_class[c] for c in LABELS],
            width,
            label=f"{name} ({sum(per_class.values())})",
        )
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x, LABELS)
    ax.set_ylabel("images")
    ax.set_title("Images per class")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def make_lists(
    data_dir: str | Path,
    *,
    out: str | Path,
    settings: ListSettings = ListSettings(),
    split: GroupSplit | None = None,
) -> ListsManifest:
    """Write train.txt, val.txt, [test.txt], labels.txt, class_histogram.png and lists.json.

    lists.json goes last, with the digests of the others: its presence means they are whole.
    One run at a time writes LISTS, and no ``upcall spectrograms`` may rewrite ROOT meanwhile.
    ``split``: these rows of train.csv for training and validation instead of
    :func:`choose_split`'s (``fit --add-verified``). Returns what lists.json holds.
    """
    data_dir, out = Path(data_dir).resolve(), Path(out).resolve()
    csv_path = data_dir / "train.csv"
    clips = read_train_csv(csv_path)  # before anything is made: a bad row is refused first
    root = spectrogram_root(data_dir, settings)
    _refuse_foreign_lists(out)
    with folder_lock(out / ".upcall-lists.lock"), folder_lock(root / LOCK_FILE):
        return _make_lists(data_dir, root, out, settings, clips, split)


def _refuse_foreign_lists(out: Path) -> None:
    """Lists in OUT that no `upcall lists` wrote (no lists.json, no partial marker) are the
    user's, made by hand or by DIGITS: never overwritten."""
    theirs = [name for name in ("train.txt", "val.txt") if (out / name).is_file()]
    if theirs and not any((out / f).is_file() for f in (ListsManifest.FILE, PARTIAL_MARKER)):
        raise UpcallError(
            f"{out}: holds {' and '.join(theirs)} that upcall lists did not write (no "
            f"{ListsManifest.FILE}); choose another --out"
        )


def choose_split(
    data_dir: Path, clips: Sequence[Clip], labels: np.ndarray, settings: ListSettings
) -> tuple[np.ndarray, np.ndarray, GroupSplit | None]:
    """The rows of train.csv (training, validation) `upcall lists` puts DATA's clips in, and
    the group split behind them (None: split clip by clip)."""
    split_seq = np.random.SeedSequence(settings.seed).spawn(2)[0]
    grouped = split_by_groups(
        data_dir,
        clips,
        labels,
        group_by=settings.group_by,
        group_seconds=settings.group_seconds,
        split=settings.split,
        val_fraction=settings.val_fraction,
        seed=split_seq,
    )
    if grouped is not None:
        return grouped.train_idx, grouped.val_idx, grouped
    train_idx, val_idx = split_indices(
        labels,
        val_fraction=settings.val_fraction,
        split=settings.split,
        rng=np.random.default_rng(split_seq),
    )
    return train_idx, val_idx, None


def _make_lists(
    data_dir: Path,
    root: Path,
    out: Path,
    settings: ListSettings,
    clips: list[Clip],
    split: GroupSplit | None,
) -> ListsManifest:
    csv_path = data_dir / "train.csv"
    for clip in clips:
        if not (data_dir / "train" / clip.name).is_file():
            raise UpcallError(
                f"{csv_path}:{clip.line}: clip {clip.name} not found in {data_dir / 'train'}"
            )
    tests = _test_clips(data_dir) if settings.test else []
    pngs = [Path("train", clip.name).with_suffix(".png") for clip in clips]
    pngs += [Path("test", t.name).with_suffix(".png") for t in tests]
    labels = np.array([clip.label for clip in clips])
    balance_seq = np.random.SeedSequence(settings.seed).spawn(2)[1]
    if split is None:  # before any PNG is made: a bad clips.csv is refused first
        train_idx, val_idx, grouped = choose_split(data_dir, clips, labels, settings)
    else:
        train_idx, val_idx, grouped = split.train_idx, split.val_idx, split
    root, spec_info = _spectrograms(data_dir, root, settings, pngs, out)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise UpcallError(
            f"{csv_path}: {len(clips)} clips with --val-fraction {settings.val_fraction} "
            "leave an empty training or validation list"
        )
    train_idx = balance_indices(
        train_idx, labels, balance=settings.balance, rng=np.random.default_rng(balance_seq)
    )

    def lines(idx: np.ndarray) -> str:
        return "".join(f"{root / pngs[i]} {labels[i]}\n" for i in idx)

    counts = {"train": class_counts(labels[train_idx]), "val": class_counts(labels[val_idx])}
    # Until lists.json is rewritten the files below are partial: the marker tells `upcall lmdb`
    # so (a folder of lists without lists.json and without the marker was written by hand).
    atomic_write_text(out / PARTIAL_MARKER, "upcall lists is writing this folder\n")
    (out / ListsManifest.FILE).unlink(missing_ok=True)
    atomic_write_text(out / "train.txt", lines(train_idx))
    atomic_write_text(out / "val.txt", lines(val_idx))
    if tests:
        atomic_write_text(out / "test.txt", "".join(f"{root / p} 0\n" for p in pngs[len(clips) :]))
    atomic_write_text(out / "labels.txt", "".join(f"{name}\n" for name in LABELS))
    write_histogram(out / "class_histogram.png", counts)
    names = ["train.txt", "val.txt", "labels.txt"] + (["test.txt"] if tests else [])
    info = ListsManifest(
        data_dir=str(data_dir),
        spectrogram_root=str(root),
        spectrograms=spec_info,
        split=settings.split,
        val_fraction=settings.val_fraction,
        balance=settings.balance,
        seed=settings.seed,
        counts=counts,
        test_images=len(tests),
        files={name: file_digest(out / name) for name in names},
        labels_digest=labels_digest(clips, groups=groups_bytes(data_dir)),
        clips_digest=clips_digest(root, [p.as_posix() for p in pngs[: len(clips)]]),
        group_by=grouped.by if grouped else None,
        group_seconds=grouped.group_seconds if grouped else None,
        groups=grouped.groups if grouped else None,
    )
    info.write(out)  # last: its presence means the other files are complete
    (out / PARTIAL_MARKER).unlink()
    register_lists(root, out)
    return info


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs
    from upcall.data.spectrogram import MODES

    parser.add_argument(
        "data_dir", type=Path, help="Kaggle-layout directory with train.csv, train/, test/"
    )
    cliargs.add_out(parser, "where the lists go (default: DATA_DIR/lists)")
    d = ListSettings()
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="fraction of train.csv held out for validation (default 0.1)",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default=d.split,
        help="random: seeded, stratified by class; ordered: first rows train, last rows "
        "validate, as the tutorial's commands do",
    )
    add_group_arguments(parser, ListSettings().group_by)
    parser.add_argument(
        "--balance",
        choices=BALANCES,
        default=d.balance,
        help="rebalance the training list only (default none)",
    )
    cliargs.add_seed(parser, "seed of the split and balancing")
    parser.add_argument(
        "--test", action="store_true", help="also write test.txt from DATA_DIR/test"
    )
    parser.add_argument(
        "--spectrogram-root",
        type=Path,
        help="where the spectrogram PNGs are or go (default: DATA_DIR)",
    )
    parser.add_argument(
        "--mode",
        choices=list(MODES),
        help="spectrogram mode for missing PNGs, as `upcall spectrograms --mode` "
        "(default: the root's, else tutorial)",
    )


def run(args: argparse.Namespace) -> int:
    settings = ListSettings(
        val_fraction=args.val_fraction,
        split=args.split,
        balance=args.balance,
        seed=args.seed,
        test=args.test,
        spectrogram_root=args.spectrogram_root,
        mode=args.mode,
        group_by=args.group_by,
        group_seconds=args.group_seconds,
    )
    out = args.out or args.data_dir / "lists"
    info = make_lists(args.data_dir, out=out, settings=settings)
    print(f"{'list':<6}" + "".join(f"{name:>11}" for name in LABELS) + f"{'total':>9}")
    for name, per_class in info.counts.items():
        print(
            f"{name:<6}"
            + "".join(f"{per_class[c]:>11}" for c in LABELS)
            + f"{sum(per_class.values()):>9}"
        )
    if info.test_images:
        print(f"{'test':<6}{info.test_images:>31}")
    absent = [name for name, n in info.counts["val"].items() if n == 0]
    if absent:  # `upcall fit` refuses such lists; here a note, since DIGITS would take them
        print(
            f"upcall lists: note: the validation list has no {' or '.join(absent)} clips, so "
            "its AUC cannot be computed; raise --val-fraction or add clips of that class",
            file=sys.stderr,
        )
    split = f"split by {info.group_by}" if info.group_by else f"{settings.split} split"
    print(f"wrote {Path(out) / ListsManifest.FILE} ({split}, seed {settings.seed})")
    return 0
