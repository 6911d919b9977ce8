"""``upcall augment``: copies of training clips only, traceable, deterministic, resumable."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.data.test_lists import make_data
from upcall.augment.clips import AugmentSettings, frequency_shift, mix_noise, power
from upcall.cli import main
from upcall.data.augment import CSV_FILE, augment_lists
from upcall.data.dataset import DatasetSettings, build_dataset
from upcall.data.lists import make_lists
from upcall.data.listsfolder import ListSettings, ListsManifest
from upcall.data.spectrogram import read_png
from upcall.errors import UpcallError

LABELS = [0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0]
SETTINGS = AugmentSettings(copies=2, seed=1)


@pytest.fixture
def lists(tmp_path) -> Path:
    data = make_data(tmp_path / "data", LABELS, tests=1)
    make_lists(data, out=tmp_path / "lists", settings=ListSettings(val_fraction=0.25, test=True))
    return tmp_path / "lists"


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / CSV_FILE, newline="") as f:
        return list(csv.DictReader(f))


def _entries(path: Path) -> list[tuple[str, int]]:
    return [(p, int(n)) for p, n in (line.rsplit(" ", 1) for line in path.read_text().splitlines())]


def test_transforms():
    rng = np.random.default_rng(0)
    x, noise = rng.standard_normal(4000), rng.standard_normal(4000) * 5
    mixed = mix_noise(x, noise, 10.0)
    assert 10 * np.log10(power(x) / power(mixed - x)) == pytest.approx(10.0)
    t = np.arange(4000) / 2000
    shifted = frequency_shift(np.cos(2 * np.pi * 100 * t), 7.0)
    np.testing.assert_allclose(shifted[200:-200], np.cos(2 * np.pi * 107 * t)[200:-200], atol=1e-2)
    with pytest.raises(UpcallError, match="--copies"):
        AugmentSettings(copies=0)


def test_only_training_clips_are_copied_and_traced(lists, tmp_path):
    info = augment_lists(lists, out=tmp_path / "aug", settings=SETTINGS, workers=1)
    out = tmp_path / "aug"
    source = ListsManifest.require(lists)
    train, val = _entries(lists / "train.txt"), _entries(lists / "val.txt")
    for name in ("val.txt", "test.txt", "labels.txt"):
        assert (out / name).read_bytes() == (lists / name).read_bytes()
    new_train = _entries(out / "train.txt")
    assert new_train[: len(train)] == train
    copies = new_train[len(train) :]
    assert len(copies) == 2 * len(train)
    rows = _rows(out)
    assert [(r["png"], int(r["copy"])) for r in rows] == [
        (p, int(Path(p).stem[-1])) for p, _ in copies
    ]
    label_of = {Path(p).stem: label for p, label in train}
    val_stems = {Path(p).stem for p, _ in val}
    for row, (png, label) in zip(rows, copies, strict=True):
        clip = Path(row["source_clip"])
        assert clip.parent.name == "train" and label_of[clip.stem] == label
        assert Path(png).name.startswith(clip.stem + ".aug")
        noise = Path(row["noise_clip"])
        assert label_of[noise.stem] == 0 and noise != clip and noise.stem not in val_stems
        assert 5 <= float(row["snr_db"]) <= 20 and -6 <= float(row["gain_db"]) <= 6
        assert read_png(png).shape == (129, 30)
    assert info.augmented == SETTINGS and info.augmented_from == str(lists)
    assert info.counts["val"] == source.counts["val"]
    assert sum(info.counts["train"].values()) == 3 * sum(source.counts["train"].values())
    assert ListsManifest.require(out) == info


def test_no_op_copy_is_the_original_spectrogram(lists, tmp_path):
    none = AugmentSettings(copies=1, snr_db=None, gain_db=(0, 0), shift_s=0, freq_shift_hz=0)
    augment_lists(lists, out=tmp_path / "aug", settings=none, workers=1)
    row = _rows(tmp_path / "aug")[0]
    original = (
        Path(ListsManifest.require(lists).spectrogram_root)
        / "train"
        / (Path(row["source_clip"]).stem + ".png")
    )
    assert row["noise_clip"] == "" and row["snr_db"] == ""
    np.testing.assert_array_equal(read_png(row["png"]), read_png(original))


def test_deterministic_per_seed_and_resumable(lists, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    augment_lists(lists, out=a, settings=SETTINGS, workers=1)
    augment_lists(lists, out=b, settings=SETTINGS, workers=2)
    augment_lists(lists, out=c, settings=AugmentSettings(copies=2, seed=2), workers=1)
    pngs = sorted(p.name for p in (a / "train").iterdir())
    assert pngs == sorted(p.name for p in (b / "train").iterdir())
    assert all((a / "train" / n).read_bytes() == (b / "train" / n).read_bytes() for n in pngs)
    assert any((a / "train" / n).read_bytes() != (c / "train" / n).read_bytes() for n in pngs)
    # Interrupted: one PNG and lists.json missing. A rerun remakes exactly that PNG.
    gone, kept = a / "train" / pngs[0], a / "train" / pngs[1]
    want, stamp = gone.read_bytes(), kept.stat().st_mtime_ns
    gone.unlink()
    (a / "lists.json").unlink()
    augment_lists(lists, out=a, settings=SETTINGS, workers=1)
    assert gone.read_bytes() == want and kept.stat().st_mtime_ns == stamp
    assert (a / CSV_FILE).read_bytes() == (b / CSV_FILE).read_text().replace(
        str(b), str(a)
    ).encode()
    with pytest.raises(UpcallError, match="other settings"):
        augment_lists(lists, out=a, settings=AugmentSettings(copies=3, seed=1), workers=1)


def test_bad_clip_reported_rest_done_and_lmdb_builds(lists, tmp_path, capsys):
    info = ListsManifest.require(lists)
    train = _entries(lists / "train.txt")
    bad = Path(info.data_dir) / "train" / (Path(train[0][0]).stem + ".aiff")
    bad.write_bytes(b"not audio")
    out = tmp_path / "aug"
    assert main(["augment", str(lists), "--copies", "1", "--out", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"{bad}: not a readable audio file (Format not recognised)" in err
    # A clip whose drawn noise clip is the bad one fails too, naming it; a rerun after the bad
    # clip is fixed makes exactly those copies (the draws do not depend on what could be read).
    failed = {Path(line.split(": ")[0]) for line in err[:-1]}
    assert all(line.endswith("(Format not recognised)") for line in err[:-1])
    assert "failed (listed above)" in err[-1]
    sources = {Path(r["source_clip"]) for r in _rows(out)}
    assert bad in failed and not sources & failed and len(sources) == len(train) - len(failed)
    ds = build_dataset(out, out=tmp_path / "ds", settings=DatasetSettings(size=None, workers=1))
    assert sum(ds.counts["train"].values()) == len(train) + len(sources)
    assert ds.counts["val"] == info.counts["val"]
