"""``upcall detect MODEL RECORDINGS... --out DIR``: up-calls in long recordings, as Raven tables.

    DIR/detect.json                  DetectSettings: the model and settings of the last run
    DIR/<rel>.detections.txt         one Raven selection table per recording (<rel>: the file's
                                     path under the deepest folder holding every input, so the
                                     input tree is mirrored and equal names stay apart)
    DIR/<rel>.scores.csv             with --scores: start_s,score per window
    DIR/<rel>.made.json              what made the table (:mod:`upcall.detect.made`): a rerun
                                     keeps a table only when the model, the settings, the
                                     recording and its start are the ones it was made from
    DIR/detections.txt               every recording's detections as one Raven file sequence
                                     (:mod:`upcall.detect.combined`), DIR/sequence.txt its files
    DIR/detections.csv               the same, one row per detection, times in its file
    DIR/recordings.csv               each recording's start, length and place in the sequence

Each detection's box bounds its call (:mod:`upcall.detect.boxes`); where a recording's absolute
start is known (``--start-times``, the file's metadata or its name:
:mod:`upcall.audio.starttime`) its rows carry Begin Date and Begin Clock Time.

Windows are scored one by one, or with one pass of the network over each batch of windows'
audio where the spectrogram mode and the net allow it (see :mod:`upcall.detect.score`;
detect.json's ``scoring`` says which), by ONNX Runtime (a job folder's net exported once and
cached: :mod:`upcall.export.cached`) or, with ``--backend torch``, the torch engine; detect.json
also records each stage's seconds. Unreadable files, and paths a Raven table cannot hold
(tabs, newlines), are reported, skipped, and make the exit status non-zero.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from upcall.audio import stream
from upcall.detect.combined import Entry, table_path, write_combined
from upcall.detect.made import DetectSettings, Made, is_done, record_path, settings_digest, stamp
from upcall.detect.work import Item, detect_file, failed, init, ray_task, work
from upcall.errors import BatchReport, UpcallError

__all__ = ["DetectSettings", "detect", "detect_file"]  # detect_file: the tests' way in

BACKENDS = ("onnx", "torch")  # --backend
HELP = "detect up-calls in long recordings with a trained job; Raven selection tables out"


def note_settings(out: Path, settings: DetectSettings) -> None:
    """Write detect.json; say so when the last run in ``out`` had other settings (its tables
    are then made again, as their records no longer match)."""
    old = DetectSettings.read(out)
    if old is not None and settings_digest(old) != settings_digest(settings):
        hint = ""
        if old.backend in BACKENDS and replace(old, backend=settings.backend) == settings:
            hint = f" (it ran the net on {old.backend}: --backend {old.backend} keeps its tables)"
        print(
            f"{out / DetectSettings.FILE}: the last run used another model or settings; "
            f"its tables are made again{hint}",
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
    start_times: Path | None = None,
    backend: str = "onnx",
) -> BatchReport:
    """Run detection over ``inputs`` into ``out``; returns the (unfinished) report.

    ``job``: a job folder or an exported .onnx model. ``ray``: the address of a running Ray
    cluster (HOST:PORT) that does the per-file work instead of local processes.
    ``per_window``: score each window on its own even where one pass over a block could.
    ``start_times``: a CSV of the recordings' absolute starts (file,start[,site]).
    ``backend``: "onnx" (ONNX Runtime; a job folder's net is exported once and cached, torch is
    the fallback for a net that cannot be) or "torch" (a job's net run by the torch engine).
    """
    from upcall.audio.starttime import read_start_times

    if not 0 < step_s <= 2.0:
        raise UpcallError(f"--step must be in (0, 2] seconds, got {step_s}")
    if not 0.0 <= threshold <= 1.0:
        raise UpcallError(f"--threshold must be in [0, 1], got {threshold}")
    if smoothing < 1:
        raise UpcallError(f"--smoothing must be at least 1 window (1: none), got {smoothing}")
    if workers < 1:
        raise UpcallError(f"--workers must be at least 1, got {workers}")
    if backend not in BACKENDS:
        raise UpcallError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    times = read_start_times(start_times) if start_times is not None else None
    if times is not None and (note := times.note()):
        print(note, file=sys.stderr)
    job = job.resolve()
    weights, model_hash = model_weights(job)
    files = stream.find_recordings(inputs)
    # the model is loaded here too: how windows are scored, and the step, depend on its net
    loading = time.perf_counter()
    scorer = init(str(job), None, model_hash, backend)
    stages = {"model": time.perf_counter() - loading}
    choice = scorer.choose(round(step_s * stream.RATE), per_window=per_window)
    if scorer.note:
        print(f"network: {scorer.note}", file=sys.stderr)
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
        backend=scorer.model.backend,
        note=scorer.note,
    )
    note_settings(out, settings)
    digest = settings_digest(settings)
    report = BatchReport("recordings")
    items: list[Item] = []
    done, made_of = 0, {}  # each recording's Made, by path
    finished: dict[str, float] = {}  # recordings whose table is of this run: their lengths
    for path, rel in files:
        if problem := unwritable(path):
            report.fail(ascii(str(path)), problem)  # ascii: the report stays one line
            continue
        try:
            made = made_of[str(path)] = _made(path, rel, digest, scores, times)
        except UpcallError as e:
            report.fail(path, str(e).removeprefix(f"{path}: "))
            continue
        table, csv_path = table_path(out, rel), out / f"{rel}.scores.csv"
        if is_done(out, rel, made, table, csv_path if scores else None):
            done += 1
            report.ok()
            finished[str(path)] = _duration(out, rel, path)
            continue
        record = record_path(out, rel)
        csv_out = str(csv_path) if scores else None
        if not scores:  # an earlier run's scores would sit beside a table made from other inputs
            csv_path.unlink(missing_ok=True)
        items.append(Item(str(path), str(table), settings, csv_out, block_s, made, str(record)))
    if made_of:
        print(_sources(list(made_of.values())), file=sys.stderr)
    if done:
        print(f"{done} recording(s) already done in {out}: skipped", file=sys.stderr)
    clock, audio_s = time.perf_counter(), 0.0
    for n, result in enumerate(_results(job, items, workers, ray), start=1):
        report.record(result.path, result.problem)
        for name, took in (result.stages or {}).items():
            stages[name] = stages.get(name, 0.0) + took
        if result.problem is None:
            finished[result.path] = result.seconds
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
    entries = [
        Entry(path, rel, made_of[str(path)], finished[str(path)])
        for path, rel in files
        if str(path) in finished
    ]
    writing = time.perf_counter()
    for line in write_combined(out, entries):
        print(line, file=sys.stderr)
    stages["combined tables"] = time.perf_counter() - writing
    replace(settings, stages={k: round(v, 3) for k, v in stages.items()}).write(out)
    return report


def _made(path: Path, rel: Path, digest: str, scores: bool, times) -> Made:
    """The record ``path``'s table will have: the run's settings, the file as it is now, its
    absolute start (:func:`upcall.audio.starttime.recording_start`)."""
    from upcall.audio.starttime import iso, recording_start

    start = recording_start(path, rel=rel, table=times)
    when = iso(start.when) if start.when is not None else None
    return Made(digest, stamp(path), scores, when, start.source)


def _sources(made: list[Made]) -> str:
    """One line: where the recordings' start times came from."""
    counts: dict[str, int] = {}
    for m in made:
        counts[m.start_source] = counts.get(m.start_source, 0) + 1
    if set(counts) == {"unknown"}:
        return "start times: unknown (no clock times in the tables; see --start-times)"
    return "start times: " + ", ".join(
        f"{n} from {k}" if k != "unknown" else f"{n} unknown" for k, n in counts.items()
    )


def _duration(out: Path, rel: Path, path: Path) -> float:
    """A finished recording's length: from its record, or its header (records of older runs)."""
    old = Made.read(record_path(out, rel))
    if old is not None and old.duration_s is not None:
        return old.duration_s
    return stream.duration_s(path)


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
    digest, backend = items[0].settings.model_sha256, items[0].settings.backend
    if ray is not None:
        from upcall.detect.cluster import ray_results

        yield from ray_results(ray, ray_task, str(job), items, failed)
        return
    from upcall.parallel import cap_workers, default_workers, process_pool

    # never more workers than files, nor than cores: idle workers each load the model, and
    # more than the cores only contend (64 workers on two files ran at 22× instead of 490×)
    workers = cap_workers(workers, len(items))
    if workers <= 1:  # one file at a time in this process: a long one shows its progress
        init(str(job), None, digest, backend)
        yield from (work(replace(item, show=True)) for item in items)
        return
    # each worker's share of the cores: N workers with every core each oversubscribe them
    # (2 workers on 2 cores ran at 0.52× one worker's speed before this)
    threads = max(1, default_workers() // workers)
    print(f"{workers} worker processes, {threads} thread(s) each", file=sys.stderr)
    # process_pool: upcall's one start method (never a fork of this process, which has run
    # torch); the workers die with this process, and stop at once when it is stopped
    args = (str(job), threads, digest, backend)
    # the model's module (torch) loaded once, by the forkserver, not by each worker
    with process_pool(workers, init=init, initargs=args, preload=["upcall.detect.score"]) as pool:
        yield from pool.map(work, items)


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs
    from upcall.audio.starttime import PATTERNS_HELP

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
        "--start-times",
        type=Path,
        metavar="CSV",
        help="a CSV of the recordings' absolute starts, so the tables carry Begin Date and "
        f"Begin Clock Time. {PATTERNS_HELP}",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="onnx",
        help="what runs the network: onnx (ONNX Runtime; a job folder's net is exported to "
        "ONNX once and cached in JOB/.cache, so a job and its export give the same detections; "
        "torch where the net cannot be exported) or torch (the job's net in the torch engine)",
    )
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
        start_times=args.start_times,
        backend=args.backend,
    )
    report.finish()
    return 0
