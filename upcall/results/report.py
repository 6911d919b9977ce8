"""``upcall report JOBS_DIR...``: compare trained jobs (the tutorial's step 7, "compare the models").

Reads only the job directory format (summary.json, metrics.jsonl, config.json), so jobs from any
engine compare side by side. Writes a table (stdout, report.csv, report.md) and comparison.png
(validation AUC and loss against epoch, one line per job); ``upcall report`` also writes
report.html (:mod:`upcall.results.html`), for which each finished job's validation set is scored
again per clip (:mod:`upcall.results.scores`).
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_text
from upcall.model.jobconfig import JobConfig
from upcall.plotting import pyplot, save_png
from upcall.results.curves import gap, scale_loss_axis
from upcall.results.records import (
    SUMMARY,
    TestRecord,
    read_metrics,
    read_summary,
    validation_records,
)

HELP = (
    "compare trained jobs: a table of final/best validation results, a comparison plot and "
    "report.html (one page with the tutorial's questions answered and its figures)"
)


@dataclass(frozen=True)
class Row:
    """One job in the comparison table."""

    job: str
    network: str
    engine: str
    base_lr: float | None
    epochs: float
    final_accuracy: float | None
    final_auc: float | None
    final_loss: float | None
    best_accuracy: float | None
    best_auc: float | None
    best_loss: float | None
    images_per_second: float | None
    wall_seconds: float


def find_jobs(paths: list[Path]) -> list[Path]:
    """Job directories named directly, or one level below a named directory (or below its
    ``trials/`` folder, where ``upcall search`` keeps its jobs), in name order."""
    jobs = []
    for path in paths:
        if not path.is_dir():
            raise UpcallError(f"{path}: not a directory")
        if _is_job(path):
            jobs.append(path)
        else:
            found = sorted(p for p in path.iterdir() if p.is_dir() and _is_job(p))
            if (path / "trials").is_dir():
                found += sorted(p for p in (path / "trials").iterdir() if p.is_dir() and _is_job(p))
            if not found:
                raise UpcallError(
                    f"{path}: holds no job directories (no solver.prototxt or "
                    f"{SUMMARY} in it or its sub-directories)"
                )
            jobs.extend(found)
    return jobs


def _is_job(path: Path) -> bool:
    return (path / SUMMARY).exists() or (path / "solver.prototxt").exists()


def job_row(job: Path) -> Row:
    """The table row of one trained job."""
    summary = read_summary(job)
    final, best = summary.final, summary.best
    return Row(
        job=job.name,
        network=summary.network,
        engine=summary.engine,
        base_lr=_base_lr(job),
        epochs=summary.epochs,
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


COLUMNS = (
    "job",
    "network",
    "engine",
    "base_lr",
    "epochs",
    "final_accuracy",
    "final_auc",
    "final_loss",
    "best_accuracy",
    "best_auc",
    "best_loss",
    "images_per_second",
    "wall_seconds",
)


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


def plot_comparison(jobs: dict[Path, list[TestRecord]], out: Path) -> None:
    """Validation AUC (left) and validation loss (right) against epoch, one line per job."""
    plt = pyplot()

    fig, (ax_auc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.5))
    all_tests = []
    for job, tests in jobs.items():
        all_tests += tests
        epochs = [r.epoch for r in tests]
        ax_auc.plot(epochs, [gap(r.val_auc) for r in tests], marker=".", label=job.name)
        ax_loss.plot(epochs, [gap(r.val_loss) for r in tests], marker=".", label=job.name)
    ax_auc.set(xlabel="epoch", ylabel="validation AUC", title="validation AUC")
    ax_loss.set(xlabel="epoch", ylabel="validation loss", title="validation loss")
    scale_loss_axis(ax_loss, [], all_tests)
    ax_auc.legend(fontsize="small")
    fig.tight_layout()
    save_png(fig, out, dpi=80)


def make_report(
    paths: list[Path], *, out: Path, html: bool = False, threshold: float = 0.5, scorer=None
) -> list[Row]:
    """Write report.csv, report.md and comparison.png for every trained job under ``paths``,
    and with ``html`` report.html (see :func:`write_html`; ``scorer`` keeps scores between calls).

    Untrained jobs are reported one per line and skipped (report.html shows them as unfinished);
    the rest still make the report, then BatchFailed is raised.
    """
    batch = BatchReport("jobs")
    rows, trained = [], {}
    jobs = find_jobs(paths)
    for job in jobs:
        try:
            row, tests = job_row(job), validation_records(read_metrics(job))
            rows.append(row)
            trained[job] = tests
            batch.ok()
        except UpcallError as e:
            batch.fail(job, str(e))
    if rows:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "report.csv", csv_table(rows))
        atomic_write_text(out / "report.md", markdown_table(rows))
        plot_comparison(trained, out / "comparison.png")
        print(text_table(rows), end="")
        print(f"written: {out / 'report.csv'}, {out / 'report.md'}, {out / 'comparison.png'}")
    if html:
        write_html(jobs, out=out, threshold=threshold, scorer=scorer, title=_title(paths))
    batch.finish()
    return rows


def _title(paths: list[Path]) -> str:
    return "upcall report: " + ", ".join(p.resolve().name for p in paths)


def job_status(job: Path) -> str:
    """The job's status as the page shows it: "done", "running", "not started", ..."""
    from upcall.engines.base import JobStatus, local_status

    return {
        JobStatus.DONE: "done",
        JobStatus.RUNNING: "running",
        JobStatus.RESUMABLE: "stopped (resumable)",
        JobStatus.NEW: "not started",
    }[local_status(job)]


def write_html(
    jobs: list[Path],
    *,
    out: Path,
    threshold: float = 0.5,
    scorer=None,
    title: str = "upcall report",
) -> bool:
    """Write OUT/report.html for ``jobs``; returns whether any job is unfinished.

    Search figures (``upcall search``'s figures/*.png beside its trials/) are taken from the
    folders holding the jobs.
    """
    from upcall.results.entries import Entry, collect_entry
    from upcall.results.html import render
    from upcall.results.scores import Scorer

    scorer = scorer or Scorer()
    entries = []
    for job in jobs:
        try:
            entries.append(collect_entry(job, job_row, scorer, threshold, job_status(job)))
        except UpcallError as e:
            entries.append(Entry(job, "cannot be read", job.name, None, note=str(e)))
    folders = {j.parent.parent if j.parent.name == "trials" else j.parent for j in jobs}
    figure_dirs = sorted(f / "figures" for f in folders if (f / "figures").is_dir())
    page = render(entries, title=title, threshold=threshold, figure_dirs=figure_dirs)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.html", page)
    print(f"written: {out / 'report.html'}")
    return any(e.row is None for e in entries)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "jobs",
        nargs="+",
        type=Path,
        metavar="JOBS_DIR",
        help="job directories, or directories holding them (or holding them in trials/)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where report.csv/.md, comparison.png and report.html go (default: the first "
        "JOBS_DIR, or its parent when it is a job itself)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="P",
        help="report.html's whale recall, precision and confusion matrices count a clip as a "
        "whale call when its whale probability is at least P (default 0.5)",
    )
    parser.add_argument(
        "--no-html",
        action="store_true",
        help="write only the table and comparison.png (report.html scores every finished "
        "job's validation set again, which takes a while for large networks)",
    )
    parser.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="while jobs are still training, rewrite the report every SECONDS until all have "
        "finished (an open report.html reloads itself)",
    )


def run(args: argparse.Namespace) -> int:
    from upcall.errors import BatchFailed
    from upcall.results.scores import Scorer

    if not 0.0 <= args.threshold <= 1.0:
        raise UpcallError(f"--threshold must be a probability in [0, 1], not {args.threshold}")
    if args.watch is not None and (args.watch <= 0 or args.no_html):
        raise UpcallError("--watch needs a positive number of seconds, and report.html")
    first = args.jobs[0]
    out = args.out or (first.parent if _is_job(first) else first)
    scorer = Scorer()  # finished jobs are scored once, however often --watch rewrites the page
    while True:
        try:
            make_report(
                args.jobs, out=out, html=not args.no_html, threshold=args.threshold, scorer=scorer
            )
            return 0
        except BatchFailed:
            pending = [j for j in find_jobs(args.jobs) if job_status(j) != "done"]
            if args.watch is None or not pending:
                raise
            print(f"{len(pending)} job(s) not finished; next report in {args.watch:g} s")
            time.sleep(args.watch)
