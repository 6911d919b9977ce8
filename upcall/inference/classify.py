"""``upcall classify JOB_DIR INPUTS...``: class probabilities for clips or spectrogram PNGs.

DIGITS's "classify one" / "classify many": each input is made the way the job's dataset was
(audio → spectrogram in the dataset's mode → resize to the dataset's size), then goes through
the validation transform (mean subtraction, centre crop, scale) and deploy.prototxt with the
chosen snapshot's weights, run by the torch engine or by real Caffe (``--backend caffe``). Any
model :func:`upcall.inference.load_model` opens will do: a .onnx file from ``upcall export``
(its metadata holds all of that, and ONNX Runtime runs it), a Caffe export, a DIGITS download,
a deploy.prototxt folder, or the classical baseline's job (which reads the clips itself).

A folder stands for its clips and PNGs; where a clip and a PNG share a name (``train7.aiff``
beside the ``train7.png`` made from it) only the clip is classified, once: its spectrogram is
made the way the job's dataset was, which a PNG found beside it need not have been.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from upcall.audio.clip import AUDIO_SUFFIXES, FITS
from upcall.data.pngroot import ReadOptions
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_text
from upcall.inference.predict import BACKENDS
from upcall.inference.sources import load_model

HELP = "classify audio clips or spectrogram PNGs with a trained job (probability per class)"


def expand(inputs: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its audio and PNG files, in name order.

    A folder's PNG with the name of a clip beside it is left out (the clip is classified), and
    a folder with neither is an error.
    """
    files = []
    for p in inputs:
        if not p.is_dir():
            files.append(p)
            continue
        found = sorted(f for f in p.iterdir() if f.suffix.lower() in (*AUDIO_SUFFIXES, ".png"))
        clips = {f.stem for f in found if f.suffix.lower() in AUDIO_SUFFIXES}
        kept = [f for f in found if f.suffix.lower() in AUDIO_SUFFIXES or f.stem not in clips]
        if not kept:
            raise UpcallError(f"{p}: no audio clips ({', '.join(AUDIO_SUFFIXES)}) or PNGs in it")
        if len(kept) < len(found):
            print(
                f"{p}: {len(found) - len(kept)} PNG(s) left out: the clip of the same name "
                "is classified instead",
                file=sys.stderr,
            )
        files += kept
    return files


def classify(
    job: Path,
    inputs: list[Path],
    *,
    snapshot: int | None = None,
    backend: str = "torch",
    gpu: int | None = None,
    report: BatchReport | None = None,
    resample: bool = False,
    mixdown: bool = False,
    fit: str | None = None,
) -> list[dict]:
    """Probabilities for every readable input, one dict per input.

    ``job``: any model :func:`upcall.inference.load_model` opens. ``backend``: what runs a
    deploy net, a name in :data:`upcall.inference.predict.BACKENDS`.
    ``resample``, ``mixdown``, ``fit``: as for ``upcall spectrograms`` (see
    :func:`upcall.audio.clip.read_clip`), on top of what the model's dataset recorded; ``fit``
    None keeps the dataset's (``"strict"`` when it recorded none).
    Bad inputs are reported and skipped; with no ``report`` given, BatchFailed is raised after
    the rest are done, otherwise the caller finishes ``report`` (after using the rows).
    """
    files = expand(inputs)  # before the model loads: an empty folder fails fast
    model = load_model(Path(job), snapshot=snapshot, backend=backend, gpu=gpu)
    read = model.read
    read = ReadOptions(
        resample=resample or read.resample, mixdown=mixdown or read.mixdown, fit=fit or read.fit
    )
    batch = report or BatchReport("inputs")
    rows = model.classify(files, report=batch, read=read)
    if report is None:
        batch.finish()
    return rows


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    cliargs.add_model(parser, "job", "MODEL")
    parser.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUTS",
        help="audio clips (.aiff/.wav/.flac), spectrogram PNGs, or folders of them (in a "
        "folder, a PNG with a clip of the same name beside it is left out: the clip is used)",
    )
    cliargs.add_snapshot(parser)
    parser.add_argument("--csv", type=Path, metavar="OUT", help="write the probabilities as CSV")
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="torch",
        help="run the deploy net with the torch engine (default) or with real Caffe (pycaffe); "
        "a .onnx model always runs on onnxruntime",
    )
    parser.add_argument(
        "--resample",
        action="store_true",
        help="resample clips of another sample rate to 2000 Hz (default: only if the job's "
        "dataset was made so)",
    )
    parser.add_argument(
        "--mixdown",
        action="store_true",
        help="average the channels of stereo / multi-channel clips (default: only if the job's "
        "dataset was made so)",
    )
    parser.add_argument(
        "--fit",
        choices=FITS,
        help="clips not 2 s long: zero-pad short ones (pad), keep the start of long ones "
        "(trim), or both (pad-trim) (default: as the job's dataset, else strict: reject them)",
    )


def run(args: argparse.Namespace) -> int:
    report = BatchReport("inputs")
    rows = classify(
        args.job,
        args.inputs,
        snapshot=args.snapshot,
        backend=args.backend,
        report=report,
        resample=args.resample,
        mixdown=args.mixdown,
        fit=args.fit,
    )
    if rows:
        names = [k for k in rows[0] if k not in ("input", "label")]
        for r in rows:
            print(f"{r['input']}\t{r['label']}\t" + "\t".join(f"{n}={r[n]:.4f}" for n in names))
        if args.csv:
            atomic_write_text(args.csv, to_csv(rows))
            print(f"written: {args.csv}")
    report.finish()
    return 0
