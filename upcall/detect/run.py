"""``upcall detect MODEL RECORDINGS... --out DIR``: up-calls in long recordings, as Raven tables.

    DIR/detect.json                  DetectSettings: the model and settings the outputs came from;
                                     a rerun with other settings is refused (use another --out)
    DIR/<rel>.detections.txt         one Raven selection table per recording (<rel>: the file's
                                     path under the folder given, or its name), written last and
                                     atomically: its presence marks the recording done
    DIR/<rel>.scores.csv             with --scores: start_s,score per window
    DIR/detections.txt, .csv         all recordings, with Begin Path and File Offset (s)

Windows are scored one by one, or with one pass of the network over each batch of windows'
audio where the spectrogram mode and the net allow it (see :mod:`upcall.detect.score`;
detect.json's ``scoring`` says which). Unreadable files are reported, skipped, and make the
exit status non-zero.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from upcall.audio.raven import read_table, write_table
from upcall.detect import events, stream
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_text
from upcall.jsonfile import JsonFile

HELP = "detect up-calls in long recordings with a trained job; Raven selection tables out"


@dataclass(frozen=True)
class DetectSettings(JsonFile):
    """DIR/detect.json: what the tables in DIR were made with."""

    FILE = "detect.json"
    model: str  # the job folder or exported .onnx model (absolute)
    weights: str  # the snapshot's caffemodel (the .onnx file for an exported model)
    threshold: float
    step_s: float
    channel: int
    smoothing: int  # windows in the moving average (1: none)
    # "per-window", or "fully-convolutional" (step_s is then rounded to the trunk's stride)
    scoring: str = "per-window"


@dataclass(frozen=True)
class Result:
    """One recording's outcome from a worker."""

    path: str
    seconds: float  # audio length
    detections: tuple[events.Detection, ...]
    problem: str | None = None


def table_path(out: Path, rel: Path) -> Path:
    return out / f"{rel}.detections.txt"


def detect_file(
    scorer,
    path: Path,
    settings: DetectSettings,
    *,
    block_s: float = 600.0,
    scores_csv: Path | None = None,
) -> tuple[float, list[events.Detection], np.ndarray]:
    """(seconds, detections, window scores) of one recording, streamed block by block."""
    from upcall.detect.score import band_bins, concat

    seconds = stream.duration_s(path)
    step = round(settings.step_s * stream.RATE)
    scorer.choose(step, per_window=settings.scoring == "per-window")
    chunks = stream.blocks(path, channel=settings.channel, block_s=block_s)
    parts = [scorer.score_span(s, step) for s in stream.spans(chunks, step=step)]
    scored = concat(parts)
    timeline = events.Timeline(
        scored.scores,
        scored.band_power,
        band_bins(),
        step / stream.RATE,
        stream.WINDOW / stream.RATE,
    )
    found = events.detect(timeline, threshold=settings.threshold, smoothing=settings.smoothing)
    if scores_csv is not None:
        lines = ["start_s,score"] + [
            f"{i * timeline.step_s:.3f},{s:.6f}" for i, s in enumerate(scored.scores)
        ]
        scores_csv.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(scores_csv, "\n".join(lines) + "\n")
    return seconds, found, scored.scores


_SCORER = None  # one per worker process
_SCORER_KEY: tuple[str, int | None] | None = None  # (model, threads) it was loaded for


def _init(model: str, threads: int | None):
    """Load the model once per worker process; ``threads``: its share of the cores."""
    global _SCORER, _SCORER_KEY
    if _SCORER_KEY == (model, threads):
        return _SCORER  # a reused worker (Ray) keeps its model
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for any OpenMP pool started later
    from upcall.detect.score import Scorer

    # the predictor sets its backend's thread pool (torch, onnxruntime) to ``threads``
    _SCORER = Scorer(Path(model), threads=threads)
    _SCORER_KEY = (model, threads)
    return _SCORER


def _work(item: tuple[str, str, DetectSettings, str, bool, float]) -> Result:
    path, table, settings, rel_scores, want_scores, block_s = item
    try:
        seconds, found, _ = detect_file(
            _SCORER,
            Path(path),
            settings,
            block_s=block_s,
            scores_csv=Path(rel_scores) if want_scores else None,
        )
    except (UpcallError, ValueError, OSError, RuntimeError) as e:
        return Result(path, 0.0, (), str(e).removeprefix(f"{path}: "))
    Path(table).parent.mkdir(parents=True, exist_ok=True)
    write_table(table, [d.selection() for d in found])
    return Result(path, seconds, tuple(found))


def check_settings(out: Path, settings: DetectSettings) -> None:
    old = DetectSettings.read(out)
    if old is not None and old != settings:
        raise UpcallError(
            f"{out / DetectSettings.FILE}: made with other settings ({old}); "
            "use another --out, or delete the folder to start again"
        )
    out.mkdir(parents=True, exist_ok=True)
    settings.write(out)


def detect(
    job: Path,
    inputs: list[Path],
    out: Path,
    *,
    threshold: float = 0.5,
    step_s: float = 0.5,
    channel: int = 0,
    smoothing: int = 1,
    workers: int = 1,
    scores: bool = False,
    block_s: float = 600.0,
    ray: str | None = None,
    per_window: bool = False,
) -> BatchReport:
    """Run detection over ``inputs`` into ``out``; returns the (unfinished) report.

    ``job``: a job folder or an exported .onnx model. ``ray``: the address of a running Ray
    cluster (HOST:PORT) that does the per-file work instead of local processes.
    ``per_window``: score each window on its own even where one pass over a block could.
    """
    if not 0 < step_s <= 2.0:
        raise UpcallError(f"--step must be in (0, 2] seconds, got {step_s}")
    if not 0.0 <= threshold <= 1.0:
        raise UpcallError(f"--threshold must be in [0, 1], got {threshold}")
    job = job.resolve()
    weights = model_weights(job)
    files = stream.find_recordings(inputs)
    # the model is loaded here too: how windows are scored, and the step, depend on its net
    choice = _init(str(job), None).choose(round(step_s * stream.RATE), per_window=per_window)
    print(choice.note, file=sys.stderr)
    settings = DetectSettings(
        str(job), weights, threshold, choice.step / stream.RATE, channel, smoothing, choice.scoring
    )
    check_settings(out, settings)
    report = BatchReport("recordings")
    todo, done = [], []
    for path, rel in files:
        table = table_path(out, rel)
        (done if table.exists() else todo).append((path, rel))
    if done:
        print(f"{len(done)} recording(s) already done in {out}: skipped", file=sys.stderr)
    items = [
        (str(p), str(table_path(out, r)), settings, str(out / f"{r}.scores.csv"), scores, block_s)
        for p, r in todo
    ]
    clock, audio_s = time.perf_counter(), 0.0
    for n, result in enumerate(_results(job, items, workers, ray), start=1):
        report.record(result.path, result.problem)
        audio_s += result.seconds
        rate = audio_s / max(time.perf_counter() - clock, 1e-9)
        print(
            f"[{n}/{len(items)}] {result.path}: "
            + ("failed; " if result.problem else f"{len(result.detections)} detection(s); ")
            + f"{audio_s / 3600:.2f} h of audio done, {rate:.0f}× real time",
            file=sys.stderr,
            flush=True,
        )
    write_combined(out, files)
    return report


def model_weights(model: Path) -> str:
    """What detect.json records as the weights: the snapshot a job's latest set holds, or the
    exported .onnx file itself."""
    from upcall.engines.predict import is_exported, read_deploy

    if is_exported(model):
        if not model.is_file():
            raise UpcallError(f"{model}: no such ONNX model")
        return str(model)
    return str(read_deploy(model).weights)


def _results(job: Path, items: list, workers: int, ray: str | None = None):
    if not items:
        return
    if ray is not None:
        from upcall.detect.cluster import ray_results

        yield from ray_results(ray, str(job), items)
        return
    if workers <= 1 or len(items) <= 1:
        _init(str(job), None)
        yield from map(_work, items)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from upcall.parallel import default_workers

    # each worker's share of the cores: N workers with every core each oversubscribe them
    # (2 workers on 2 cores ran at 0.52× one worker's speed before this)
    threads = max(1, default_workers() // workers)
    # spawn, not fork: a forked child of a process that has run torch can hang in its threads
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init, initargs=(str(job), threads)
    ) as pool:
        yield from pool.map(_work, items)


def write_combined(out: Path, files: list[tuple[Path, Path]]) -> None:
    """DIR/detections.txt (Raven, with Begin Path) and detections.csv from the finished tables."""
    rows = []
    for path, rel in files:
        table = table_path(out, rel)
        if table.exists():
            rows += [
                s.__class__(
                    **{**s.__dict__, "begin_path": str(path.resolve()), "file_offset_s": s.begin_s}
                )
                for s in read_table(table)
            ]
    write_table(out / "detections.txt", rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["recording", "begin_s", "end_s", "low_hz", "high_hz", "score"])
    for s in rows:
        w.writerow(
            [
                s.begin_path,
                f"{s.begin_s:.3f}",
                f"{s.end_s:.3f}",
                f"{s.low_hz:.1f}",
                f"{s.high_hz:.1f}",
                f"{s.score:.6f}",
            ]
        )
    atomic_write_text(out / "detections.csv", buf.getvalue())


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        type=Path,
        help="a trained job folder, or a model.onnx from `upcall export` (run by onnxruntime)",
    )
    parser.add_argument(
        "recordings",
        type=Path,
        nargs="+",
        help="WAV/FLAC/AIFF files or folders (searched recursively)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--threshold", type=float, default=0.5, help="score threshold (0.5)")
    parser.add_argument(
        "--step",
        type=float,
        default=0.5,
        help="seconds between 2-s windows (0.5); with fully convolutional scoring it is "
        "rounded to a multiple of the network's stride (detect.json records the step used)",
    )
    parser.add_argument("--channel", type=int, default=0, help="channel of multi-channel files")
    parser.add_argument(
        "--smoothing",
        type=int,
        default=1,
        help="windows in the moving average of the scores (1: none)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="files in parallel on this machine (1); each takes cores / N threads",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the per-file work as tasks on a running Ray cluster (HEAD:6379); the model, "
        "recordings and --out must be on a filesystem every node sees at the same paths",
    )
    parser.add_argument("--scores", action="store_true", help="also write per-window scores")
    parser.add_argument(
        "--per-window",
        action="store_true",
        help="compute each window's spectrogram and network pass on its own, even where one "
        "pass over a block could (the fine mode with WhaleNet-like nets): for comparison",
    )


def run(args: argparse.Namespace) -> int:
    report = detect(
        args.model,
        args.recordings,
        args.out,
        threshold=args.threshold,
        step_s=args.step,
        channel=args.channel,
        smoothing=args.smoothing,
        workers=args.workers,
        scores=args.scores,
        ray=args.ray,
        per_window=args.per_window,
    )
    report.finish()
    return 0
