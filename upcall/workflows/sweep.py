"""The tutorial's sweep in one command: jobs for every (network, learning rate), train, compare.

``upcall sweep --dataset DS --networks alexnet,googlenet --lr 0.001,0.005,0.01,0.05 --out JOBS``
(also ``python scripts/run_sweep.py ...``) is ``upcall nets`` + ``upcall train`` per job +
``upcall report`` (JOBS/report.html and the table, as ``upcall report JOBS`` writes them). It is
safe to interrupt and rerun the same command: trained jobs are skipped, interrupted ones resume
from their last complete snapshot, ones without one start over, and a job that fails is
reported while the others go on.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from upcall.errors import BatchReport, Interrupted, UpcallError

if TYPE_CHECKING:
    from upcall.engines import Engine

HELP = (
    "train every (network, learning rate) job on a dataset and compare them (the tutorial's sweep)"
)


def train_pending(job: Path, engine: Engine) -> str:
    """Train ``job`` as the engine sees it: new ones from scratch (clearing what a run that
    never reached a snapshot left), interrupted ones from their snapshot; done ones and ones
    running elsewhere are left alone.

    Returns what happened: "trained", "already trained" or "running elsewhere".
    """
    from upcall.engines import JobStatus

    status = engine.status(job)
    if status is JobStatus.DONE:
        return "already trained"
    if status is JobStatus.RUNNING:
        return "running elsewhere"
    resume = status is JobStatus.RESUMABLE
    engine.train(job, resume=resume, restart=not resume)
    return "trained"


def _stopped(job: Path, e: BaseException) -> Interrupted:
    """The sweep's Ctrl-C message: where the job stopped, and to rerun the sweep to go on."""
    what = getattr(e, "what", None) or f"{job}: stopped"
    return Interrupted(
        f"{what}; to go on, run the same upcall sweep command again (trained jobs are "
        "skipped, this one resumes)"
    )


def write_jobs(
    dataset: Path,
    *,
    networks: Sequence[str],
    lrs: Sequence[float],
    out: Path,
    report: BatchReport,
    engine: str = "torch",
    **solver,
) -> list[Path]:
    """Job folders for every (network, rate); an existing folder with the same files is kept.

    A job that cannot be written (one with training results from other settings) is reported
    and left out; the others go on.
    """
    from upcall.job.datasetinfo import load_dataset
    from upcall.job.nets import make_jobs, write_job
    from upcall.job.solver import SolverSettings

    folders = []
    for job in make_jobs(
        networks, load_dataset(dataset), SolverSettings(**solver), lrs, report=report, engine=engine
    ):
        folder = out / job.name
        try:
            folders.append(folder if job.holds(folder) else write_job(job, out))
        except UpcallError as e:
            report.fail(folder, str(e))
    return folders


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs
    from upcall.engines import add_engine_arguments
    from upcall.job.nets import DEFAULT_NETWORK
    from upcall.network.zoo import NETWORKS

    parser.add_argument("--dataset", required=True, help="dataset folder made by `upcall lmdb`")
    cliargs.add_networks(parser, NETWORKS, default=DEFAULT_NETWORK)
    parser.add_argument(
        "--lr",
        default="0.001,0.005,0.01,0.05",
        help="comma-separated rates (default 0.001,0.005,0.01,0.05, the tutorial's)",
    )
    cliargs.add_epochs(
        parser,
        5,
        "the tutorial's sweep, 5 epochs a rate, so its four rates train in less time than one "
        "job of `upcall nets`'s DIGITS default of 30",
    )
    cliargs.add_seed(
        parser,
        "Caffe random_seed of every job, so the jobs of a sweep differ only in what is swept",
    )
    cliargs.add_out(parser, "folder for the job folders", required=True)
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from upcall.engines import JobStatus, get_engine, options_from_args
    from upcall.job.nets import parse_lrs
    from upcall.reports.report import make_report

    engine = get_engine(args.engine, options_from_args(args))
    out = args.out.resolve()
    report = BatchReport("jobs")
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    folders = write_jobs(
        Path(args.dataset),
        networks=networks,
        lrs=parse_lrs(args.lr),
        out=out,
        report=report,
        engine=args.engine,
        epochs=args.epochs,
        seed=args.seed,
        gpu=args.gpu is not None,
    )
    for folder in folders:
        print(f"{folder.name}: ", end="", flush=True)
        try:
            print(train_pending(folder, engine))
            report.ok()
        except (Interrupted, KeyboardInterrupt) as e:  # Ctrl-C stops the sweep, not just the job
            print(flush=True)
            raise _stopped(folder, e) from e
        except UpcallError as e:
            print("failed")
            report.fail(folder, str(e))
    trained = [f for f in folders if engine.status(f) is JobStatus.DONE]
    if trained:
        make_report(trained, out=out, html=True)
        print(f"report: {out / 'report.html'}")
    report.finish()
    return 0
