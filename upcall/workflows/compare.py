"""``upcall fit ... --from RUN``: an earlier run's figures beside the new run's, on the same clips.

Both models score the new run's validation clips (OUT/lists/val.txt, each PNG's clip in DATA's
train/), each read as its own dataset was (:func:`upcall.inference.load_model`), so the figures
differ only by the model. Printed as a table — AUC, and precision, recall, F1 and false alarms
at a score of 0.5 — over all the validation clips and over each part (DATA's own, the verified
ones where ``fit --add-verified`` added them), and written to OUT/comparison.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_text

COMPARISON = "comparison.json"
THRESHOLD = 0.5  # the score at which a clip counts as an up-call (classify's label)


def validation_clips(out: Path) -> list[tuple[Path, int]]:
    """(clip, label) of each line of OUT/lists/val.txt, in order."""
    from upcall.data.dataset import read_list
    from upcall.data.listsfolder import ListsManifest
    from upcall.data.traincsv import read_train_csv

    data = Path(ListsManifest.require(out / "lists").data_dir)
    names = {Path(c.name).stem: c.name for c in read_train_csv(data / "train.csv")}
    return [
        (data / "train" / names[png.stem], int(label))
        for png, label in read_list(out / "lists" / "val.txt", n_labels=2)
    ]


def figures(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | int | None]:
    """AUC, and precision, recall, F1 and false alarms at :data:`THRESHOLD`."""
    from upcall.metrics import auc

    called, whale = scores > THRESHOLD, labels == 1
    tp, fp, fn = (
        int((called & whale).sum()),
        int((called & ~whale).sum()),
        int((~called & whale).sum()),
    )
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    value = auc(scores, whale)
    return {
        "clips": len(labels),
        "auc": None if math.isnan(value) else value,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alarms": fp,
    }


def score_clips(model_path: Path, clips: list[Path]) -> np.ndarray:
    """The up-call probability ``model_path``'s model gives each clip (latest snapshot)."""
    from upcall.inference import load_model

    model = load_model(model_path)
    report = BatchReport("clips")
    rows = {r["input"]: r[model.positive_class] for r in model.classify(clips, report=report)}
    if report.failures:
        item, why = report.failures[0]
        raise UpcallError(f"{item}: {why} (scoring the validation clips with {model_path})")
    return np.array([rows[str(c)] for c in clips], np.float64)


def compare(run: Path, out: Path, new_job: Path, *, parts: dict[str, set[str]]) -> dict:
    """Score RUN's job and ``new_job`` on OUT's validation clips; print and write the table.
    ``parts``: a name (``DATA``, ``verified``) → the clip names it holds."""
    from upcall.workflows.verified import run_job

    old_job = run_job(run)
    clips = validation_clips(out)
    paths, labels = [c for c, _ in clips], np.array([y for _, y in clips])
    scores = {"before": score_clips(old_job, paths), "after": score_clips(new_job, paths)}
    groups = {"all": np.ones(len(paths), bool)}
    for name, members in parts.items():
        groups[name] = np.array([p.name in members for p in paths])
    table = {
        group: {k: figures(s[mask], labels[mask]) for k, s in scores.items()}
        for group, mask in groups.items()
        if mask.any()
    }
    result = {"before": str(old_job), "after": str(new_job), "threshold": THRESHOLD,
              "figures": table}  # fmt: skip
    atomic_write_text(out / COMPARISON, json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"written to {out / COMPARISON}")
    return result


def print_table(result: dict) -> None:
    print(f"\nbefore: {result['before']}\nafter:  {result['after']}")
    print(f"{'validation clips':<24}{'':>10}{'before':>10}{'after':>10}")
    for group, pair in result["figures"].items():
        n = pair["before"]["clips"]
        label = f"{group} ({n})"
        for key in ("auc", "precision", "recall", "f1", "false_alarms"):
            cells = [pair[k][key] for k in ("before", "after")]
            text = [
                "n/a" if v is None else f"{v:d}" if isinstance(v, int) else f"{v:.4f}"
                for v in cells
            ]
            print(f"{label:<24}{key:>10}{text[0]:>10}{text[1]:>10}")
            label = ""
