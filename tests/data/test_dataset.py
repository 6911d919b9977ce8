"""`upcall lmdb`: the DIGITS dataset on real LMDBs — keys, shuffle, Datum fields, pixels, mean."""

from __future__ import annotations

import json
from pathlib import Path

import lmdb
import numpy as np
import pytest
from PIL import Image

from upcall.data import dbwriter
from upcall.data.dataset import (
    DatasetManifest,
    DatasetSettings,
    ImageShape,
    build_dataset,
    parse_size,
)
from upcall.data.datum import iter_db, load_db, read_mean
from upcall.data.resize import resize
from upcall.errors import BatchFailed, UpcallError
from upcall.proto import caffe_pb2

# lists.json as upcall wrote it before files carried a format (counts of the real lists aside).
OLD_LISTS_JSON = {
    "data_dir": "/data",
    "spectrogram_root": "/data",
    "spectrograms": {
        "mode": "tutorial",
        "nfft": 256,
        "noverlap": 128,
        "sample_rate": 2000,
        "height": 129,
        "width": 30,
        "fs": 2.0,
        "data_dir": "/data",
        "resample": False,
        "mixdown": False,
        "fit": "strict",
    },
    "split": "random",
    "val_fraction": 0.1,
    "balance": "none",
    "seed": 0,
    "counts": {"train": {"not-whale": 6, "whale": 6}, "val": {"not-whale": 2, "whale": 2}},
    "test_images": 0,
    "labels": ["not-whale", "whale"],
}


def make_lists(
    root: Path, n_train: int = 12, n_val: int = 4, *, test: int = 0, seed: int = 0
) -> Path:
    """Random 129×30 grey PNGs and DIGITS lists of them (labels alternate)."""
    rng = np.random.default_rng(seed)
    (root / "png").mkdir(parents=True)
    for name, n in (("train", n_train), ("val", n_val), ("test", test)):
        lines = []
        for k in range(n):
            path = root / "png" / f"{name}{k}.png"
            Image.fromarray(rng.integers(0, 256, (129, 30), dtype=np.uint8)).save(path)
            lines.append(f"{path} {0 if name == 'test' else k % 2}\n")
        if n:
            (root / f"{name}.txt").write_text("".join(lines))
    (root / "labels.txt").write_text("not-whale\nwhale\n")
    # The PNGs' root records their settings, as `upcall lmdb` checks them against lists.json.
    old = {**OLD_LISTS_JSON, "spectrogram_root": str(root / "png")}
    (root / "png" / "spectrograms.json").write_text(json.dumps(old["spectrograms"]))
    (root / "lists.json").write_text(json.dumps(old))
    return root


def sources(lists: Path, name: str) -> list[tuple[np.ndarray, int]]:
    out = []
    for line in (lists / f"{name}.txt").read_text().splitlines():
        path, label = line.rsplit(" ", 1)
        out.append((np.asarray(Image.open(path)), int(label)))
    return out


def records(db: Path) -> list[tuple[bytes, caffe_pb2.Datum]]:
    env = lmdb.open(str(db), readonly=True, lock=False)
    with env.begin() as txn:
        out = [(bytes(k), caffe_pb2.Datum.FromString(v)) for k, v in txn.cursor()]
    env.close()
    return out


@pytest.fixture
def lists(tmp_path) -> Path:
    return make_lists(tmp_path / "lists", test=3)


def source_order(lists: Path, out: Path, name: str) -> list[int]:
    """Which list line each record came from (every source image is distinct)."""
    resized = [resize(img, height=256, width=256) for img, _ in sources(lists, name)]
    x, _ = load_db(out / f"{name}_db")
    return [next(i for i, r in enumerate(resized) if np.array_equal(r, image[0])) for image in x]


@pytest.mark.parametrize("encoding", ["png", "none"])
def test_records_keys_and_pixels(lists, tmp_path, encoding):
    out = tmp_path / "ds"
    build_dataset(lists, out=out, settings=DatasetSettings(encoding=encoding, workers=1))
    recs = records(out / "train_db")
    src = sources(lists, "train")
    order = source_order(lists, out, "train")
    assert sorted(order) == list(range(12)) and order != list(range(12))  # a shuffle of all lines
    for i, ((key, datum), k) in enumerate(zip(recs, order, strict=True)):
        assert key == b"%08d_%d" % (i, src[k][1]) and datum.label == src[k][1]
        assert (datum.channels, datum.height, datum.width) == (1, 256, 256)
        assert datum.encoded == (encoding == "png")
        if encoding == "none":
            assert datum.data == resize(src[k][0], height=256, width=256).tobytes()
    assert next(key for key, _, _ in iter_db(out / "val_db")).startswith("00000000_")
    assert len(records(out / "test_db")) == 3


def test_shuffle_is_seeded(lists, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        build_dataset(lists, out=tmp_path / name, settings=DatasetSettings(seed=seed, workers=1))
    a, b, c = (source_order(lists, tmp_path / n, "train") for n in "abc")
    assert a == b and a != c


def test_mean_is_the_rounded_mean_of_the_training_images(lists, tmp_path):
    build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(workers=1))
    resized = np.stack([resize(img, height=256, width=256) for img, _ in sources(lists, "train")])
    expected = np.around(resized.astype(np.float64).mean(axis=0))
    mean = read_mean(tmp_path / "ds/mean.binaryproto")
    assert mean.shape == (1, 256, 256)
    np.testing.assert_array_equal(mean[0], expected)
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "ds/mean.png")), expected.astype(np.uint8)
    )


def test_dataset_json(lists, tmp_path):
    info = build_dataset(
        lists,
        out=tmp_path / "ds",
        settings=DatasetSettings(size=(64, 32), resize_mode="fill", seed=7, workers=1),
    )
    saved = json.loads((tmp_path / "ds/dataset.json").read_text())
    assert saved == info.to_json() and DatasetManifest.read(tmp_path / "ds") == info
    assert saved["format"] == 1 and saved["settings"]["size"] == [64, 32]
    assert saved["image"] == {"height": 64, "width": 32, "channels": 1}
    assert (saved["size"], saved["resize_mode"], saved["encoding"], saved["seed"]) == (
        "32x64",
        "fill",
        "png",
        7,
    )
    assert saved["counts"] == {
        "train": {"not-whale": 6, "whale": 6},
        "val": {"not-whale": 2, "whale": 2},
    }
    assert saved["test_images"] == 3 and saved["labels"] == ["not-whale", "whale"]
    assert saved["spectrograms"] == {"format": 1, **OLD_LISTS_JSON["spectrograms"]}
    assert saved["lists"] == {
        "format": 1,
        **OLD_LISTS_JSON,
        "spectrogram_root": str(tmp_path / "lists" / "png"),
        "spectrograms": saved["spectrograms"],
        "files": {},  # lists.json written before list digests were recorded
        "augmented": None,  # not made by `upcall augment`
        "augmented_from": None,
        "labels_digest": None,  # written before lists recorded what they were made from
        "clips_digest": None,
        "group_by": None,  # written before group splits (and for data without clips.csv)
        "group_seconds": None,
        "groups": None,
    }
    assert (tmp_path / "ds/labels.txt").read_text() == "not-whale\nwhale\n"
    x, _ = load_db(tmp_path / "ds/train_db")
    assert x.shape == (12, 1, 64, 32)


def test_native_png_reuses_the_file_bytes(lists, tmp_path):
    info = build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(size=None, workers=1))
    assert info.size == "native" and info.image == ImageShape(129, 30, 1)
    assert info.resize_mode == "none" and info.native
    files = {
        Path(line.rsplit(" ", 1)[0]).read_bytes()
        for line in (lists / "train.txt").read_text().splitlines()
    }
    assert {datum.data for _, datum in records(tmp_path / "ds/train_db")} == files


def test_parallel_build_equals_serial(tmp_path):
    lists = make_lists(tmp_path / "lists", n_train=150, n_val=2)
    for name, workers in (("one", 1), ("two", 2)):
        build_dataset(
            lists,
            out=tmp_path / name,
            settings=DatasetSettings(size=(16, 16), resize_mode="half_crop", workers=workers),
        )
    assert records(tmp_path / "one/train_db") == records(tmp_path / "two/train_db")


@pytest.mark.parametrize("mode", ["squash", "fill"])
def test_images_of_other_sizes_are_resized_in_their_own_batch(tmp_path, mode):
    # A chunk resizes same-sized images together; an odd one out must come out as if alone.
    lists = make_lists(tmp_path / "lists", n_train=6, n_val=1)
    path = Path((lists / "train.txt").read_text().splitlines()[2].rsplit(" ", 1)[0])
    odd = np.random.default_rng(5).integers(0, 256, (40, 70), dtype=np.uint8)
    Image.fromarray(odd).save(path)
    settings = DatasetSettings(size=(32, 32), resize_mode=mode, workers=2)
    build_dataset(lists, out=tmp_path / "ds", settings=settings)
    x, _ = load_db(tmp_path / "ds/train_db")
    order = np.random.default_rng((0, 0)).permutation(6)  # the seeded shuffle of train (db 0)
    pos = int(np.flatnonzero(order == 2)[0])
    rng = np.random.default_rng((0, 0, 2))  # the noise of list line 2
    np.testing.assert_array_equal(x[pos, 0], resize(odd, height=32, width=32, mode=mode, rng=rng))
    assert x.shape == (6, 1, 32, 32)


def test_interrupted_build_leaves_nothing_and_a_rerun_rebuilds(lists, tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    real = dbwriter.array_to_datum
    monkeypatch.setattr(dbwriter, "array_to_datum", failing)
    with pytest.raises(RuntimeError, match="injected"):
        build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(workers=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lists"]
    monkeypatch.setattr(dbwriter, "array_to_datum", real)
    build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(workers=1))
    assert len(records(tmp_path / "ds/train_db")) == 12
    # A failed rebuild keeps the finished dataset as it was.
    before = records(tmp_path / "ds/train_db")
    monkeypatch.setattr(dbwriter, "array_to_datum", failing)
    calls.clear()
    with pytest.raises(RuntimeError):
        build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(seed=9, workers=1))
    assert records(tmp_path / "ds/train_db") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "lists"]


def test_unreadable_images_are_reported_and_skipped(lists, tmp_path, capsys):
    bad = Path((lists / "train.txt").read_text().splitlines()[3].rsplit(" ", 1)[0])
    bad.write_bytes(b"not a png")
    with pytest.raises(BatchFailed, match="1 of 19 images failed"):
        build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(workers=1))
    assert f"{bad}: cannot read image" in capsys.readouterr().err
    keys = [k for k, _ in records(tmp_path / "ds/train_db")]
    assert len(keys) == 11 and keys[-1].startswith(b"00000010_")
    assert json.loads((tmp_path / "ds/dataset.json").read_text())["counts"]["train"] == {
        "not-whale": 6,
        "whale": 5,
    }


def test_bad_lists_and_settings(lists, tmp_path):
    (lists / "val.txt").write_text(f"{lists}/png/val0.png 0\n{lists}/png/val1.png 2\n")
    with pytest.raises(UpcallError, match=r"val\.txt:2: label 2 has no line in labels\.txt"):
        build_dataset(lists, out=tmp_path / "ds")
    (lists / "val.txt").write_text("no-label-here\n")
    with pytest.raises(UpcallError, match=r"val\.txt:1: expected 'PATH LABEL'"):
        build_dataset(lists, out=tmp_path / "ds")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/notes.txt").write_text("keep me")
    with pytest.raises(UpcallError, match=r"not a folder made by upcall lmdb .*; refusing"):
        build_dataset(lists, out=tmp_path / "mine")
    assert parse_size("256x128") == (128, 256) and parse_size("native") is None
    with pytest.raises(UpcallError, match="--size must be WIDTHxHEIGHT"):
        parse_size("256")


def test_native_size_skips_an_unreadable_first_image(lists, tmp_path, capsys):
    first = Path((lists / "train.txt").read_text().splitlines()[0].rsplit(" ", 1)[0])
    first.write_bytes(b"not a png")
    with pytest.raises(BatchFailed, match="1 of 19 images failed"):
        build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(size=None, workers=1))
    assert f"{first}: cannot read image" in capsys.readouterr().err
    info = json.loads((tmp_path / "ds/dataset.json").read_text())
    assert info["image"] == {"height": 129, "width": 30, "channels": 1}
    assert len(records(tmp_path / "ds/train_db")) == 11


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("train.txt", b"\xff\xfe 0\n", r"train\.txt: not UTF-8 text \(byte 0\)"),
        ("labels.txt", b"whale\n\xff\n", r"labels\.txt: not UTF-8 text \(byte 6\)"),
        ("lists.json", b"\xff{}", r"lists\.json: not valid JSON"),
        ("lists.json", b"[1, 2]", r"lists\.json: expected a JSON object, found list"),
    ],
)
def test_undecodable_inputs_name_the_file(lists, tmp_path, name, content, message):
    (lists / name).write_bytes(content)
    with pytest.raises(UpcallError, match=message):
        build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(workers=1))
    assert not (tmp_path / "ds").exists()


def test_negative_seed_and_zero_workers_are_refused(lists, tmp_path):
    with pytest.raises(UpcallError, match=r"^--seed must be zero or positive, got -1$"):
        DatasetSettings(seed=-1)
    with pytest.raises(UpcallError, match=r"^--workers must be at least 1, got 0$"):
        build_dataset(lists, out=tmp_path / "ds", settings=DatasetSettings(workers=0))


def _without_format(value):
    """A file's JSON as written before files carried a format (at every level)."""
    if isinstance(value, dict):
        return {k: _without_format(v) for k, v in value.items() if k != "format"}
    return value


def test_files_through_the_real_commands_and_their_readers(tmp_path):
    from upcall.audio.synth import SynthSettings
    from upcall.cli import main
    from upcall.data.listsfolder import ListsManifest
    from upcall.data.pngroot import SpectrogramSettings
    from upcall.inference.inputs import InputSpec
    from upcall.job.datasetinfo import load_dataset

    data, lists, ds = tmp_path / "data", tmp_path / "lists", tmp_path / "ds"
    assert main(["synth", str(data), "--n-train", "30", "--seed", "2", "--workers", "1"]) == 0
    assert main(["spectrograms", str(data), "--mode", "enhanced", "--workers", "1"]) == 0
    assert main(["lists", str(data), "--out", str(lists), "--val-fraction", "0.2"]) == 0
    assert main(["lmdb", str(lists), "--out", str(ds), "--size", "native", "--workers", "1"]) == 0
    assert SynthSettings.read(data) == SynthSettings(n_train=30, seed=2)
    spectrograms = SpectrogramSettings.require(data)
    listed = ListsManifest.require(lists)
    manifest = DatasetManifest.require(ds)
    assert listed.spectrograms == manifest.spectrograms == spectrograms
    assert manifest.lists == listed and manifest.settings.size is None
    assert manifest.counts["val"] == listed.counts["val"]
    assert sum(manifest.counts["train"].values()) + sum(manifest.counts["val"].values()) == 30
    on_disk = json.loads((ds / "dataset.json").read_text())
    assert on_disk["lists"]["spectrograms"]["range_db"] == [-5.0, 25.0]
    assert load_dataset(ds).info == on_disk and load_dataset(ds).val_count == 6
    spec = InputSpec.from_dataset_info(manifest)
    assert (spec.height, spec.width, spec.native, spec.spectrogram_mode) == (
        129,
        30,
        True,
        "enhanced",
    )
    # Files written before the format key existed read the same.
    for path in (ds / "dataset.json", lists / "lists.json", data / "spectrograms.json"):
        path.write_text(json.dumps(_without_format(json.loads(path.read_text()))))
    assert DatasetManifest.read(ds) == manifest and ListsManifest.read(lists) == listed
    assert load_dataset(ds).info == on_disk
    # A newer one is a one-line error naming the file.
    (lists / "lists.json").write_text(json.dumps({**listed.to_json(), "format": 2}))
    with pytest.raises(UpcallError) as e:
        build_dataset(lists, out=ds, settings=DatasetSettings(size=None, workers=1))
    assert str(e.value).startswith(f"{lists / 'lists.json'}: lists.json format 2 is not one")
    assert "\n" not in str(e.value)
