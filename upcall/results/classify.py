"""``upcall classify JOB_DIR INPUTS...``: class probabilities for clips or spectrogram PNGs.

DIGITS's "classify one" / "classify many": each input is made the way the job's dataset was
(audio → spectrogram in the dataset's mode → resize to the dataset's size), then goes through
the validation transform (mean subtraction, centre crop, scale) and deploy.prototxt with the
chosen snapshot's weights.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from upcall.audio.clip import AUDIO_SUFFIXES
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_text, read_json

HELP = "classify audio clips or spectrogram PNGs with a trained job (probability per class)"

BATCH = 64  # images per forward pass


@dataclass(frozen=True)
class InputSpec:
    """How the job's inputs were made (from the dataset's description)."""

    height: int
    width: int
    native: bool  # images were stored at their own size, not resized
    resize_mode: str
    spectrogram_mode: str
    seed: int  # the fill / half_crop noise

    @classmethod
    def from_dataset_info(cls, info: dict) -> InputSpec:
        image = info["image"]
        spectrograms = info.get("spectrograms") or {}
        return cls(
            height=int(image["height"]),
            width=int(image["width"]),
            native=info.get("size") == "native",
            resize_mode=info.get("resize_mode", "squash"),
            spectrogram_mode=spectrograms.get("mode", "tutorial"),
            seed=int(info.get("seed") or 0),
        )


def dataset_info(job: Path) -> dict:
    """The dataset description a job remembers: config.json's dataset_info, else dataset.json."""
    path = job / "config.json"
    config = read_json(path)
    if config is None:
        raise UpcallError(f"{path}: no such file (is {job} a job directory from `upcall nets`?)")
    info = config.get("dataset_info")
    if not info and config.get("dataset"):
        info = read_json(Path(config["dataset"]) / "dataset.json")
    if not info or "image" not in info:
        raise UpcallError(f"{path}: has no dataset_info describing the input images")
    return info


def prepare(path: Path, spec: InputSpec) -> np.ndarray:
    """One input as the dataset stored it: uint8 (1, H, W)."""
    from upcall.data.resize import load_image, resize

    if path.suffix.lower() in AUDIO_SUFFIXES:
        from upcall.audio.clip import read_clip
        from upcall.data.spectrogram import compute

        image = compute(read_clip(path), mode=spec.spectrogram_mode)
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


def snapshot_weights(job: Path, snapshot: int | None) -> Path:
    """The caffemodel of iteration ``snapshot``, or the latest one."""
    from upcall.engines.jobspec import snapshots

    models = snapshots(job, prefix=None)
    if not models:
        raise UpcallError(f"{job}: no *_iter_N.caffemodel snapshots (has it been trained?)")
    if snapshot is None:
        return models[max(models)]
    if snapshot not in models:
        raise UpcallError(f"{job}: no snapshot at iteration {snapshot}; have {sorted(models)}")
    return models[snapshot]


class Classifier:
    """deploy.prototxt + a snapshot + the validation transform of a job."""

    def __init__(self, job: Path, *, snapshot: int | None = None) -> None:
        import torch

        from upcall.engines.jobspec import load_job
        from upcall.engines.torch.caffemodel import load_caffemodel
        from upcall.engines.torch.net import CaffeNet, filter_net
        from upcall.proto import caffe_pb2, read_text

        job = Path(job).resolve()
        spec = load_job(job)
        self.inputs = InputSpec.from_dataset_info(dataset_info(job))
        self.class_names = list(spec.class_names)
        data = spec.test_data or spec.train_data
        self.transform = data.transform
        deploy = read_text(job / "deploy.prototxt", caffe_pb2.NetParameter())
        tops = [
            lay.top[0]
            for lay in filter_net(deploy, phase=caffe_pb2.TEST).layer
            if lay.type == "Input"
        ]
        if not tops:
            raise UpcallError(f"{job / 'deploy.prototxt'}: no Input layer")
        self.input = tops[0]
        shape = (BATCH, *self.transform.output_shape((1, self.inputs.height, self.inputs.width)))
        self.net = CaffeNet(deploy, phase=caffe_pb2.TEST, input_shapes={self.input: shape})
        self.weights = snapshot_weights(job, snapshot)
        load_caffemodel(self.net, self.weights)
        self.net.eval()
        self.net_param = deploy
        self.output, self.is_prob = _output_blob(deploy, self.net.output_names, job)
        self._torch = torch

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) uint8 → (N, K) class probabilities."""
        torch = self._torch
        out = []
        with torch.no_grad():
            for i in range(0, len(images), BATCH):
                x = self.transform.apply(torch.from_numpy(images[i : i + BATCH]), train=False)
                prob = self.net({self.input: x}, outputs=[self.output])[self.output].flatten(1)
                if not self.is_prob:
                    prob = torch.softmax(prob, dim=1)
                out.append(prob.double().numpy())
        return np.concatenate(out)


def _output_blob(deploy, outputs: list[str], job: Path) -> tuple[str, bool]:
    """(blob, is it probabilities) the classifier reads from the deploy net.

    DIGITS names the deploy Softmax "softmax", others "prob": find it by type, the last one in
    the TEST-phase net. A deploy net that ends in raw scores (a user's own) has one output, which
    gets the softmax here; with several outputs and no Softmax the choice would be a guess.
    """
    from upcall.engines.torch.net import filter_net
    from upcall.proto import caffe_pb2

    layers = filter_net(deploy, phase=caffe_pb2.TEST).layer
    softmax = [lay for lay in layers if lay.type == "Softmax"]
    if softmax:
        return softmax[-1].top[0], True
    if len(outputs) == 1:
        return outputs[0], False
    raise UpcallError(
        f"{job / 'deploy.prototxt'}: no Softmax layer and {len(outputs)} outputs "
        f"({', '.join(outputs) or 'none'}); cannot tell which one holds the class scores"
    )


def expand(inputs: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its audio and PNG files, in name order."""
    files = []
    for p in inputs:
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in (*AUDIO_SUFFIXES, ".png"))
        else:
            files.append(p)
    return files


def classify(
    job: Path, inputs: list[Path], *, snapshot: int | None = None, report: BatchReport | None = None
) -> list[dict]:
    """Probabilities for every readable input, one dict per input.

    Bad inputs are reported and skipped; with no ``report`` given, BatchFailed is raised after
    the rest are done, otherwise the caller finishes ``report`` (after using the rows).
    """
    model = Classifier(job, snapshot=snapshot)
    batch = report or BatchReport("inputs")
    paths, images = [], []
    for path in expand(inputs):
        try:
            images.append(prepare(path, model.inputs))
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


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, metavar="JOB_DIR", help="a trained job directory")
    parser.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUTS",
        help="audio clips (.aiff/.wav/.flac), spectrogram PNGs, or folders of them",
    )
    parser.add_argument(
        "--snapshot",
        type=int,
        metavar="N",
        help="use the snapshot of iteration N (default: the latest)",
    )
    parser.add_argument("--csv", type=Path, metavar="OUT", help="write the probabilities as CSV")


def run(args: argparse.Namespace) -> int:
    report = BatchReport("inputs")
    rows = classify(args.job, args.inputs, snapshot=args.snapshot, report=report)
    if rows:
        names = [k for k in rows[0] if k not in ("input", "label")]
        for r in rows:
            print(f"{r['input']}\t{r['label']}\t" + "\t".join(f"{n}={r[n]:.4f}" for n in names))
        if args.csv:
            atomic_write_text(args.csv, to_csv(rows))
            print(f"written: {args.csv}")
    report.finish()
    return 0
