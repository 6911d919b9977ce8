"""A spectrogram ROOT's contract: ROOT/spectrograms.json (:class:`SpectrogramSettings`: what made
its PNGs), how clips are read to make them (:class:`ReadOptions`), which clips of a Kaggle-layout
DATA get one (:func:`find_clips`) and where each goes (:func:`png_path`). ``upcall spectrograms``
(:mod:`upcall.data.render`) writes ROOTs; lists, datasets, augmentation and inference read them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from upcall.audio.clip import AUDIO_SUFFIXES
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
