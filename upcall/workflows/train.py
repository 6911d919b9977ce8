"""``upcall train JOB_DIR``: train a job folder made by ``upcall nets`` with one of the engines."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train a job directory (solver + train_val prototxt on its LMDBs) with Caffe's semantics"


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall.engines import ENGINES

    parser.add_argument(
        "job", type=Path, metavar="JOB_DIR", help="a job directory from `upcall nets`"
    )
    parser.add_argument(
        "--engine",
        default="torch",
        choices=sorted(ENGINES),
        help="torch: embedded PyTorch engine (default); caffe: real Caffe",
    )
    parser.add_argument(
        "--gpu", type=int, metavar="N", help="train on CUDA device N (default: CPU)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest snapshot in JOB_DIR"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads (default: all available cores)"
    )
    parser.add_argument(
        "--caffe-bin",
        type=Path,
        metavar="PATH",
        help="with --engine caffe: your own caffe binary (same as setting UPCALL_CAFFE)",
    )


def run(args: argparse.Namespace) -> int:
    from upcall.engines import Interrupted, get_engine
    from upcall.engines.caffe.root import use_caffe_bin
    from upcall.errors import UpcallError

    if args.threads is not None and args.threads < 1:
        raise UpcallError(f"--threads must be at least 1, not {args.threads}")
    use_caffe_bin(args.caffe_bin)
    try:
        summary = get_engine(args.engine).train(
            args.job, resume=args.resume, gpu=args.gpu, threads=args.threads
        )
    except Interrupted as e:
        print(e)
        return 130
    print_summary(args.job, summary)
    return 0


def print_summary(job: Path, summary: dict) -> None:
    """Where the results went and the last validation figures."""
    final = summary.get("final") or {}
    print(
        f"trained {summary['network']} for {summary['iterations']} iterations "
        f"({summary['epochs']:.2f} epochs) in {summary['wall_seconds']:.1f} s "
        f"[{summary['engine']} engine]"
    )
    if final:
        auc = final.get("val_auc")
        print(
            f"validation: accuracy {final['val_accuracy']:.4f}, AUC "
            f"{'n/a' if auc is None else f'{auc:.4f}'}, loss {final['val_loss']:.4f}"
        )
    print(f"curves:    {job / 'curves.png'}")
    print(f"summary:   {job / 'summary.json'}")
    if summary.get("snapshots"):
        print(f"snapshot:  {job / summary['snapshots'][-1]}")
