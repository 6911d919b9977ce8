"""DIGITS lists from a Kaggle-layout directory: splits, balancing, formats and input errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from upcall.data.lists import make_lists
from upcall.data.listsfolder import ListSettings, ListsManifest
from upcall.data.render import ensure
from upcall.errors import UpcallError

N_WHALE, N_OTHER = 30, 70


def make_data(root: Path, labels: list[int], *, tests: int = 0) -> Path:
    """train.csv and real 2 s, 2000 Hz clips (the spectrograms are made by make_lists)."""
    for sub in ("train", "test"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["clip_name,label"]
    names = [f"train/train{k}.aiff" for k in range(1, len(labels) + 1)]
    names += [f"test/test{k}.aiff" for k in range(1, tests + 1)]
    for name in names:
        noise = (rng.standard_normal(4000) * 3000).astype(np.int16)
        soundfile.write(root / name, noise, 2000, subtype="PCM_16", format="AIFF")
    rows += [f"train{k}.aiff,{label}" for k, label in enumerate(labels, start=1)]
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def labels() -> list[int]:
    return np.random.default_rng(5).permutation([1] * N_WHALE + [0] * N_OTHER).tolist()


@pytest.fixture
def data(tmp_path, labels) -> Path:
    return make_data(tmp_path / "data", labels)


def read_list(path: Path) -> list[tuple[str, int]]:
    return [
        (p, int(label))
        for p, label in (line.rsplit(" ", 1) for line in path.read_text().splitlines())
    ]


def clip_numbers(entries) -> list[int]:
    return [int(Path(p).stem.removeprefix("train")) for p, _ in entries]


def test_stratified_split_counts_are_exact(data, tmp_path, labels):
    info = make_lists(data, out=tmp_path / "lists", settings=ListSettings(seed=3))
    assert info.counts == {
        "train": {"not-whale": 63, "whale": 27},
        "val": {"not-whale": 7, "whale": 3},
    }
    train, val = read_list(tmp_path / "lists/train.txt"), read_list(tmp_path / "lists/val.txt")
    assert sorted(clip_numbers(train) + clip_numbers(val)) == list(range(1, 101))
    assert all(labels[k - 1] == label for k, (_, label) in zip(clip_numbers(val), val, strict=True))
    again = make_lists(data, out=tmp_path / "again", settings=ListSettings(seed=3))
    other = make_lists(data, out=tmp_path / "other", settings=ListSettings(seed=4))
    assert (tmp_path / "again/val.txt").read_text() == (tmp_path / "lists/val.txt").read_text()
    assert (tmp_path / "other/val.txt").read_text() != (tmp_path / "lists/val.txt").read_text()
    assert again.counts == other.counts == info.counts


def test_ordered_split_takes_first_and_last_rows(data, tmp_path):
    make_lists(
        data, out=tmp_path / "lists", settings=ListSettings(split="ordered", val_fraction=0.15)
    )
    assert clip_numbers(read_list(tmp_path / "lists/train.txt")) == list(range(1, 86))
    assert clip_numbers(read_list(tmp_path / "lists/val.txt")) == list(range(86, 101))


@pytest.mark.parametrize(
    ("balance", "train_counts"),
    [
        ("undersample", {"not-whale": 27, "whale": 27}),
        ("oversample", {"not-whale": 63, "whale": 63}),
    ],
)
def test_balance_changes_the_training_list_only(data, tmp_path, balance, train_counts):
    plain = make_lists(data, out=tmp_path / "plain", settings=ListSettings(seed=1))
    info = make_lists(data, out=tmp_path / "bal", settings=ListSettings(seed=1, balance=balance))
    assert info.counts == {"train": train_counts, "val": plain.counts["val"]}
    assert (tmp_path / "bal/val.txt").read_text() == (tmp_path / "plain/val.txt").read_text()
    plain_train = clip_numbers(read_list(tmp_path / "plain/train.txt"))
    train = clip_numbers(read_list(tmp_path / "bal/train.txt"))
    assert set(train) <= set(plain_train)
    if balance == "oversample":  # 27 whales -> 63: each twice, 9 of them three times
        whales = [
            k
            for k, (_, label) in zip(train, read_list(tmp_path / "bal/train.txt"), strict=True)
            if label == 1
        ]
        assert sorted(np.bincount(whales)[np.unique(whales)].tolist()) == [2] * 18 + [3] * 9


def test_files_and_formats(tmp_path, labels):
    data = make_data(tmp_path / "data", labels, tests=12)
    info = make_lists(data, out=tmp_path / "lists", settings=ListSettings(test=True))
    first = (tmp_path / "lists/train.txt").read_text().splitlines()[0]
    assert first == f"{data.resolve()}/train/train1.png {labels[0]}"
    test_lines = (tmp_path / "lists/test.txt").read_text().splitlines()
    assert test_lines[:2] == [
        f"{data.resolve()}/test/test1.png 0",
        f"{data.resolve()}/test/test2.png 0",
    ]
    assert (
        test_lines[9] == f"{data.resolve()}/test/test10.png 0"
    )  # natural order, not test1, test10, test11
    assert (tmp_path / "lists/labels.txt").read_text() == "not-whale\nwhale\n"
    saved = json.loads((tmp_path / "lists/lists.json").read_text())
    assert saved == info.to_json() and ListsManifest.read(tmp_path / "lists") == info
    assert saved["format"] == 1 and saved["labels"] == ["not-whale", "whale"]
    assert saved["spectrograms"]["mode"] == "tutorial"
    assert saved["spectrograms"]["data_dir"] == str(data.resolve())
    assert saved["spectrogram_root"] == str(data.resolve()) and saved["test_images"] == 12
    assert (saved["split"], saved["val_fraction"], saved["balance"], saved["seed"]) == (
        "random",
        0.1,
        "none",
        0,
    )
    with Image.open(tmp_path / "lists/class_histogram.png") as im:
        assert im.format == "PNG" and im.size == (600, 400)


def test_spectrogram_root_elsewhere(data, tmp_path):
    root = ensure(data, out=tmp_path / "spec", mode="enhanced", workers=1)
    info = make_lists(data, out=tmp_path / "lists", settings=ListSettings(spectrogram_root=root))
    assert info.spectrograms.mode == "enhanced"
    assert (tmp_path / "lists/train.txt").read_text().startswith(f"{root.resolve()}/train/")
    assert not (data / "train" / "train1.png").exists()


def test_missing_png_is_remade_in_the_roots_mode(data, tmp_path):
    root = ensure(data, out=tmp_path / "spec", mode="enhanced", workers=1)
    kept = root / "train" / "train1.png"
    kept_mtime = kept.stat().st_mtime_ns
    (root / "train" / "train3.png").unlink()
    info = make_lists(data, out=tmp_path / "lists", settings=ListSettings(spectrogram_root=root))
    assert info.spectrograms.mode == "enhanced"
    assert (root / "train" / "train3.png").is_file()
    assert kept.stat().st_mtime_ns == kept_mtime  # not wiped and remade as tutorial


def test_png_older_than_its_clip_is_remade(data, tmp_path):
    make_lists(data, out=tmp_path / "lists")
    png, clip = data / "train" / "train2.png", data / "train" / "train2.aiff"
    png.write_bytes(b"stale")  # as if made from the clip before a synth --force rewrote it
    os.utime(clip, ns=(png.stat().st_mtime_ns + 10**9,) * 2)
    make_lists(data, out=tmp_path / "lists")
    with Image.open(png) as im:
        assert im.size == (30, 129)


def test_lists_json_is_removed_before_the_lists_are_rewritten(data, tmp_path, monkeypatch):
    import upcall.data.lists

    make_lists(data, out=tmp_path / "lists")
    assert (tmp_path / "lists/lists.json").is_file()

    def die(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(upcall.data.lists, "write_histogram", die)
    with pytest.raises(RuntimeError):
        make_lists(data, out=tmp_path / "lists", settings=ListSettings(seed=9))
    assert not (tmp_path / "lists/lists.json").exists()


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("train1.aiff,0\n", r"train\.csv:1: missing header 'clip_name,label'"),
        (
            "clip_name,label\ntrain1.aiff,0\ntrain2.aiff,2\n",
            r"train\.csv:3: label '2' of train2\.aiff is not 0 or 1",
        ),
        (
            "clip_name,label\ntrain1.aiff,0\ntrain1.aiff,1\n",
            r"train\.csv:3: clip train1\.aiff is listed twice \(first on line 2\)",
        ),
        (
            "clip_name,label\ntrain1.aiff,0\ntrain9.aiff,1\n",
            r"train\.csv:3: clip train9\.aiff not found in .*train",
        ),
        ("clip_name,label\ntrain1.aiff\n", r"train\.csv:2: expected 2 fields"),
        ("", r"train\.csv:1: missing header"),
        (b"clip_name,label\ntrain1.aiff,0\n\xff\xfe,1\n", r"train\.csv: not UTF-8 text"),
        (
            b"clip_name,label\ntrain1.aiff,0\ntra\x00in2.aiff,1\n",
            r"train\.csv:3: clip name 'tra\\x00in2\.aiff' has control",
        ),
    ],
)
def test_bad_train_csv(tmp_path, csv, message):
    data = make_data(tmp_path / "data", [0, 1])
    if isinstance(csv, bytes):
        (data / "train.csv").write_bytes(csv)
    else:
        (data / "train.csv").write_text(csv)
    with pytest.raises(UpcallError, match=message):
        make_lists(data, out=tmp_path / "lists")
    assert not (tmp_path / "lists" / "lists.json").exists()


def test_bad_settings():
    with pytest.raises(UpcallError, match="--val-fraction"):
        ListSettings(val_fraction=1.0)
    with pytest.raises(UpcallError, match="--balance"):
        ListSettings(balance="smote")
    with pytest.raises(UpcallError, match=r"^--seed must be zero or positive, got -1$"):
        ListSettings(seed=-1)


def test_make_lists_sh_is_a_door_to_upcall_lists(data):
    script = Path(__file__).resolve().parents[2] / "make_lists.sh"
    done = subprocess.run(
        ["bash", str(script), str(data), "--split", "ordered"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and (data / "lists/lists.json").is_file()
    assert json.loads((data / "lists/lists.json").read_text())["split"] == "ordered"


def test_missing_spectrograms_are_made_by_the_spectrogram_step(tmp_path):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(1, 5):
        noise = (rng.standard_normal(4000) * 3000).astype(np.int16)
        soundfile.write(
            data / "train" / f"train{k}.aiff", noise, 2000, subtype="PCM_16", format="AIFF"
        )
    (data / "train.csv").write_text(
        "clip_name,label\ntrain1.aiff,0\ntrain2.aiff,1\ntrain3.aiff,0\ntrain4.aiff,1\n"
    )
    info = make_lists(data, out=tmp_path / "lists", settings=ListSettings(val_fraction=0.5))
    assert info.spectrograms.mode == "tutorial"
    with Image.open(data / "train" / "train3.png") as im:
        assert im.mode == "L" and im.size == (30, 129)
    assert info.counts == {
        "train": {"not-whale": 1, "whale": 1},
        "val": {"not-whale": 1, "whale": 1},
    }


def lists_cli(capsys, *argv) -> tuple[int, str, list[str]]:
    from upcall.cli import main

    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err.strip().splitlines()


def test_lists_after_spectrograms_out_root_lists_those_or_asks(tmp_path, capsys):
    data, root = make_data(tmp_path / "data", [0, 1] * 10), tmp_path / "enhanced"
    rc, out, _ = lists_cli(
        capsys, "spectrograms", data, "--mode", "enhanced", "--out", root, "--workers", 1
    )
    assert rc == 0 and f"next: upcall lists {data} --spectrogram-root {root}" in out
    # the README's step 3 without --spectrogram-root: the PNGs just made, said on stderr
    rc, _, err = lists_cli(capsys, "lists", data, "--out", tmp_path / "l1")
    assert rc == 0 and err == [
        f"upcall lists: listing the enhanced-mode spectrograms in {root} (made by `upcall "
        f"spectrograms {data} --out {root}`); --spectrogram-root chooses others"
    ]
    info = ListsManifest.read(tmp_path / "l1")
    assert info.spectrograms.mode == "enhanced" and info.spectrogram_root == str(root)
    assert (tmp_path / "l1/train.txt").read_text().startswith(f"{root}/train/")
    assert not list((data / "train").glob("*.png"))  # no tutorial PNGs made beside the clips

    # tutorial PNGs beside the clips too: which ones is the user's choice, not a silent default
    assert lists_cli(capsys, "spectrograms", data, "--workers", 1)[0] == 0
    rc, _, err = lists_cli(capsys, "lists", data, "--out", tmp_path / "l2")
    assert rc == 1 and err == [
        f"upcall lists: error: {data}: spectrograms of these clips are in {data} (tutorial "
        f"mode), {root} (enhanced mode); say which to list with --spectrogram-root ROOT "
        f"({data} for the PNGs beside the clips)"
    ]
    assert not (tmp_path / "l2").exists()
    for chosen, mode in ((root, "enhanced"), (data, "tutorial")):
        out = tmp_path / f"l-{mode}"
        rc, _, err = lists_cli(capsys, "lists", data, "--out", out, "--spectrogram-root", chosen)
        assert rc == 0 and err == [] and ListsManifest.read(out).spectrograms.mode == mode


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("/etc/passwd", "is an absolute path"),
        ("../test/test1.aiff", "is a path into another folder"),
        ("test/test1.aiff", "is a path into another folder"),
    ],
)
def test_train_csv_paths_outside_train_are_refused(tmp_path, capsys, name, problem):
    data = make_data(tmp_path / "data", [0, 1], tests=1)
    (data / "train.csv").write_text(f"clip_name,label\ntrain1.aiff,0\n{name},1\n")
    rc, _, err = lists_cli(capsys, "lists", data, "--out", tmp_path / "lists")
    assert rc == 1 and err == [
        f"upcall lists: error: {data / 'train.csv'}:3: clip name {name!r} {problem}; give the "
        + (
            "file name of a clip in train/ (e.g. train1.aiff)"
            if "absolute" in problem
            else "file name of a clip in train/ (e.g. train1.aiff; test/ clips are never "
            "training data)"
        )
    ]
    assert not (tmp_path / "lists").exists() and not list(data.rglob("*.png"))


def test_hand_made_lists_are_never_overwritten(tmp_path, capsys):
    data = make_data(tmp_path / "data", [0, 1] * 5)
    out = tmp_path / "lists"
    out.mkdir()
    (out / "train.txt").write_text("/my/own.png 1\n")
    rc, _, err = lists_cli(capsys, "lists", data, "--out", out)
    assert rc == 1 and err == [
        f"upcall lists: error: {out}: holds train.txt that upcall lists did not write (no "
        "lists.json); choose another --out"
    ]
    assert (out / "train.txt").read_text() == "/my/own.png 1\n"
    rc, _, _ = lists_cli(capsys, "lists", data, "--out", tmp_path / "ours")
    assert rc == 0
    rc, _, _ = lists_cli(capsys, "lists", data, "--out", tmp_path / "ours")  # its own: rewritten
    assert rc == 0


def test_a_validation_list_without_whales_is_noted(tmp_path, capsys):
    data = make_data(tmp_path / "data", [1] * 3 + [0] * 17)  # 10 % of 3 whales rounds to 0
    rc, _, err = lists_cli(capsys, "lists", data, "--out", tmp_path / "lists")
    assert rc == 0 and err == [
        "upcall lists: note: the validation list has no whale clips, so its AUC cannot be "
        "computed; raise --val-fraction or add clips of that class"
    ]
