"""The fitted baseline in a job folder: what it holds, and classifying clips with it.

    JOB/templates.npy   float32 (K, 2, h, w): the template bank ([:, 0] on H, [:, 1] on V)
    JOB/model.pkl       the fitted scikit-learn HistGradientBoostingClassifier (pickle)
    JOB/config.json     JobConfig; network_source = {"kind": "classical", "features": …,
                        "bank": …, "classifier": …, "read": …, "lists": …, "sklearn": version}

A pickle runs code when it is loaded: load only jobs you made (as with any pickled model).
"""

from __future__ import annotations

import dataclasses
import functools
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from upcall.audio.clip import AUDIO_SUFFIXES, read_clip
from upcall.classical.features import (
    FEATURES_VERSION,
    FeatureSettings,
    clip_features,
    one_thread,
)
from upcall.data.listsfolder import LABELS
from upcall.data.pngroot import ReadOptions
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_bytes
from upcall.job.config import JobConfig
from upcall.parallel import map_chunks

KIND = "classical"  # config.json's network_source["kind"]: upcall.inference.sources.JOB_KINDS
TEMPLATES = "templates.npy"
MODEL = "model.pkl"


@dataclass(frozen=True)
class ClassifierSettings:
    """scikit-learn's HistGradientBoostingClassifier; early stopping off, so every training
    clip is used and the validation list stays untouched until the end."""

    learning_rate: float = 0.05
    max_iter: int = 300
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0

    def make(self, seed: int):
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            **dataclasses.asdict(self), early_stopping=False, random_state=seed
        )


def features_chunk(
    paths: Sequence[str], *, bank: np.ndarray, settings: FeatureSettings, read: ReadOptions
) -> list[tuple[np.ndarray | None, str | None]]:
    """(features, None) per readable clip, (None, problem) per bad one: a worker's share."""
    out: list[tuple[np.ndarray | None, str | None]] = []
    with one_thread():
        for path in paths:
            try:
                samples = read_clip(path, **dataclasses.asdict(read))
                out.append((clip_features(samples, bank, settings), None))
            except (UpcallError, ValueError, OSError) as e:
                out.append((None, str(e).removeprefix(f"{path}: ")))
    return out


def compute_features(
    paths: Sequence[Path],
    *,
    bank: np.ndarray,
    settings: FeatureSettings,
    read: ReadOptions,
    report: BatchReport,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Features of every good clip on all cores: (float32 (N_good, F), bool (N,) good mask).

    Each bad clip is reported on one line through ``report`` and left out (no good clip at
    all: a (0, 0) array).
    """
    fn = functools.partial(features_chunk, bank=bank, settings=settings, read=read)
    rows, good = [], np.zeros(len(paths), bool)
    results = map_chunks(
        fn, [str(p) for p in paths], workers=workers, chunk=64, desc="features", unit="clip"
    )
    for i, (path, (row, problem)) in enumerate(zip(paths, results, strict=True)):
        report.record(path, problem)
        if row is not None:
            rows.append(row)
            good[i] = True
    return (np.stack(rows) if rows else np.empty((0, 0), np.float32)), good


def save(folder: Path, *, bank: np.ndarray, classifier: object) -> None:
    """templates.npy and model.pkl, each written atomically."""
    import io

    buf = io.BytesIO()
    np.save(buf, bank.astype(np.float32), allow_pickle=False)
    atomic_write_bytes(folder / TEMPLATES, buf.getvalue())
    atomic_write_bytes(folder / MODEL, pickle.dumps(classifier, protocol=pickle.HIGHEST_PROTOCOL))


class ClassicalModel:
    """A baseline job, loaded: classifies audio clips (it needs the sound, not a PNG)."""

    kind = KIND
    class_names: tuple[str, ...] = LABELS

    def __init__(self, job: Path, config: JobConfig, bank: np.ndarray, classifier: object) -> None:
        self.job, self.config, self.bank, self.classifier = job, config, bank, classifier
        source = config.network_source
        self.settings = _settings(FeatureSettings, source.get("features", {}))
        self.read = _settings(ReadOptions, source.get("read", {}))

    @classmethod
    def load(cls, job: Path) -> ClassicalModel:
        job = Path(job)
        config = JobConfig.require(job, f"is {job} a job from `upcall baseline`?")
        for name in (TEMPLATES, MODEL):
            if not (job / name).is_file():
                raise UpcallError(f"{job / name}: not found (has `upcall baseline` finished?)")
        made = config.network_source.get("features", {}).get("version", 1)
        if made != FEATURES_VERSION:
            raise UpcallError(
                f"{job}: made by an older `upcall baseline` (features version {made}, this one "
                f"computes version {FEATURES_VERSION}); refit it with `upcall baseline DATA "
                f"--out {job} --force`"
            )
        try:
            bank = np.load(job / TEMPLATES, allow_pickle=False)
            classifier = pickle.loads((job / MODEL).read_bytes())
        except (OSError, ValueError, pickle.UnpicklingError, EOFError) as e:
            raise UpcallError(f"{job}: cannot load the fitted baseline: {e}") from e
        except (ModuleNotFoundError, AttributeError, TypeError) as e:  # another scikit-learn's
            import sklearn

            made = config.network_source.get("sklearn", "an unknown version")
            raise UpcallError(
                f"{job / MODEL}: cannot load ({type(e).__name__}: {e}): fitted with scikit-learn "
                f"{made}, installed is {sklearn.__version__}; refit with `upcall baseline`"
            ) from None
        if bank.ndim != 4 or bank.shape[1] != 2:
            raise UpcallError(f"{job / TEMPLATES}: shape {bank.shape}, expected (K, 2, h, w)")
        return cls(job, config, bank, classifier)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """float32 (N, F) → float64 (N, 2): [P(not-whale), P(whale)]."""
        with one_thread():  # the classifier's module is loaded: unpickling it imported it
            return np.asarray(self.classifier.predict_proba(features), np.float64)  # type: ignore[attr-defined]

    def classify(
        self, files: Sequence[Path], *, report: BatchReport, read: ReadOptions | None = None
    ) -> list[dict]:
        """One row per good clip, as ``upcall classify`` prints them; bad clips are reported.

        ``read`` overrides how clips are made to fit (default: as the job's training clips).
        """
        for path in files:
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                raise UpcallError(
                    f"{path}: {self.job} is the classical baseline, which classifies audio "
                    f"clips ({', '.join(AUDIO_SUFFIXES)}), not spectrogram images"
                )
        x, good = compute_features(
            files, bank=self.bank, settings=self.settings, read=read or self.read, report=report
        )
        kept = [p for p, ok in zip(files, good, strict=True) if ok]
        rows = []
        for path, p in zip(kept, self.probabilities(x) if kept else [], strict=True):
            rows.append(
                {
                    "input": str(path),
                    "label": self.class_names[int(np.argmax(p))],
                    **{n: float(v) for n, v in zip(self.class_names, p, strict=True)},
                }
            )
        return rows


def _settings(cls: type, value: dict):
    """A settings dataclass from its JSON object (lists back to tuples, as they were written)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in value.items() if k in fields}
    )
