"""``upcall train JOB_DIR``: train a job folder made by ``upcall nets`` with one of the engines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upcall.job.records import Summary

HELP = "train a job directory (solver + train_val prototxt on its LMDBs) with Caffe's semantics"


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall.engines import add_engine_arguments

    parser.add_argument(
        "job",
        type=Path,
        metavar="JOB_DIR",
        help="a job directory from `upcall nets` (or its solver.prototxt)",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest complete snapshot in JOB_DIR",
    )
    start.add_argument(
        "--restart",
        action="store_true",
        help="delete the results of an earlier run (snapshots, metrics, summary) and train anew; "
        "without --resume or --restart a job that holds results is refused",
    )
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from upcall.engines import get_engine, options_from_args
    from upcall.job.spec import job_dir

    # Ctrl-C raises upcall.errors.Interrupted, which the CLI reports (once) with exit status 130
    engine = get_engine(args.engine, options_from_args(args))
    summary = engine.train(args.job, resume=args.resume, restart=args.restart)
    print_summary(job_dir(args.job), summary)
    return 0


def print_summary(job: Path, summary: Summary) -> None:
    """Where the results went and the last validation figures."""
    print(
        f"trained {summary.network} for {summary.iterations} iterations "
        f"({summary.epochs:.2f} epochs) in {summary.wall_seconds:.1f} s "
        f"[{summary.engine} engine]"
    )
    final = summary.final
    if final is not None:

        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        print(
            f"validation: accuracy {fmt(final.val_accuracy)}, AUC {fmt(final.val_auc)}, "
            f"loss {fmt(final.val_loss)}"
        )
    print(f"curves:    {job / 'curves.png'}")
    print(f"summary:   {job / summary.FILE}")
    if summary.snapshots:
        print(f"snapshot:  {job / summary.snapshots[-1]}")
