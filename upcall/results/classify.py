"""``upcall classify JOB_DIR INPUTS...``: class probabilities for clips or spectrogram PNGs.

DIGITS's "classify one" / "classify many": each input is made the way the job's dataset was
(audio → spectrogram in the dataset's mode → resize to the dataset's size), then goes through
the validation transform (mean subtraction, centre crop, scale) and deploy.prototxt with the
chosen snapshot's weights: a :class:`upcall.engines.predict.Predictor`, run by the torch engine
or by real Caffe (``--backend caffe``). A .onnx file from ``upcall export`` stands for a job: its
metadata holds all of that, and ONNX Runtime runs it.

A folder stands for its clips and PNGs; where a clip and a PNG share a name (``train7.aiff``
beside the ``train7.png`` made from it) only the clip is classified, once: its spectrogram is
made the way the job's dataset was, which a PNG found beside it need not have been.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from upcall.audio.clip import AUDIO_SUFFIXES, FITS
from upcall.data.dataset import DatasetManifest
from upcall.data.render import ReadOptions
from upcall.engines.predict import BACKENDS, job_kind, load_job_model, load_predictor
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_text
from upcall.model.jobconfig import JobConfig

HELP = "classify audio clips or spectrogram PNGs with a trained job (probability per class)"


@dataclass(frozen=True)
class InputSpec:
    """How the job's inputs were made (from the dataset's description)."""

    height: int
    width: int
    native: bool  # images were stored at their own size, not resized
    resize_mode: str
    spectrogram_mode: str
    seed: int  # the fill / half_crop noise
    # How clips that are not 2 s, 2000 Hz mono are made to fit: the dataset's, plus the flags.
    read: ReadOptions = field(default_factory=ReadOptions)

    @classmethod
    def from_dataset_info(cls, info: DatasetManifest) -> InputSpec:
        return cls(
            height=info.image.height,
            width=info.image.width,
            native=info.native,
            resize_mode=info.resize_mode,
            spectrogram_mode=info.spectrograms.mode if info.spectrograms else "tutorial",
            seed=info.seed,
            read=info.spectrograms.read_options if info.spectrograms else ReadOptions(),
        )

    @classmethod
    def from_json(cls, value: dict) -> InputSpec:
        """From ``asdict(spec)``, as an exported model's metadata holds it."""
        return cls(**{**value, "read": ReadOptions(**value["read"])})


def dataset_info(job: Path) -> DatasetManifest:
    """The dataset description a job remembers: config.json's dataset_info, else dataset.json."""
    path = job / JobConfig.FILE
    config = JobConfig.require(job, f"is {job} a job directory from `upcall nets`?")
    info = config.dataset_info
    if info and "image" in info:
        return DatasetManifest.from_json(info, source=path)
    found = None
    if not info and config.dataset:
        found = DatasetManifest.read(Path(config.dataset))
    if found is None:
        raise UpcallError(f"{path}: has no dataset_info describing the input images")
    return found


def prepare(path: Path, spec: InputSpec) -> np.ndarray:
    """One input as the dataset stored it: uint8 (1, H, W)."""
    from upcall.data.resize import load_image, resize

    if path.suffix.lower() in AUDIO_SUFFIXES:
        from upcall.audio.clip import read_clip
        from upcall.data.spectrogram import compute

        image = compute(read_clip(path, **asdict(spec.read)), mode=spec.spectrogram_mode)
    else:
        image = load_image(path, channels=1)
    if spec.native:
        if image.shape != (spec.height, spec.width):
            raise UpcallError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]}, the job was "
                f"trained on {spec.width}x{spec.height}"
            )
    else:
        rng = np.random.default_rng(spec.seed)
        image = resize(image, height=spec.height, width=spec.width, mode=spec.resize_mode, rng=rng)
    return image[None]


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

    ``backend``: what runs the deploy net, a name in :data:`upcall.engines.predict.BACKENDS`.
    ``resample``, ``mixdown``, ``fit``: as for ``upcall spectrograms`` (see
    :func:`upcall.audio.clip.read_clip`), on top of what the job's dataset recorded; ``fit``
    None keeps the dataset's (``"strict"`` when it recorded none).
    Bad inputs are reported and skipped; with no ``report`` given, BatchFailed is raised after
    the rest are done, otherwise the caller finishes ``report`` (after using the rows).
    """
    files = expand(inputs)  # before the model loads: an empty folder fails fast
    exported = Path(job).suffix.lower() == ".onnx"  # `upcall export`: settings in its metadata
    # the classical baseline: it reads the clips itself
    if not exported and job_kind(Path(job)) is not None:
        return _classify_files(Path(job), files, report, resample, mixdown, fit, snapshot)
    model = load_predictor(Path(job), snapshot=snapshot, backend=backend, gpu=gpu)
    if exported:
        spec = InputSpec.from_json(model.info.input)
    else:
        spec = InputSpec.from_dataset_info(dataset_info(Path(job)))
    read = spec.read
    spec = replace(
        spec,
        read=ReadOptions(
            resample=resample or read.resample, mixdown=mixdown or read.mixdown, fit=fit or read.fit
        ),
    )
    batch = report or BatchReport("inputs")
    paths, images = [], []
    for path in files:
        try:
            images.append(prepare(path, spec))
            paths.append(path)
            batch.ok()
        except (UpcallError, ValueError, OSError) as e:
            batch.fail(path, str(e).removeprefix(f"{path}: "))
    rows = []
    if images:
        probs = model.probabilities(np.stack(images))
        for path, p in zip(paths, probs, strict=True):
            rows.append(
                {
                    "input": str(path),
                    "label": model.class_names[int(np.argmax(p))],
                    **{name: float(v) for name, v in zip(model.class_names, p, strict=True)},
                }
            )
    if report is None:
        batch.finish()
    return rows


def _classify_files(
    job: Path,
    files: list[Path],
    report: BatchReport | None,
    resample: bool,
    mixdown: bool,
    fit: str | None,
    snapshot: int | None,
) -> list[dict]:
    """classify() for a job that is not a network (upcall.engines.predict.JOB_KINDS)."""
    if snapshot is not None:
        raise UpcallError(f"{job}: has no snapshots (not a network job); leave out --snapshot")
    model = load_job_model(job)
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
    parser.add_argument(
        "job",
        type=Path,
        metavar="JOB_DIR",
        help="a trained job directory, or a model.onnx from `upcall export` (run by onnxruntime)",
    )
    parser.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUTS",
        help="audio clips (.aiff/.wav/.flac), spectrogram PNGs, or folders of them (in a "
        "folder, a PNG with a clip of the same name beside it is left out: the clip is used)",
    )
    parser.add_argument(
        "--snapshot",
        type=int,
        metavar="N",
        help="use the snapshot of iteration N (default: the latest)",
    )
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
