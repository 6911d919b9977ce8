"""``upcall report JOBS_DIR...``: compare trained jobs (the tutorial's step 7, "compare the models").

Reads only the job directory format (summary.json, metrics.jsonl, config.json), so jobs from any
engine compare side by side. Writes a table (stdout, report.csv, report.md) and comparison.png
(validation AUC and loss against epoch, one line per job); ``upcall report`` also writes
report.html (:mod:`upcall.reports.html`), for which each finished job's validation set is scored
again per clip (:mod:`upcall.reports.scores`).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_text
from upcall.job.curves import gap, scale_loss_axis
from upcall.job.records import (
    SUMMARY,
    TestRecord,
    read_metrics,
    validation_records,
)
from upcall.plotting import pyplot, save_png
from upcall.reports.table import Row, csv_table, job_row, markdown_table, text_table, training_data

HELP = (
    "compare trained jobs: a table of final/best validation results, a comparison plot and "
    "report.html (one page with the tutorial's questions answered and its figures)"
)


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


def unique_names(paths: list[Path]) -> dict[Path, str]:
    """Each path relative to the folder holding them all, so names are unique across folders
    (two sweeps' ``whalenet-lr0.01``); a single folder's jobs keep their folder names. Symlinks
    are not followed: a job is named as it was given."""
    absolute = {p: Path(os.path.abspath(p)) for p in paths}
    if not absolute:
        return {}
    root = Path(os.path.commonpath([a.parent for a in absolute.values()]))
    return {p: a.relative_to(root).as_posix() for p, a in absolute.items()}


def plot_comparison(jobs: dict[str, tuple[Row, list[TestRecord]]], out: Path) -> None:
    """Validation AUC (left) and validation loss (right) against epoch, one line per job; a
    classical job, which has no epochs, is a horizontal reference line at its AUC."""
    plt = pyplot()

    fig, (ax_auc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.5))
    all_tests = []
    for name, (row, tests) in jobs.items():
        if row.epochs is None:
            if row.final_auc is not None:
                ax_auc.axhline(row.final_auc, color="grey", linestyle="--",
                               label=f"{name} (no epochs)")  # fmt: skip
            continue
        all_tests += tests
        epochs = [r.epoch for r in tests]
        ax_auc.plot(epochs, [gap(r.val_auc) for r in tests], marker=".", label=name)
        ax_loss.plot(epochs, [gap(r.val_loss) for r in tests], marker=".", label=name)
    ax_auc.set(xlabel="epoch", ylabel="validation AUC", title="validation AUC")
    ax_loss.set(xlabel="epoch", ylabel="validation loss", title="validation loss")
    scale_loss_axis(ax_loss, [], all_tests)
    ax_auc.legend(fontsize="small")
    fig.tight_layout()
    save_png(fig, out, dpi=80)


@dataclass(frozen=True)
class Found:
    """The jobs under the paths given to ``report``, with their names and statuses."""

    jobs: list[Path]
    names: dict[Path, str]  # unique row names (see unique_names)
    status: dict[Path, str]  # see job_status
    datasets: dict[Path, str | None]  # the data each job learnt from, shortened

    @classmethod
    def under(cls, paths: list[Path]) -> Found:
        jobs = find_jobs(paths)
        data = {j: training_data(j) for j in jobs}
        short = unique_names([Path(d) for d in set(data.values()) if d])
        return cls(
            jobs,
            unique_names(jobs),
            {j: job_status(j) for j in jobs},
            {j: short[Path(d)] if d else None for j, d in data.items()},
        )

    @property
    def pending(self) -> list[Path]:
        return [j for j in self.jobs if self.status[j] != "done"]


def make_report(
    paths: list[Path],
    *,
    out: Path,
    html: bool = False,
    threshold: float = 0.5,
    scorer=None,
    presence: list[Path] = (),
) -> list[Row]:
    """Write report.csv, report.md and comparison.png for every trained job under ``paths``,
    and with ``html`` report.html (see :func:`write_html`; ``scorer`` keeps scores between calls;
    ``presence``: ``upcall presence`` output folders shown in a section of their own).

    Jobs not trained yet (not started, running, stopped) are listed one per line and left out of
    the table (report.html shows them as unfinished): that is no failure. A finished job that
    cannot be read is reported and the rest still make the report, then BatchFailed is raised.
    """
    batch = BatchReport("jobs")
    found = Found.under(paths)
    rows, trained = [], {}
    for job in found.jobs:
        name = found.names[job]
        if found.status[job] != "done":
            continue
        try:
            row = job_row(job, name, found.datasets[job])
            trained[name] = (row, validation_records(read_metrics(job)))
            rows.append(row)
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
    else:
        print("no job has finished training yet: no table")
    for job in found.pending:
        print(f"{found.names[job]}: {found.status[job]} (not in the table)")
    if html:
        write_html(found, out=out, threshold=threshold, scorer=scorer, title=_title(paths),
                   presence=presence)  # fmt: skip
    batch.finish()
    return rows


def _title(paths: list[Path]) -> str:
    return "upcall report: " + ", ".join(p.resolve().name for p in paths)


def job_status(job: Path) -> str:
    """The job's status as the table and the page show it: "done", "running", "not started"..."""
    from upcall.engines import JobStatus, local_status

    return {
        JobStatus.DONE: "done",
        JobStatus.RUNNING: "running",
        JobStatus.RESUMABLE: "stopped (resumable)",
        JobStatus.NEW: "not started",
    }[local_status(job)]


def write_html(
    found: Found,
    *,
    out: Path,
    threshold: float = 0.5,
    scorer=None,
    title: str = "upcall report",
    presence: list[Path] = (),
) -> None:
    """Write OUT/report.html for the ``found`` jobs.

    Search figures (``upcall search``'s figures/*.png beside its trials/) are taken from the
    folders holding the jobs.
    """
    from upcall.reports.entries import Entry, collect_entry
    from upcall.reports.html import render
    from upcall.reports.scores import Scorer

    scorer = scorer or Scorer()
    entries = []
    for job in found.jobs:
        name, dataset = found.names[job], found.datasets[job]
        try:
            row_of = lambda j, n=name, d=dataset: job_row(j, n, d)  # noqa: E731
            entries.append(collect_entry(job, row_of, scorer, threshold, found.status[job], name))
        except UpcallError as e:
            entries.append(Entry(job, "cannot be read", job.name, None, note=str(e), name=name))
    folders = {j.parent.parent if j.parent.name == "trials" else j.parent for j in found.jobs}
    figure_dirs = sorted(f / "figures" for f in folders if (f / "figures").is_dir())
    page = render(entries, title=title, threshold=threshold, figure_dirs=figure_dirs,
                  presence_dirs=list(presence))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.html", page)
    print(f"written: {out / 'report.html'}")


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    parser.add_argument(
        "jobs",
        nargs="+",
        type=Path,
        metavar="JOBS_DIR",
        help="job directories, or directories holding them (or holding them in trials/)",
    )
    cliargs.add_out(
        parser,
        "where report.csv/.md, comparison.png and report.html go (default: the first "
        "JOBS_DIR, or its parent when it is a job itself)",
    )
    cliargs.add_threshold(
        parser,
        "report.html's whale recall, precision and confusion matrices count the clips at or "
        "above it",
    )
    parser.add_argument(
        "--no-html",
        action="store_true",
        help="write only the table and comparison.png (report.html scores every finished "
        "job's validation set again, which takes a while for large networks)",
    )
    parser.add_argument(
        "--presence",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="an `upcall presence` output folder to show in report.html (repeatable)",
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
    from upcall.reports.scores import Scorer

    if not 0.0 <= args.threshold <= 1.0:
        raise UpcallError(f"--threshold must be a probability in [0, 1], not {args.threshold}")
    if args.presence and args.no_html:
        raise UpcallError("--presence shows in report.html: not with --no-html")
    for folder in args.presence:
        if not (folder / "presence.json").is_file():
            raise UpcallError(f"{folder}: no presence.json (run `upcall presence ... --out DIR`)")
    if args.watch is not None and (args.watch <= 0 or args.no_html):
        raise UpcallError("--watch needs a positive number of seconds, and report.html")
    first = args.jobs[0]
    out = args.out or (first.parent if _is_job(first) else first)
    scorer = Scorer()  # finished jobs are scored once, however often --watch rewrites the page
    while True:
        failed = None
        try:
            make_report(
                args.jobs, out=out, html=not args.no_html, threshold=args.threshold,
                scorer=scorer, presence=args.presence,
            )  # fmt: skip
        except BatchFailed as e:  # a finished job that cannot be read: exit 1, after watching
            failed = e
        pending = Found.under(args.jobs).pending
        if args.watch is None or not pending:
            if failed is not None:
                raise failed
            return 0
        print(f"{len(pending)} job(s) not finished; next report in {args.watch:g} s")
        time.sleep(args.watch)
