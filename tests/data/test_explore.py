"""`upcall explore`: a contact sheet of random records per class."""

from __future__ import annotations

import argparse

import lmdb
import numpy as np
import pytest
from PIL import Image

from upcall.data import explore
from upcall.data.datum import array_to_datum
from upcall.errors import UpcallError


def make_dataset(root, counts: dict[int, int], *, size=(256, 256)):
    (root / "train_db").mkdir(parents=True)
    (root / "labels.txt").write_text("not-whale\nwhale\n")
    labels = [c for c, n in counts.items() for _ in range(n)]
    env = lmdb.open(str(root / "train_db"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, label in enumerate(labels):
            # Class 1 images are white, class 0 black, so the tiles show where each class went.
            image = np.full(size, 255 * label, np.uint8)
            txn.put(b"%08d_%d" % (i, label), array_to_datum(image, label, encoding="png"))
    env.close()
    return root


def run(dataset, *extra):
    parser = argparse.ArgumentParser()
    explore.configure(parser)
    return explore.run(parser.parse_args([str(dataset), *extra]))


def test_contact_sheet_size_and_tiles(tmp_path):
    ds = make_dataset(tmp_path / "ds", {0: 2, 1: 5})
    assert run(ds, "--per-class", "3", "--seed", "1") == 0
    sheet = np.asarray(Image.open(ds / "explore_train.png"))
    # Two classes × (20 px caption + one row of 128 px tiles + 4 px gap); three columns of 132 + 4.
    assert sheet.shape == (2 * (20 + 132), 3 * 132 + 4)
    assert explore.sheet_size(256, 256, classes=2, per_class=3) == sheet.shape
    top, bottom = 20, 152 + 20  # first tile row of each class
    assert (sheet[top : top + 128, 4:132] == 0).all()  # class 0: black tiles
    assert (sheet[top : top + 128, 136:264] == 0).all()
    # Class 0 has only two records: its third slot stays blank (white), not a black tile.
    assert (sheet[top : top + 128, 268:396] == 255).all()
    assert (sheet[bottom : bottom + 128, 4:396] == 255).all()  # class 1: three white tiles


def test_small_images_are_not_enlarged_and_rows_wrap(tmp_path):
    ds = make_dataset(tmp_path / "ds", {0: 20, 1: 20}, size=(129, 30))
    run(ds, "--per-class", "10", "--out", str(tmp_path / "sheet.png"))
    with Image.open(tmp_path / "sheet.png") as im:
        # tile (128, 30) from 129 × 30; 10 per class wrap to 2 rows of 8 columns.
        assert (im.height, im.width) == (2 * (20 + 2 * 132), 8 * 34 + 4)


def test_bad_keys_and_missing_labels(tmp_path):
    (tmp_path / "ds/train_db").mkdir(parents=True)
    env = lmdb.open(str(tmp_path / "ds/train_db"))
    with env.begin(write=True) as txn:
        txn.put(b"00000000_train1.png", array_to_datum(np.zeros((2, 2), np.uint8), 0))
    env.close()
    with pytest.raises(UpcallError, match=r"no labels\.txt"):
        run(tmp_path / "ds")
    (tmp_path / "ds/labels.txt").write_text("a\nb\n")
    with pytest.raises(UpcallError, match="is not DIGITS's '%08d_%d'"):
        run(tmp_path / "ds")


def test_bad_record_and_labels_name_the_file(tmp_path):
    ds = make_dataset(tmp_path / "ds", {0: 1})
    env = lmdb.open(str(ds / "train_db"))
    with env.begin(write=True) as txn:
        txn.delete(b"00000000_0")
        txn.put(b"0000\xff_0", b"not a datum")
    env.close()
    with pytest.raises(UpcallError, match=rf"^{ds / 'train_db'}: record 0000\ufffd_0: "):
        run(ds)
    (ds / "labels.txt").write_bytes(b"a\n\xff\n")
    with pytest.raises(UpcallError, match=r"labels\.txt: not UTF-8 text \(byte 2\)"):
        run(ds)


def test_spectrograms_are_drawn_the_right_way_up(tmp_path, capsys):
    """A synthetic up-sweep (row 0 = lowest frequency, ARCHITECTURE.md §2) through the real
    `upcall lmdb` and `upcall explore`: on the sheet it rises from left to right."""
    from upcall.cli import main

    (tmp_path / "png").mkdir()
    lines = []
    for i in range(4):
        image = np.zeros((129, 30), np.uint8)
        for t in range(30):
            image[20 + 3 * t, t] = 255  # frequency row grows with time: an up-call
        Image.fromarray(image).save(tmp_path / "png" / f"{i}.png")
        lines.append(f"{tmp_path / 'png' / f'{i}.png'} {i % 2}\n")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("".join(lines))
    (lists / "val.txt").write_text("".join(lines))
    (lists / "labels.txt").write_text("not-whale\nwhale\n")
    ds = tmp_path / "ds"
    assert main(["lmdb", str(lists), "--out", str(ds), "--size", "native", "--workers", "1"]) == 0
    assert main(["explore", str(ds), "--per-class", "1"]) == 0
    sheet = np.asarray(Image.open(ds / "explore_train.png"))
    tile = sheet[20 : 20 + 128, 4 : 4 + 30].astype(int)  # class 0's thumbnail (128 × 30)
    rows = [int(np.argmax(tile[:, t])) for t in (2, 15, 27)]  # brightest row, top = 0
    assert rows[0] > rows[1] > rows[2], rows  # later in time = higher up = higher frequency
    assert rows[0] > 128 - 30 and rows[2] < 128 - 90  # near the bottom at first, high at last
