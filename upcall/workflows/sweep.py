"""The tutorial's sweep in one command: jobs for every (network, learning rate), train, compare.

``upcall sweep --dataset DS --networks alexnet,googlenet --lr 0.001,0.005,0.01,0.05 --out JOBS``
(also ``python scripts/run_sweep.py ...``) is ``upcall nets`` + ``upcall train`` per job +
``upcall report``. It is safe to interrupt and rerun: trained jobs are skipped, interrupted ones
resume from their last snapshot, and a job that fails is reported while the others go on.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from upcall.errors import BatchReport, UpcallError

HELP = (
    "train every (network, learning rate) job on a dataset and compare them (the tutorial's sweep)"
)


def train_pending(
    job: Path, *, engine: str = "torch", threads: int | None = None, gpu: int | None = None
) -> bool:
    """Train ``job`` unless it has a summary; resume from its snapshot if it has one.

    Returns whether any training ran.
    """
    from upcall.engines import get_engine
    from upcall.engines.jobspec import snapshots

    if (job / "summary.json").exists():
        return False
    resume = bool(snapshots(job, prefix=None, suffix=".solverstate"))
    get_engine(engine).train(job, resume=resume, gpu=gpu, threads=threads)
    return True


def write_jobs(
    dataset: Path,
    *,
    networks: Sequence[str],
    lrs: Sequence[float],
    out: Path,
    report: BatchReport,
    **solver,
) -> list[Path]:
    """Job folders for every (network, rate); an existing folder with the same files is kept.

    A job that cannot be written (one with training results from other settings) is reported
    and left out; the others go on.
    """
    from upcall.model.nets import load_dataset, make_jobs, write_job
    from upcall.model.solver import SolverSettings

    folders = []
    for job in make_jobs(
        networks, load_dataset(dataset), SolverSettings(**solver), lrs, report=report
    ):
        folder = out / job.name
        try:
            folders.append(folder if same_job(folder, job.files) else write_job(job, out))
        except UpcallError as e:
            report.fail(folder, str(e))
    return folders


def same_job(folder: Path, files: dict[str, str]) -> bool:
    """Whether ``folder`` holds ``files`` already; config.json's upcall_version may differ, so a
    new upcall release keeps the jobs an older one trained."""
    for name, text in files.items():
        path = folder / name
        if not path.is_file():
            return False
        old = path.read_text(encoding="utf-8")
        if name == "config.json":
            try:
                old, text = (_unversioned(json.loads(x)) for x in (old, text))
            except json.JSONDecodeError:
                return False
        if old != text:
            return False
    return True


def _unversioned(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "upcall_version"}


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall.engines import ENGINES

    parser.add_argument("--dataset", required=True, help="dataset folder made by `upcall lmdb`")
    parser.add_argument("--networks", default="alexnet", help="comma-separated (default alexnet)")
    parser.add_argument("--lr", default="0.001,0.005,0.01,0.05", help="comma-separated rates")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--engine", default="torch", choices=sorted(ENGINES), help="training engine (default torch)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads per training run")
    parser.add_argument("--gpu", type=int, metavar="N", help="train on CUDA device N")
    parser.add_argument("--out", required=True, type=Path, help="folder for the job folders")


def run(args: argparse.Namespace) -> int:
    from upcall.engines import Interrupted
    from upcall.model.nets import parse_lrs
    from upcall.results.report import make_report

    out = args.out.resolve()
    report = BatchReport("jobs")
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    folders = write_jobs(
        Path(args.dataset),
        networks=networks,
        lrs=parse_lrs(args.lr),
        out=out,
        report=report,
        epochs=args.epochs,
        seed=args.seed,
        gpu=args.gpu is not None,
    )
    for folder in folders:
        print(f"{folder.name}: ", end="", flush=True)
        try:
            ran = train_pending(folder, engine=args.engine, threads=args.threads, gpu=args.gpu)
            print("trained" if ran else "already trained")
            report.ok()
        except Interrupted:  # Ctrl-C stops the sweep, not just this job
            print("interrupted")
            raise
        except UpcallError as e:
            print("failed")
            report.fail(folder, str(e))
    trained = [f for f in folders if (f / "summary.json").exists()]
    if trained:
        make_report(trained, out=out)
    report.finish()
    return 0
