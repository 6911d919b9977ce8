"""``upcall detect MODEL RECORDINGS... --out DIR``: up-calls in long recordings, as Raven tables.

    DIR/detect.json                  DetectSettings: the model and settings of the last run
    DIR/<rel>.detections.txt         one Raven selection table per recording (<rel>: the file's
                                     path under the deepest folder holding every input, so the
                                     input tree is mirrored and equal names stay apart)
    DIR/<rel>.scores.csv             with --scores: start_s,score per window
    DIR/<rel>.made.json              what made the table (:mod:`upcall.detect.made`): a rerun
                                     keeps a table only when the model, the settings and the
                                     recording are the ones it was made from
    DIR/detections.txt, .csv         all recordings, with Begin Path and File Offset (s)

Windows are scored one by one, or with one pass of the network over each batch of windows'
audio where the spectrogram mode and the net allow it (see :mod:`upcall.detect.score`;
detect.json's ``scoring`` says which). Unreadable files, and paths a Raven table cannot hold
(tabs, newlines), are reported, skipped, and make the exit status non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from upcall.audio.raven import write_table
from upcall.detect import events, stream
from upcall.detect.combined import table_path, write_combined
from upcall.detect.made import Made, is_done, record_path, settings_digest, stamp
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
    # SHA-256 of the weights (and, for a job, its deploy.prototxt): `train --restart` keeps the
    # snapshot's name but not its weights
    model_sha256: str = ""


@dataclass(frozen=True)
class Item:
    """One recording's work, as a worker (local or Ray) gets it."""

    path: str
    table: str
    settings: DetectSettings
    scores_csv: str | None  # where to write the scores, or None
    block_s: float
    made: Made  # written to record after the table: what it was made from
    record: str


@dataclass(frozen=True)
class Result:
    """One recording's outcome from a worker."""

    path: str
    seconds: float  # audio length
    detections: tuple[events.Detection, ...]
    problem: str | None = None


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
    # a recording shorter than a window is scored zero-padded: no detection ends past its end
    found = [replace(d, end_s=min(d.end_s, seconds)) for d in found]
    if scores_csv is not None:
        lines = ["start_s,score"] + [
            f"{i * timeline.step_s:.3f},{s:.6f}" for i, s in enumerate(scored.scores)
        ]
        scores_csv.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(scores_csv, "\n".join(lines) + "\n")
    return seconds, found, scored.scores


_SCORER = None  # one per worker process
_SCORER_KEY: tuple | None = None  # (model, its SHA-256, threads) it was loaded for


def _init(model: str, threads: int | None, digest: str = ""):
    """Load the model once per worker process; ``threads``: its share of the cores; ``digest``:
    the model's hash, so a process that is reused (in-process runs, Ray) notices new weights."""
    global _SCORER, _SCORER_KEY
    if _SCORER_KEY == (model, digest, threads):
        return _SCORER  # a reused worker (Ray) keeps its model
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for any OpenMP pool started later
    from upcall.detect.score import Scorer

    # the predictor sets its backend's thread pool (torch, onnxruntime) to ``threads``
    _SCORER = Scorer(Path(model), threads=threads)
    _SCORER_KEY = (model, digest, threads)
    return _SCORER


def _work(item: Item) -> Result:
    path = item.path
    try:
        seconds, found, _ = detect_file(
            _SCORER,
            Path(path),
            item.settings,
            block_s=item.block_s,
            scores_csv=Path(item.scores_csv) if item.scores_csv else None,
        )
    except (UpcallError, ValueError, OSError, RuntimeError) as e:
        return Result(path, 0.0, (), str(e).removeprefix(f"{path}: "))
    Path(item.table).parent.mkdir(parents=True, exist_ok=True)
    write_table(item.table, [d.selection() for d in found], scores=True)
    item.made.write(item.record)  # last: the table and scores it describes are complete
    return Result(path, seconds, tuple(found))


def _ray_task(model: str, item: Item) -> Result:
    """One recording as a Ray task (:mod:`upcall.detect.cluster`): a Ray worker process keeps
    its loaded model between tasks."""
    from upcall.detect.cluster import TASK_CPUS

    _init(model, TASK_CPUS, item.settings.model_sha256)
    return _work(item)


def _failed(item: Item, problem: str) -> Result:
    return Result(item.path, 0.0, (), problem)


def note_settings(out: Path, settings: DetectSettings) -> None:
    """Write detect.json; say so when the last run in ``out`` had other settings (its tables
    are then made again, as their records no longer match)."""
    old = DetectSettings.read(out)
    if old is not None and old != settings:
        print(
            f"{out / DetectSettings.FILE}: the last run used another model or settings; "
            "its tables are made again",
            file=sys.stderr,
        )
    out.mkdir(parents=True, exist_ok=True)
    settings.write(out)


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot go into a Raven table, or None (its cells are tab-separated lines)."""
    if any(c in str(path) for c in "\t\n\r"):
        return "its path holds a tab or newline, which a Raven table cannot hold; rename it"
    return None


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
    if smoothing < 1:
        raise UpcallError(f"--smoothing must be at least 1 window (1: none), got {smoothing}")
    if workers < 1:
        raise UpcallError(f"--workers must be at least 1, got {workers}")
    job = job.resolve()
    weights, model_hash = model_weights(job)
    files = stream.find_recordings(inputs)
    # the model is loaded here too: how windows are scored, and the step, depend on its net
    choice = _init(str(job), None, model_hash).choose(
        round(step_s * stream.RATE), per_window=per_window
    )
    print(choice.note, file=sys.stderr)
    settings = DetectSettings(
        str(job),
        weights,
        threshold,
        choice.step / stream.RATE,
        channel,
        smoothing,
        choice.scoring,
        model_hash,
    )
    note_settings(out, settings)
    digest = settings_digest(settings)
    report = BatchReport("recordings")
    items: list[Item] = []
    done, finished = 0, set()  # recordings whose table is of this run
    for path, rel in files:
        if problem := unwritable(path):
            report.fail(ascii(str(path)), problem)  # ascii: the report stays one line
            continue
        try:
            made = Made(digest, stamp(path), scores)
        except UpcallError as e:
            report.fail(path, str(e).removeprefix(f"{path}: "))
            continue
        table, csv_path = table_path(out, rel), out / f"{rel}.scores.csv"
        if is_done(out, rel, made, table, csv_path if scores else None):
            done += 1
            report.ok()
            finished.add(str(path))
            continue
        record = record_path(out, rel)
        csv_out = str(csv_path) if scores else None
        if not scores:  # an earlier run's scores would sit beside a table made from other inputs
            csv_path.unlink(missing_ok=True)
        items.append(Item(str(path), str(table), settings, csv_out, block_s, made, str(record)))
    if done:
        print(f"{done} recording(s) already done in {out}: skipped", file=sys.stderr)
    clock, audio_s = time.perf_counter(), 0.0
    for n, result in enumerate(_results(job, items, workers, ray), start=1):
        report.record(result.path, result.problem)
        if result.problem is None:
            finished.add(result.path)
        audio_s += result.seconds
        rate = audio_s / max(time.perf_counter() - clock, 1e-9)
        print(
            f"[{n}/{len(items)}] {result.path}: "
            + ("failed; " if result.problem else f"{len(result.detections)} detection(s); ")
            + f"{audio_s / 3600:.2f} h of audio done, {rate:.0f}× real time",
            file=sys.stderr,
            flush=True,
        )
    # only tables of this run: a failed redo's old table was made from other inputs
    write_combined(out, [f for f in files if str(f[0]) in finished])
    return report


def model_weights(model: Path) -> tuple[str, str]:
    """(weights, SHA-256) detect.json records: the snapshot a job's latest set holds (hashed
    with its deploy.prototxt), or the exported .onnx file itself
    (:meth:`upcall.inference.Model.fingerprint`)."""
    from upcall.inference import load_model

    found = load_model(model)
    found.check_windows()
    return found.fingerprint()


def _results(job: Path, items: list[Item], workers: int, ray: str | None = None):
    if not items:
        return
    digest = items[0].settings.model_sha256
    if ray is not None:
        from upcall.detect.cluster import ray_results

        yield from ray_results(ray, _ray_task, str(job), items, _failed)
        return
    from upcall.parallel import cap_workers, default_workers, process_pool

    # never more workers than files, nor than cores: idle workers each load the model, and
    # more than the cores only contend (64 workers on two files ran at 22× instead of 490×)
    workers = cap_workers(workers, len(items))
    if workers <= 1:
        _init(str(job), None, digest)
        yield from map(_work, items)
        return
    # each worker's share of the cores: N workers with every core each oversubscribe them
    # (2 workers on 2 cores ran at 0.52× one worker's speed before this)
    threads = max(1, default_workers() // workers)
    print(f"{workers} worker processes, {threads} thread(s) each", file=sys.stderr)
    # process_pool: upcall's one start method (never a fork of this process, which has run
    # torch); the workers die with this process, and stop at once when it is stopped
    init = (str(job), threads, digest)
    # the model's module (torch) loaded once, by the forkserver, not by each worker
    with process_pool(workers, init=_init, initargs=init, preload=["upcall.detect.score"]) as pool:
        yield from pool.map(_work, items)


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    cliargs.add_model(parser)
    parser.add_argument(
        "recordings",
        type=Path,
        nargs="+",
        help="WAV/FLAC/AIFF files or folders (searched recursively)",
    )
    cliargs.add_out(parser, "output folder", required=True)
    cliargs.add_threshold(
        parser, "the windows at or above it, after smoothing, make the detections; in [0, 1]"
    )
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
        help="windows in the moving average of the scores (1: none; at least 1)",
    )
    cliargs.add_workers(
        parser,
        "is a process scoring one file after another, with cores / N threads (never more "
        "workers than files or cores)",
        default=1,
        why="one worker's network passes already use every core",
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
