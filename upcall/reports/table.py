"""The comparison table of ``upcall report``: one :class:`Row` per trained job, read from its
files (summary.json, config.json, solver.prototxt), and the table as text, Markdown and CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from upcall.errors import UpcallError
from upcall.job.config import JobConfig
from upcall.job.records import read_summary


@dataclass(frozen=True)
class Row:
    """One job in the comparison table."""

    job: str  # the job folder relative to the folder holding all reported jobs: unique
    network: str
    engine: str
    dataset: str | None  # what it trained on (a classical job: its clips' folder), shortened
    base_lr: float | None  # None for the classical baseline: it has no solver
    epochs: float | None  # None for the classical baseline: it is fitted, not trained in epochs
    final_accuracy: float | None
    final_auc: float | None
    final_loss: float | None
    best_accuracy: float | None
    best_auc: float | None
    best_loss: float | None
    images_per_second: float | None
    wall_seconds: float


def training_data(job: Path) -> str | None:
    """The folder a job learnt from: its dataset, or a classical job's clips; None: unknown."""
    try:
        config = JobConfig.read(job)
    except UpcallError:
        return None
    if config is None:
        return None
    if config.network_source.get("kind") == "classical":
        return config.network_source.get("data_dir")
    return config.dataset


def job_row(job: Path, name: str | None = None, dataset: str | None = None) -> Row:
    """The table row of one trained job, named ``name`` (default its folder name)."""
    summary = read_summary(job)
    final, best = summary.final, summary.best
    classical = summary.engine == "classical"
    return Row(
        job=name or job.name,
        network=summary.network,
        engine=summary.engine,
        dataset=dataset,
        base_lr=None if classical else _base_lr(job),
        epochs=None if classical else summary.epochs,
        final_accuracy=final and final.val_accuracy,
        final_auc=final and final.val_auc,
        final_loss=final and final.val_loss,
        best_accuracy=best and best.val_accuracy,
        best_auc=best and best.val_auc,
        best_loss=best and best.val_loss,
        images_per_second=summary.train_images_per_second,
        wall_seconds=summary.wall_seconds,
    )


def _base_lr(job: Path) -> float | None:
    config = JobConfig.read(job)
    if config is not None:
        return config.base_lr
    solver = job / "solver.prototxt"
    if solver.exists():
        from upcall.proto import caffe_pb2, read_text

        return read_text(solver, caffe_pb2.SolverParameter()).base_lr
    return None


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


COLUMNS = tuple(f.name for f in fields(Row))  # the table's columns, in Row's order


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(getattr(r, c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def text_table(rows: list[Row]) -> str:
    cells = [list(COLUMNS)] + [[_fmt(getattr(r, c)) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return (
        "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells
        )
        + "\n"
    )


def csv_table(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return buf.getvalue()
