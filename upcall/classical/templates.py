"""The template bank: up-call patches cut from training clips, kept if they separate the classes.

The winners cut their templates by hand from training spectrograms. Here it is automatic and
seeded: cut one candidate from each of some whale clips of the training list (the box of the
template's size where the enhanced image H is brightest: the call, in a clip known to hold one),
score every candidate by how well its maximum correlation alone ranks a sample of other training
clips (AUC), and keep the best ones that are not near-copies of each other. Validation clips are
never looked at, so the validation AUC is honest.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from upcall.classical.features import FeatureSettings, match, one_thread
from upcall.metrics import auc
from upcall.parallel import map_chunks

Images = tuple[np.ndarray, np.ndarray]  # (H, V) of one clip, float32 (band rows, frames)


@dataclass(frozen=True)
class BankSettings:
    size: int = 12  # templates kept; each costs two correlations per clip (~0.07 ms)
    candidates: int = 48  # whale clips a candidate is cut from
    scoring_clips: int = 600  # other training clips the candidates are ranked on
    # two kept templates whose maxima correlate above this over the scoring clips are one
    # template twice: the second adds cost, not information
    max_similarity: float = 0.9


@dataclass(frozen=True)
class Bank:
    """The chosen templates and where they came from (for config.json and for a reader)."""

    templates: np.ndarray  # float32 (K, 2, h, w): [:, 0] cut from H, [:, 1] from V
    sources: tuple[str, ...]  # the clip each was cut from
    boxes: tuple[tuple[int, int], ...]  # (row, frame) of its top-left corner in the band image
    scores: tuple[float, ...]  # its AUC on the scoring clips


def cut(images: Images, shape: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """The (2, h, w) patch of H and V where H's box mean is highest, and its corner."""
    h, v = images
    means = np.lib.stride_tricks.sliding_window_view(h, shape).mean(axis=(-2, -1))
    r, c = np.unravel_index(int(np.argmax(means)), means.shape)
    box = (slice(r, r + shape[0]), slice(c, c + shape[1]))
    return np.stack([h[box], v[box]]), (int(r), int(c))


def _match_chunk(items: Sequence[Images], *, candidates: np.ndarray) -> list[np.ndarray]:
    """Max correlation of every candidate on H plus on V, for each clip: (M,) per clip."""
    with one_thread():
        return [
            match(h, candidates[:, 0])[:, 0] + match(v, candidates[:, 1])[:, 0] for h, v in items
        ]


def choose(
    sources: list[tuple[str, Images]],
    scoring: list[tuple[Images, int]],
    *,
    features: FeatureSettings,
    bank: BankSettings,
    workers: int | None = None,
) -> Bank:
    """The bank from candidate ``sources`` (name, images) ranked on ``scoring`` (images, label).

    The two lists must not share clips: a candidate matches its own clip perfectly.
    """
    cuts = [cut(images, features.template_shape) for _, images in sources]
    candidates = np.stack([patch for patch, _ in cuts]).astype(np.float32)
    fn = functools.partial(_match_chunk, candidates=candidates)
    items = [images for images, _ in scoring]
    maxima = np.stack(
        list(map_chunks(fn, items, workers=workers, chunk=32, desc="templates", unit="clip"))
    )  # (S, M)
    labels = np.array([label for _, label in scoring])
    aucs = np.array([auc(maxima[:, m], labels == 1) for m in range(len(candidates))])
    aucs = np.nan_to_num(aucs, nan=0.5)
    kept: list[int] = []
    # stable sort: equal AUCs keep the sources' (seeded) order, so the bank is one per seed
    for m in np.argsort(-aucs, kind="stable"):
        if len(kept) == bank.size:
            break
        if kept and _similar(maxima[:, m], maxima[:, kept]) > bank.max_similarity:
            continue
        kept.append(int(m))
    return Bank(
        templates=candidates[kept],
        sources=tuple(sources[m][0] for m in kept),
        boxes=tuple(cuts[m][1] for m in kept),
        scores=tuple(round(float(aucs[m]), 4) for m in kept),
    )


def _similar(column: np.ndarray, others: np.ndarray) -> float:
    """The largest absolute correlation of ``column`` (S,) with any column of ``others``."""
    a = column - column.mean()
    b = others - others.mean(axis=0)
    denom = np.sqrt((a**2).sum() * (b**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, (a @ b) / denom, 0.0)
    return float(np.abs(r).max())
