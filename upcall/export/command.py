"""``upcall export JOB --format onnx|caffe [--out PATH] [--snapshot N]``.

ONNX: one .onnx file (ONNX Runtime runs it; ``upcall classify MODEL.onnx`` needs no job folder
and no torch). Caffe: a folder with deploy.prototxt, the caffemodel, mean.binaryproto, labels.txt
and export.json. Both carry the transform, input size, spectrogram settings and class names.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from upcall.engines.predict import job_kind, read_deploy
from upcall.errors import UpcallError

HELP = "export a trained job's deploy net and snapshot as an ONNX model or a Caffe folder"
FORMATS = ("onnx", "caffe")


def export(job: Path, *, format: str, out: Path | None = None, snapshot: int | None = None) -> Path:
    """Export ``job`` (its snapshot ``snapshot``, default the latest) in ``format``; the path."""
    from upcall.export.info import deploy_info

    job = Path(job)
    if format not in FORMATS:
        raise UpcallError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if not (job / "deploy.prototxt").is_file():
        if (job / "config.json").is_file() and job_kind(job) is not None:
            raise UpcallError(f"{job}: a {job_kind(job)} job has no deploy net to export")
        raise UpcallError(f"{job}: no deploy.prototxt (is it a job directory from `upcall nets`?)")
    deploy = read_deploy(job, snapshot=snapshot)
    info = deploy_info(deploy)
    stem = deploy.weights.stem  # snapshot_iter_N
    if format == "onnx":
        from upcall.export.onnx import export_onnx

        return export_onnx(deploy, info, Path(out or job / "export" / f"{stem}.onnx"))
    from upcall.export.caffe import export_caffe

    return export_caffe(deploy, info, Path(out or job / "export" / f"{stem}-caffe"))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, metavar="JOB", help="a trained job directory")
    parser.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="the .onnx file or the Caffe folder (default: JOB/export/snapshot_iter_N.onnx or "
        "JOB/export/snapshot_iter_N-caffe)",
    )
    parser.add_argument(
        "--snapshot", type=int, metavar="N", help="the snapshot of iteration N (default: latest)"
    )


def run(args: argparse.Namespace) -> int:
    path = export(args.job, format=args.format, out=args.out, snapshot=args.snapshot)
    print(f"written: {path}")
    return 0
