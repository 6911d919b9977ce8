"""Per-clip validation scores of a job, for the HTML report's threshold figures.

metrics.jsonl keeps only aggregate figures, so a network job's validation LMDB is scored again
here with its latest snapshot (:func:`upcall.inference.load_model`, torch imported only
then); the classical baseline wrote its scores in val_scores.csv. Each record is named by
the PNG of the dataset's val list it was made from, when that list still matches the LMDB.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from upcall.data.listsfolder import LABELS
from upcall.errors import UpcallError
from upcall.inference.labels import positive_index
from upcall.job.records import SUMMARY, Summary

BATCH = 256  # images per forward pass: bounds memory for AlexNet-sized inputs


@dataclass(frozen=True)
class ValScores:
    """A job's validation set, scored for its positive class (:mod:`upcall.inference.labels`:
    "whale")."""

    labels: np.ndarray  # int64 (N,)
    scores: np.ndarray  # float64 (N,): probability of the positive class
    class_names: tuple[str, ...]
    names: tuple[str, ...]  # per sample: its PNG or clip, else its LMDB key
    images: np.ndarray | None = None  # uint8 (N, H, W) as stored; None: a classical job

    @property
    def positive(self) -> int:
        """The label of the positive class."""
        return positive_index(self.class_names)


@dataclass(frozen=True)
class AtThreshold:
    """The positive class called at ``score >= threshold``."""

    threshold: float
    recall: float | None  # None: no positive sample
    precision: float | None  # None: nothing called positive
    confusion: np.ndarray  # int64 (2, 2): rows true (negative, positive), columns called


def at_threshold(val: ValScores, threshold: float) -> AtThreshold:
    """Recall, precision and the confusion matrix of the positive class at ``threshold``."""
    positive = val.labels == val.positive
    called = val.scores >= threshold
    confusion = np.array(
        [
            [np.sum(~positive & ~called), np.sum(~positive & called)],
            [np.sum(positive & ~called), np.sum(positive & called)],
        ],
        np.int64,
    )
    tp = confusion[1, 1]
    n_pos, n_called = confusion[1].sum(), confusion[:, 1].sum()
    return AtThreshold(
        threshold,
        float(tp / n_pos) if n_pos else None,
        float(tp / n_called) if n_called else None,
        confusion,
    )


def majority_accuracy(labels: np.ndarray) -> float:
    """The accuracy of always answering the most common class: what accuracy must beat."""
    return float(np.bincount(labels).max() / len(labels))


@dataclass
class Scorer:
    """Scores jobs, loading each validation LMDB once (a sweep's jobs share one dataset)."""

    backend: str | None = None  # None: torch where it imports, else real Caffe (needs no torch)
    gpu: int | None = None
    _sets: dict = field(default_factory=dict)  # LMDB path -> (images, labels, names)
    _done: dict = field(default_factory=dict)  # (job, summary mtime) -> ValScores

    def score(self, job: Path) -> ValScores:
        """The validation scores of a finished job (UpcallError when they cannot be had)."""
        summary = Summary.require(job, "training has not finished")  # before stat: one line
        key = (job.resolve(), (job / SUMMARY).stat().st_mtime_ns)
        if key not in self._done:
            self._done[key] = (
                classical_scores(job) if summary.engine == "classical" else self._network(job)
            )
        return self._done[key]

    def _network(self, job: Path) -> ValScores:
        from upcall.inference import load_model
        from upcall.inference.sources import default_backend
        from upcall.job.spec import load_job

        spec = load_job(job)
        if spec.test_data is None:
            raise UpcallError(f"{job / 'train_val.prototxt'}: has no validation (TEST) Data layer")
        source = spec.test_data.source
        if source not in self._sets:
            self._sets[source] = _load_val(source)
        images, labels, names = self._sets[source]
        model = load_model(job, backend=self.backend or default_backend(), gpu=self.gpu)
        probs = np.concatenate(
            [model.probabilities(images[i : i + BATCH]) for i in range(0, len(images), BATCH)]
        )
        return ValScores(
            labels=labels,
            scores=probs[:, model.positive_index].astype(np.float64),
            class_names=tuple(model.class_names),
            names=names,
            images=images[:, 0],
        )


def _load_val(source: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The val LMDB's images and labels, and the name of each record (see :func:`val_names`)."""
    from upcall.data.datum import iter_db, load_db

    images, labels = load_db(source)
    keys = [key for key, _, _ in iter_db(source)]
    return images, labels, val_names(source.parent, keys, labels)


def val_names(dataset: Path, keys: list[str], labels: np.ndarray) -> tuple[str, ...]:
    """Each val record's PNG, found by replaying ``upcall lmdb``'s shuffle of the val list.

    Only when the list still has exactly the records' count and labels (no image was left out,
    the list was not remade); otherwise the records keep their LMDB keys.
    """
    from upcall.data.dataset import DBS, DatasetManifest, read_list
    from upcall.data.dbwriter import record_order

    info = DatasetManifest.read(dataset)
    if info is None or not info.lists_dir:
        return tuple(keys)
    listed = Path(info.lists_dir) / "val.txt"
    try:
        items = read_list(listed, n_labels=int(labels.max()) + 1)
    except UpcallError:
        return tuple(keys)
    if len(items) != len(labels):
        return tuple(keys)
    order = record_order(info.seed, DBS.index("val"), len(items))
    paths = [items[i] for i in order]
    if any(label != int(lab) for (_, label), lab in zip(paths, labels, strict=True)):
        return tuple(keys)
    return tuple(str(path) for path, _ in paths)


def classical_scores(job: Path) -> ValScores:
    """The scores the classical baseline wrote (JOB/val_scores.csv: clip, label, score)."""
    from upcall.classical.baseline import SCORES

    path = job / SCORES
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        labels = np.array([int(r["label"]) for r in rows], np.int64)
        scores = np.array([float(r["score"]) for r in rows], np.float64)
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from e
    except (KeyError, ValueError, TypeError) as e:
        raise UpcallError(f"{path}: not a clip,label,score table ({e})") from e
    if not rows:
        raise UpcallError(f"{path}: holds no scores")
    return ValScores(labels, scores, LABELS, tuple(r["clip"] for r in rows))
