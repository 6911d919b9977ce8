"""Synthetic right-whale data in the Kaggle layout (``upcall synth``).

The real Kaggle clips cannot be shipped (Cornell licence), so we synthesise clips with the same
format (2 s, 2000 Hz, 16-bit mono AIFF) and the same kind of difficulty; the signal model is
described in :mod:`upcall.audio.sounds`. Labels are placed by a seeded permutation and every clip is the
same size, so names, order and sizes say nothing about the label.

Each clip's randomness derives from (seed, split, clip index) alone, so clips can be made in any
order, by any number of workers, and a rerun skips the ones already written.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import os
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np
import soundfile as sf

from upcall.audio.sounds import DIFFICULTIES, GENERATOR_VERSION, RATE, clip, to_pcm16
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import (
    OWN_MARK,
    atomic_write_bytes,
    atomic_write_text,
    check_own_dir,
    mark_own_dir,
)
from upcall.jsonfile import FormatError, JsonFile
from upcall.parallel import check_workers, map_chunks

HELP = "Write synthetic right-whale clips in the Kaggle layout (train.csv, train/, test/)."

SPLITS = {"train": 0, "test": 1}  # split -> the code mixed into each clip's seed
CHUNK = 250  # clips per task handed to a worker: amortises the hand-off, keeps progress smooth


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator for one clip: a function of (seed, split, index) only."""
    return np.random.default_rng([seed, SPLITS[split], 0, index])


def labels_for(seed: int, split: str, n: int, positive_rate: float) -> np.ndarray:
    """Exactly round(n·rate) positives, at seeded random positions (so names say nothing)."""
    labels = np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng([seed, SPLITS[split], 1, 0])
    labels[rng.permutation(n)[: round(n * positive_rate)]] = 1
    return labels


def make_clips(
    seed: int,
    labels: Sequence[int],
    *,
    split: str = "train",
    start: int = 1,
    difficulty: str = "hard",
) -> np.ndarray:
    """int16 (N, 4000) clips ``split{start}``… in memory, exactly as :func:`synthesize` writes them."""
    return np.stack(
        [
            to_pcm16(clip(clip_rng(seed, split, start + i), int(y), difficulty=difficulty))
            for i, y in enumerate(labels)
        ]
    )


# --- the Kaggle layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthSettings(JsonFile):
    """OUT/synth.json: what made the clips; a rerun with other settings is refused."""

    FILE = "synth.json"

    n_train: int = 30000  # as in the Kaggle training set
    n_test: int = 0  # Kaggle had 54,503 unlabelled test clips; none unless asked
    seed: int = 0
    positive_rate: float = 0.234  # 7,027 / 30,000 in the Kaggle training set
    generator_version: int = GENERATOR_VERSION
    difficulty: str = "hard"  # a name in upcall.audio.sounds.DIFFICULTIES ("easy": generator 1)

    def check(self) -> None:
        if self.n_train <= 0:
            raise UpcallError(f"--n-train must be positive, got {self.n_train}")
        if self.n_test < 0:
            raise UpcallError(f"--n-test must be zero or positive, got {self.n_test}")
        if self.seed < 0:
            raise UpcallError(f"--seed must be zero or positive, got {self.seed}")
        if not 0.0 < self.positive_rate < 1.0:
            raise UpcallError(f"--positive-rate must be between 0 and 1, got {self.positive_rate}")
        if self.difficulty not in DIFFICULTIES:
            raise UpcallError(
                f"--difficulty must be one of {', '.join(DIFFICULTIES)}, got {self.difficulty!r}"
            )


def _write_clips(
    items: Sequence[tuple[str, int, int]], *, out: str, seed: int, difficulty: str
) -> list[str | None]:
    problems: list[str | None] = []
    for split, index, label in items:
        samples = to_pcm16(clip(clip_rng(seed, split, index), label, difficulty=difficulty))
        buf = io.BytesIO()  # encoded in memory: libsndfile reports a full disk as "System error."
        try:
            sf.write(buf, samples, RATE, format="AIFF", subtype="PCM_16")
        except sf.LibsndfileError as e:
            problems.append(str(e))
            continue
        # An OSError here (full disk, read-only or missing folder) is about the output, not the
        # clip: it stops the run, reported once by the CLI as "PATH: reason".
        atomic_write_bytes(Path(out) / split / f"{split}{index}.aiff", buf.getvalue())
        problems.append(None)
    return problems


def _check_out(out: Path, settings: SynthSettings, force: bool) -> None:
    meta = out / SynthSettings.FILE
    if out.exists() and not out.is_dir():
        raise UpcallError(f"{out}: is a file, not a directory; OUT must be a directory")
    if force:  # rewrites only a data set an earlier `upcall synth` made (never Kaggle's clips)
        check_own_dir(out, kind="synth", legacy=(SynthSettings.FILE,))
        return
    if not out.exists() or not any(out.iterdir()):
        return
    if not meta.exists():  # marked: a --force run was cut short before it wrote synth.json
        hint = "use --force to rewrite it" if (out / OWN_MARK).is_file() else "choose another OUT"
        raise UpcallError(f"{out}: directory is not empty and has no synth.json; {hint}")
    try:
        old = SynthSettings.require(meta)
    except FormatError:
        raise
    except UpcallError as e:
        raise UpcallError(f"{e}; use --force to overwrite") from None
    if old != settings:
        diff = {
            f.name: (a, b)
            for f, a, b in zip(fields(settings), astuple(old), astuple(settings), strict=True)
            if a != b
        }
        raise UpcallError(
            f"{meta}: OUT was made with other settings (old, new: {diff}); use --force to overwrite"
        )


def _clear(out: Path) -> None:
    """For --force: remove the old data set, synth.json first.

    Without synth.json a run cut short here is refused until forced again; after it, synth.json
    is rewritten with the new settings before any clip, so a resume keeps only new clips.
    """
    (out / SynthSettings.FILE).unlink(missing_ok=True)
    for split in SPLITS:
        for path in (out / split).glob(f"{split}*.aiff"):
            path.unlink()
    for name in ("train.csv", "test_truth.csv"):
        (out / name).unlink(missing_ok=True)


def _done(out: Path, split: str) -> set[str]:
    """Clear leftovers in ``out/split`` and return the names of the clips already finished."""
    # Temporary files of a killed run (atomic_path's hidden siblings) are never finished clips.
    for path in (out / split).glob(f".{split}*.tmp.aiff"):
        path.unlink()
    return set(os.listdir(out / split))


def _write_csv(path: Path, split: str, labels: np.ndarray) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip_name", "label"])
    writer.writerows((f"{split}{i}.aiff", int(y)) for i, y in enumerate(labels, start=1))
    atomic_write_text(path, buf.getvalue())


def synthesize(
    out: str | os.PathLike,
    settings: SynthSettings = SynthSettings(),
    *,
    workers: int | None = None,
    force: bool = False,
) -> Path:
    """Write the synthetic data set under ``out`` (see ARCHITECTURE.md §1) and return its path.

    Clips already there from an interrupted run with the same settings are kept (files are
    written atomically, so one that exists is complete); ``force`` rewrites everything.
    """
    settings.check()
    check_workers(workers)
    out = Path(out)
    _check_out(out, settings, force)
    mark_own_dir(out, "synth")
    if force:
        _clear(out)
    settings.write(out)
    counts = {"train": settings.n_train, "test": settings.n_test}
    labels = {s: labels_for(settings.seed, s, n, settings.positive_rate) for s, n in counts.items()}
    todo = []
    for split, n in counts.items():
        if n == 0 and not (out / split).exists():
            continue
        (out / split).mkdir(parents=True, exist_ok=True)
        done = _done(out, split)
        todo += [
            (split, i, int(y))
            for i, y in enumerate(labels[split], start=1)
            if f"{split}{i}.aiff" not in done
        ]
    report = BatchReport("clips")
    report.ok(sum(counts.values()) - len(todo))
    fn = functools.partial(
        _write_clips, out=str(out), seed=settings.seed, difficulty=settings.difficulty
    )
    for (split, index, _), problem in zip(
        todo,
        map_chunks(fn, todo, workers=workers, chunk=CHUNK, desc="synth", unit="clip"),
        strict=True,
    ):
        report.record(out / split / f"{split}{index}.aiff", problem)
    report.finish()
    _write_csv(out / "train.csv", "train", labels["train"])
    if settings.n_test:
        _write_csv(out / "test_truth.csv", "test", labels["test"])
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    cliargs.add_out(
        parser, "data directory to write (OUT alone, the old spelling, still works)",
        metavar="OUT", required=True, positional=True,
    )  # fmt: skip
    parser.add_argument(
        "--n-train",
        type=int,
        default=30000,
        help="labelled clips in train/ (default 30000, as in Kaggle)",
    )
    parser.add_argument(
        "--n-test", type=int, default=0, help="clips in test/, labels in test_truth.csv (default 0)"
    )
    cliargs.add_seed(parser, "seed of the labels and of every clip")
    parser.add_argument(
        "--positive-rate",
        type=float,
        default=0.234,
        help="fraction of clips with an up-call (default 0.234, as in Kaggle)",
    )
    parser.add_argument(
        "--difficulty",
        choices=list(DIFFICULTIES),
        default="hard",
        help="hard (default): faint, cut and echoing calls, calibrated to the real data's "
        "difficulty; easy: every call clearly visible (the clips of generator 1)",
    )
    cliargs.add_workers(
        parser, "is a process writing a chunk of clips; the clips do not depend on how many"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite OUT made by an earlier `upcall synth` even with other settings",
    )


def run(args: argparse.Namespace) -> int:
    settings = SynthSettings(
        n_train=args.n_train,
        n_test=args.n_test,
        seed=args.seed,
        positive_rate=args.positive_rate,
        difficulty=args.difficulty,
    )
    out = synthesize(args.out, settings, workers=args.workers, force=args.force)
    print(f"wrote {settings.n_train} training and {settings.n_test} test clips to {out}")
    return 0
