"""A spectrogram ROOT's contract: ROOT/spectrograms.json (:class:`SpectrogramSettings`: what made
its PNGs), how clips are read to make them (:class:`ReadOptions`), which clips of a Kaggle-layout
DATA get one (:func:`find_clips`) and where each goes (:func:`png_path`). ``upcall spectrograms``
(:mod:`upcall.data.render`) writes ROOTs; lists, datasets, augmentation and inference read them.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from upcall.audio.clip import AUDIO_SUFFIXES, FITS
from upcall.data.spectrogram import HEIGHT, NFFT, NOVERLAP, SAMPLE_RATE, WIDTH, mode_settings
from upcall.errors import UpcallError
from upcall.jsonfile import INLINE, JsonFile, plain

SPLITS = ("train", "test")


@dataclass(frozen=True)
class ReadOptions:
    """How clips that are not 2 s, 2000 Hz mono are made to fit (see upcall.audio.clip.read_clip)."""

    resample: bool = False
    mixdown: bool = False
    fit: str = "strict"


def add_read_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--resample, --mixdown and --fit for commands that read clips through a recipe or lists
    (``fit``, ``search``, ``baseline``): unset unless given (:func:`read_options` merges them)."""
    parser.add_argument(
        "--resample",
        action="store_true",
        default=None,
        help="resample clips of another sample rate to 2000 Hz",
    )
    parser.add_argument(
        "--mixdown",
        action="store_true",
        default=None,
        help="average the channels of stereo / multi-channel clips",
    )
    parser.add_argument(
        "--fit",
        choices=FITS,
        help="clips not 2 s long: zero-pad short ones (pad), keep the start of long ones "
        "(trim), or both (pad-trim); default: reject them",
    )


def read_options(args: argparse.Namespace, base: ReadOptions | None = None) -> ReadOptions | None:
    """``base`` (default: the defaults) with the flags of :func:`add_read_arguments` that were
    given; None when there is no ``base`` and none was given."""
    given = {k: getattr(args, k) for k in ("resample", "mixdown", "fit")}
    given = {k: v for k, v in given.items() if v is not None}
    if base is None and not given:
        return None
    return replace(base or ReadOptions(), **given)


@dataclass(frozen=True)
class SpectrogramSettings(JsonFile):
    """ROOT/spectrograms.json (ARCHITECTURE.md §2): what made ROOT's PNGs; any change remakes them.

    Files written before a field existed read as its default: the only geometry there has been.
    """

    FILE = "spectrograms.json"

    mode: str
    nfft: int = NFFT
    noverlap: int = NOVERLAP
    sample_rate: int = SAMPLE_RATE
    height: int = HEIGHT
    width: int = WIDTH
    # The mode's own parameters (fs; floor_db, range_db, ...), top-level keys in the file.
    params: dict = field(default_factory=dict, metadata=INLINE)
    data_dir: str | None = None  # absolute path of DATA
    # resample, mixdown, fit: also top-level keys.
    read_options: ReadOptions = field(default_factory=ReadOptions, metadata=INLINE)

    @classmethod
    def for_mode(cls, mode: str, *, data_dir: Path, read: ReadOptions) -> SpectrogramSettings:
        """The settings ``upcall spectrograms`` records for ``mode`` (see ``mode_settings``)."""
        # plain(): tuples in the mode's parameters become lists, as a reread file has them.
        return cls.from_json(
            plain({**mode_settings(mode), "data_dir": str(data_dir), **asdict(read)})
        )


def find_clips(data_dir: Path) -> list[Path]:
    """Audio files directly in DATA/train and DATA/test, in natural order (train2 < train10)."""
    if not data_dir.is_dir():
        raise UpcallError(f"{data_dir}: no such data directory")
    folders = [data_dir / s for s in SPLITS if (data_dir / s).is_dir()]
    if not folders:
        raise UpcallError(
            f"{data_dir}: has no train/ or test/ folder (expected the Kaggle "
            "layout DATA/train/trainK.aiff)"
        )
    clips = [
        p
        for folder in folders
        for p in sorted(folder.iterdir(), key=_natural_key)
        if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    if not clips:
        raise UpcallError(
            f"{data_dir}: no audio clips ({', '.join(AUDIO_SUFFIXES)}) in "
            f"{' or '.join(f.name + '/' for f in folders)}"
        )
    return clips


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def png_path(clip: Path, *, data_dir: Path, root: Path) -> Path:
    """ROOT/<split>/<stem>.png for DATA/<split>/<stem>.<ext>."""
    return root / clip.parent.relative_to(data_dir) / (clip.stem + ".png")
