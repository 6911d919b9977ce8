"""A tiny real dataset for engine tests: spectrogram-sized PNGs whose classes differ by level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from upcall.data.dataset import DatasetSettings, build_dataset


def level_dataset(root: Path, labels: list[int], *, n_train: int = 12, level: int = 100) -> Path:
    """129×30 PNGs (noise in 0..99, + ``level`` grey for label 1: 100 parts the classes, less
    makes them overlap), the first ``n_train`` for training and the rest for validation, built
    into ROOT/ds by ``build_dataset``; returns ROOT/ds."""
    rng = np.random.default_rng(0)
    (root / "png").mkdir()
    lines = []
    for i, label in enumerate(labels):
        image = (rng.integers(0, 100, (129, 30)) + level * label).astype(np.uint8)
        Image.fromarray(image).save(root / "png" / f"{i}.png")
        lines.append(f"{root / 'png' / f'{i}.png'} {label}\n")
    lists = root / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("".join(lines[:n_train]))
    (lists / "val.txt").write_text("".join(lines[n_train:]))
    (lists / "labels.txt").write_text("not-whale\nwhale\n")
    build_dataset(lists, out=root / "ds", settings=DatasetSettings(size=None, workers=1))
    return root / "ds"
