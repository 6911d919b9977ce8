"""One recording's work, in whichever process does it (this one, a worker process, a Ray task):
audio → window scores → detections → tight boxes → its Raven table and record.

The model is loaded once per process (:func:`init`); :func:`work` does one :class:`Item` and
returns its :class:`Result`. A long file scored in this process shows its progress as it goes
(hours of audio done, × real time), on a terminal or as periodic lines in a log.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from upcall.audio import stream
from upcall.audio.raven import write_table
from upcall.detect import boxes, events
from upcall.detect.made import DetectSettings, Made
from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text

LONG_S = 600.0  # a file at least this long shows its progress while it is scored


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
    show: bool = False  # progress within the file (set where one process scores one file at a time)


@dataclass(frozen=True)
class Result:
    """One recording's outcome from a worker."""

    path: str
    seconds: float  # audio length
    detections: tuple[events.Detection, ...]
    problem: str | None = None
    stages: dict[str, float] | None = None  # seconds per stage (see detect_file)


def detect_file(
    scorer,
    path: Path,
    settings: DetectSettings,
    *,
    block_s: float = 600.0,
    scores_csv: Path | None = None,
    show: bool = False,
    stages: dict[str, float] | None = None,
) -> tuple[float, list[events.Detection], np.ndarray]:
    """(seconds, detections, window scores) of one recording, streamed block by block (read
    and decoded a span ahead of the network, in another thread); each detection's box
    tightened to its call (:mod:`upcall.detect.boxes`). ``show``: progress within the file
    when it is long. ``stages``: each stage's seconds are added to it (read, spectrogram,
    network, waiting for audio, events, boxes, scores file)."""
    from upcall.detect.score import Stages, band_bins, concat, scored

    seconds = stream.duration_s(path)
    step = round(settings.step_s * stream.RATE)
    scorer.choose(step, per_window=settings.scoring == "per-window")
    chunks = stream.blocks(path, channel=settings.channel, block_s=block_s)
    spans = stream.spans(chunks, step=step)
    clock = Stages()
    parts = scored(scorer, spans, step, clock)
    if show and seconds >= LONG_S:
        parts = _shown(parts, path, seconds, step)
    result = concat(list(parts))
    t0 = time.perf_counter()
    timeline = events.Timeline(
        result.scores,
        result.band_power,
        band_bins(),
        step / stream.RATE,
        stream.WINDOW / stream.RATE,
    )
    found = events.detect(timeline, threshold=settings.threshold, smoothing=settings.smoothing)
    t1 = time.perf_counter()
    clock.add("events", t1 - t0)
    found = [tight(path, d, channel=settings.channel, seconds=seconds) for d in found]
    found.sort(key=lambda d: d.begin_s)  # a box may start before its neighbour's (rare)
    clock.add("boxes", time.perf_counter() - t1)
    if scores_csv is not None:
        lines = ["start_s,score"] + [
            f"{i * timeline.step_s:.3f},{s:.6f}" for i, s in enumerate(result.scores)
        ]
        scores_csv.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(scores_csv, "\n".join(lines) + "\n")
        clock.add("scores file", time.perf_counter() - t0)
    if stages is not None:
        for name, took in clock.items():
            stages[name] = stages.get(name, 0.0) + took
    return seconds, found, result.scores


def tight(path: Path, d: events.Detection, *, channel: int, seconds: float) -> events.Detection:
    """``d`` with its box bounding the call (a recording shorter than a window is scored
    zero-padded: no box ends past its end)."""
    peak = d.peak_s if d.peak_s is not None else (d.begin_s + d.end_s) / 2
    box = boxes.tighten(path, d.begin_s, d.end_s, peak, channel=channel, seconds=seconds)
    return replace(d, begin_s=box.begin_s, end_s=box.end_s, low_hz=box.low_hz, high_hz=box.high_hz)


def _shown(parts, path: Path, seconds: float, step: int):
    """``parts`` (Scored), passed through while a progress display says how far the file is."""
    from upcall.progress import progress

    clock = time.perf_counter()
    with progress(total=round(seconds), desc=path.name, unit="audio second") as bar:
        # each update then its postfix, from the first on: a log line waits for the postfix
        bar.update(0)
        bar.set_postfix(audio="0.00 h")
        for part in parts:
            yield part
            last = part.start + len(part.scores) - 1
            done = min(seconds, (last * step + stream.WINDOW) / stream.RATE)
            rate = done / max(time.perf_counter() - clock, 1e-9)
            bar.update(round(done) - bar.n)
            bar.set_postfix(audio=f"{done / 3600:.2f} h", speed=f"{rate:.0f}× real time")


_SCORER = None  # one per worker process
_SCORER_KEY: tuple | None = None  # (model, its SHA-256, threads, backend) it was loaded for


def init(model: str, threads: int | None, digest: str = "", backend: str = "torch"):
    """Load the model once per worker process; ``threads``: its share of the cores; ``digest``:
    the model's hash, so a process that is reused (in-process runs, Ray) notices new weights;
    ``backend``: :class:`upcall.detect.score.Scorer`'s."""
    global _SCORER, _SCORER_KEY
    if _SCORER_KEY == (model, digest, threads, backend):
        return _SCORER  # a reused worker (Ray) keeps its model
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for any OpenMP pool started later
    from upcall.detect.score import Scorer

    # the predictor sets its backend's thread pool (torch, onnxruntime) to ``threads``
    _SCORER = Scorer(Path(model), threads=threads, backend=backend)
    _SCORER_KEY = (model, digest, threads, backend)
    return _SCORER


def work(item: Item) -> Result:
    """Score one recording and write its table (clock times where its start is known), then its
    record."""
    path = item.path
    stages: dict[str, float] = {}
    try:
        seconds, found, _ = detect_file(
            _SCORER,
            Path(path),
            item.settings,
            block_s=item.block_s,
            scores_csv=Path(item.scores_csv) if item.scores_csv else None,
            show=item.show,
            stages=stages,
        )
    except (UpcallError, ValueError, OSError, RuntimeError) as e:
        return Result(path, 0.0, (), str(e).removeprefix(f"{path}: "))
    start = datetime.fromisoformat(item.made.start) if item.made.start else None
    t0 = time.perf_counter()
    Path(item.table).parent.mkdir(parents=True, exist_ok=True)
    write_table(item.table, [d.selection(start=start) for d in found], scores=True)
    # last: the table and scores it describes are complete
    replace(item.made, duration_s=seconds).write(item.record)
    stages["table"] = time.perf_counter() - t0
    return Result(path, seconds, tuple(found), stages=stages)


def ray_task(model: str, item: Item) -> Result:
    """One recording as a Ray task (:mod:`upcall.detect.cluster`): a Ray worker process keeps
    its loaded model between tasks."""
    from upcall.detect.cluster import TASK_CPUS

    init(model, TASK_CPUS, item.settings.model_sha256, item.settings.backend)
    return work(item)


def failed(item: Item, problem: str) -> Result:
    return Result(item.path, 0.0, (), problem)
