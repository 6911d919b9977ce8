"""A contact sheet of random records per class from a dataset's LMDB (DIGITS's "Explore the db").

Spectrograms are drawn the right way up (lowest frequency at the bottom), as the report draws them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from upcall.data.datum import datum_to_array, open_db
from upcall.data.listsfolder import read_labels
from upcall.errors import UpcallError
from upcall.fsutil import atomic_path

HELP = "write a contact sheet PNG of random images per class from a dataset's train or val LMDB"

TILE = 128  # longest side of one thumbnail, px
COLUMNS = 8  # thumbnails per row
GAP = 4  # px between thumbnails
HEADER = 20  # px of the caption strip above each class
MAX_PER_CLASS = 256  # 32 rows of thumbnails per class: a sheet a screen can still scroll through


def _labels(dataset: Path) -> list[str]:
    path = dataset / "labels.txt"
    if not path.is_file():
        raise UpcallError(f"{dataset}: no labels.txt; is this an upcall lmdb dataset?")
    return read_labels(path)


def _key_label(db_path: Path, key: bytes) -> int:
    label = key.rsplit(b"_", 1)[-1]
    if not label.isdigit():
        raise UpcallError(f"{db_path}: key {key!r} is not DIGITS's '%08d_%d' (index_label)")
    return int(label)


def tile_size(height: int, width: int) -> tuple[int, int]:
    """Thumbnail (height, width): the image scaled so its longest side is TILE (never enlarged)."""
    scale = min(1.0, TILE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def sheet_size(height: int, width: int, *, classes: int, per_class: int) -> tuple[int, int]:
    """(height, width) of the contact sheet for images of height × width."""
    th, tw = tile_size(height, width)
    cols = min(COLUMNS, per_class)
    rows = -(-per_class // cols)
    return classes * (HEADER + rows * (th + GAP)), cols * (tw + GAP) + GAP


def contact_sheet(
    db_path: str | Path, labels: list[str], *, per_class: int = 16, seed: int = 0
) -> Image.Image:
    """Pick ``per_class`` random records of each label (fewer if the DB has fewer) and tile them.

    The sheet is as tall as the largest pick needs, not ``per_class``: asking for more images
    than the DB holds does not add empty rows.
    """
    db_path = Path(db_path)
    rng = np.random.default_rng(seed)
    with open_db(db_path) as env, env.begin() as txn:
        keys = list(txn.cursor().iternext(keys=True, values=False))
        # The label is in the key (%08d_%d), so sampling needs no record decoded.
        key_labels = np.array([_key_label(db_path, k) for k in keys], dtype=np.int64)
        picks = [
            rng.permutation(np.flatnonzero(key_labels == c))[:per_class] for c in range(len(labels))
        ]
        first = next((p[0] for p in picks if len(p)), None)
        if first is None:
            raise UpcallError(f"{db_path}: no records to show")
        per_class = max(len(p) for p in picks)
        where = f"{db_path}: record {keys[first].decode('ascii', 'replace')}"
        height, width = datum_to_array(txn.get(keys[first]), where=where)[0].shape[1:]
        th, tw = tile_size(height, width)
        sheet_h, sheet_w = sheet_size(height, width, classes=len(labels), per_class=per_class)
        sheet = Image.new("L", (sheet_w, sheet_h), 255)
        draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
        cols = min(COLUMNS, per_class)
        y0 = 0
        for c, rows in enumerate(picks):
            total = int(np.sum(key_labels == c))
            draw.text(
                (GAP, y0 + 4), f"{c}: {labels[c]} ({len(rows)} of {total})", fill=0, font=font
            )
            for i, k in enumerate(rows):
                image = datum_to_array(
                    txn.get(keys[k]),
                    where=f"{db_path}: record {keys[k].decode('ascii', 'replace')}",
                )[0]
                # Row 0 is the lowest frequency (ARCHITECTURE.md §2): drawn at the bottom, as
                # the report draws spectrograms, so an up-call rises from left to right.
                upright = np.ascontiguousarray(image[0][::-1])
                thumb = Image.fromarray(upright).resize((tw, th), Image.BILINEAR)
                sheet.paste(
                    thumb, (GAP + (i % cols) * (tw + GAP), y0 + HEADER + (i // cols) * (th + GAP))
                )
            y0 += HEADER + (-(-per_class // cols)) * (th + GAP)
    return sheet


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    parser.add_argument("dataset", type=Path, help="a dataset folder written by `upcall lmdb`")
    parser.add_argument(
        "--db", choices=("train", "val", "test"), default="train", help="which LMDB (default train)"
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=16,
        help=f"images per class (default 16; at most {MAX_PER_CLASS} and what the DB holds)",
    )
    cliargs.add_seed(parser, "seed of the random pick")
    cliargs.add_out(parser, "PNG to write (default DATASET/explore_<db>.png)", metavar="PNG")


def run(args: argparse.Namespace) -> int:
    if args.per_class < 1:
        raise UpcallError(f"--per-class must be at least 1, not {args.per_class}")
    per_class = min(args.per_class, MAX_PER_CLASS)
    if per_class < args.per_class:
        print(
            f"upcall explore: --per-class {args.per_class} capped to {per_class}", file=sys.stderr
        )
    sheet = contact_sheet(
        args.dataset / f"{args.db}_db",
        _labels(args.dataset),
        per_class=per_class,
        seed=args.seed,
    )
    out = args.out or args.dataset / f"explore_{args.db}.png"
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"wrote {out} ({sheet.width}x{sheet.height})")
    return 0
