"""``upcall export JOB --format onnx|caffe [--out PATH] [--snapshot N]``.

ONNX: one .onnx file (ONNX Runtime runs it; ``upcall classify MODEL.onnx`` needs no job folder
and no torch). Caffe: a folder with deploy.prototxt, the caffemodel, mean.binaryproto, labels.txt
and export.json. Both carry the transform, input size, spectrogram settings and class names.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from upcall.errors import UpcallError

HELP = "export a trained job's deploy net and snapshot as an ONNX model or a Caffe folder"
FORMATS = ("onnx", "caffe")


def export(job: Path, *, format: str, out: Path | None = None, snapshot: int | None = None) -> Path:
    """Export ``job`` (its snapshot ``snapshot``, default the latest) in ``format``; the path.

    ``job``: a job folder, or another deploy net :func:`upcall.inference.load_model` opens (a
    Caffe export, a DIGITS download, a deploy.prototxt folder)."""
    from upcall.export.info import deploy_info
    from upcall.inference import load_model
    from upcall.inference.model import NetModel
    from upcall.inference.sources import job_kind

    job = Path(job)
    if format not in FORMATS:
        raise UpcallError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
    if out is not None:
        check_out(Path(out), format, job)
    if job.is_dir() and not (job / "deploy.prototxt").is_file():
        if (kind := job_kind(job)) is not None:
            raise UpcallError(f"{job}: a {kind} job has no deploy net to export")
        raise UpcallError(f"{job}: no deploy.prototxt (is it a job directory from `upcall nets`?)")
    model = load_model(job, snapshot=snapshot)
    if model.kind == "onnx":
        raise UpcallError(f"{job}: already an exported ONNX model; export its job folder instead")
    if not isinstance(model, NetModel):
        raise UpcallError(f"{job}: a {model.kind} model has no deploy net to export")
    info = deploy_info(model)
    deploy = model.deploy
    stem = deploy.weights.stem  # snapshot_iter_N
    home = job if job.is_dir() else job.parent  # a download's exports go beside it
    if format == "onnx":
        from upcall.export.onnx import export_onnx

        return export_onnx(deploy, info, Path(out or home / "export" / f"{stem}.onnx"))
    from upcall.export.caffe import export_caffe

    return export_caffe(deploy, info, Path(out or home / "export" / f"{stem}-caffe"))


def check_out(out: Path, format: str, job: Path) -> None:
    """Refuse ``--out`` before any work: an ONNX name without .onnx (ONNX Runtime and `upcall
    classify` tell a model by it), or a path that exists (export never replaces what it did not
    make), except a Caffe folder an earlier export made (marked, as the default path under
    JOB/export/ is: a rerun rewrites it), never the job or a folder holding it."""
    if format == "onnx" and out.suffix.lower() != ".onnx":
        raise UpcallError(f"{out}: an ONNX model's file name must end in .onnx")
    if format == "caffe" and out.is_dir() and not out.is_symlink():
        from upcall.fsutil import check_own_dir
        from upcall.inference.onnx.metadata import DeployInfo

        check_own_dir(out, kind="export", legacy=(DeployInfo.FILE,), inputs=(job,))
        return
    if out.exists() or out.is_symlink():
        what = "a folder" if out.is_dir() else "a file"
        raise UpcallError(f"{out}: already exists ({what}); remove it or choose another --out")


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    cliargs.add_model(parser, "job", "MODEL")
    parser.add_argument("--format", choices=FORMATS, required=True, help="what to write")
    cliargs.add_out(
        parser,
        "the .onnx file, which must not exist yet, or the Caffe folder, new or made by an "
        "earlier export (default: JOB/export/snapshot_iter_N.onnx or "
        "JOB/export/snapshot_iter_N-caffe, one per snapshot, rewritten by a rerun)",
        metavar="PATH",
    )
    cliargs.add_snapshot(parser)


def run(args: argparse.Namespace) -> int:
    path = export(args.job, format=args.format, out=args.out, snapshot=args.snapshot)
    print(f"written: {path}")
    return 0
