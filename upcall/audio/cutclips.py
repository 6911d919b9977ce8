"""``upcall clips RECORDINGS... --annotations TABLES... --out DATA``: a training set in the Kaggle
layout, cut from long recordings and the Raven selection tables drawn on them.

    DATA/train.csv       clip_name,label: what ``lists``, ``spectrograms`` and ``fit`` read
    DATA/train/*.aiff    2 s, 2000 Hz, 16-bit PCM mono; named <rel, "/" as "__">_<start ms>.aiff
    DATA/clips.csv       where each clip came from (:mod:`upcall.audio.clipscsv`)
    DATA/clips.json      :class:`ClipSettings`; a rerun with other settings is refused (--force)

Tables are tied to recordings by :func:`upcall.audio.pairing.pair` (the one rule); a table covers
its whole recording, and a recording no table covers gives nothing, unless
``--unannotated-negatives`` says it was checked and holds no call. Where the windows go is
:mod:`upcall.audio.clipplan`'s business: positives around each selection with a positive label,
negatives ``K`` per positive clip (a recording without positives: at the positive clips'
rate per second of annotated audio), a share of them around selections of other labels (hard
negatives). A reviewed table (``upcall review``'s ``Verified`` column): its ``yes`` rows are
calls, its ``no`` rows hard negatives (each cut, beside the K), unsure ones left out. Audio is
read by seeking (:func:`upcall.audio.stream.read_span`, resampled to 2 kHz),
so a long file never sits in memory. Each recording's draws come from the seed and its relative
path alone. Clips already in DATA/train (same name, complete) are kept; the CSVs are written at
the end. An unreadable recording is reported and skipped; the exit status is then non-zero.
"""

from __future__ import annotations

import argparse
import io
import os
from dataclasses import astuple, fields, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import soundfile as sf

from upcall.audio import pairing, starttime, stream
from upcall.audio.clipplan import WINDOW_S, ClipSettings, Planned, Recording, plan
from upcall.audio.clipscsv import CLIPS_CSV, HARD_NEGATIVE, POSITIVE, ClipOrigin, write_clips_csv
from upcall.audio.sounds import to_pcm16
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_bytes, atomic_write_csv, check_own_dir, mark_own_dir
from upcall.progress import progress

HELP = "Cut 2-s training clips (Kaggle layout) from long recordings and their Raven tables."
KIND = "clips"  # the ownership mark of DATA


def _check_out(out: Path, settings: ClipSettings, force: bool, inputs: list[Path]) -> None:
    """Refuse what is not ours; on --force or a first run, clear the old clips and CSVs."""
    if out.exists() and not out.is_dir():
        raise UpcallError(f"{out}: is a file, not a folder; --out must be a folder")
    check_own_dir(out, kind=KIND, legacy=(ClipSettings.FILE,), inputs=inputs)
    old = ClipSettings.read(out) if out.is_dir() else None
    if old is not None and old != settings and not force:
        diff = {
            f.name: (a, b)
            for f, a, b in zip(fields(settings), astuple(old), astuple(settings), strict=True)
            if a != b
        }
        raise UpcallError(
            f"{out / ClipSettings.FILE}: DATA was made with other settings (old, new: {diff}); "
            "use --force to cut it again"
        )
    if old is None or force:  # no settings: nothing there is known to be of these settings
        (out / ClipSettings.FILE).unlink(missing_ok=True)
        for path in (out / "train").glob("*.aiff") if (out / "train").is_dir() else ():
            path.unlink()
        for name in ("train.csv", CLIPS_CSV):
            (out / name).unlink(missing_ok=True)
    mark_own_dir(out, KIND)
    settings.write(out)


def _clip_bytes(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()  # encoded in memory: libsndfile reports a full disk as "System error."
    sf.write(buf, to_pcm16(samples), stream.RATE, format="AIFF", subtype="PCM_16")
    return buf.getvalue()


CLIP_BYTES = len(_clip_bytes(np.zeros(stream.WINDOW)))  # the size of every complete clip


def _audio(rec: Recording, start_s: float, channel: int) -> np.ndarray | str:
    """The clip's audio at 2 kHz, or what went wrong reading it."""
    try:
        return stream.read_span(rec.path, start_s, start_s + WINDOW_S, channel=channel)
    except UpcallError as e:
        return str(e).removeprefix(f"{rec.path}: ")
    except sf.LibsndfileError as e:  # the header promised more audio than the file holds
        return f"cannot read {start_s:g} s on: {e} (a cut or damaged file?)"


def _cut(recordings: list[Recording], out: Path, settings: ClipSettings, report: BatchReport):
    """Write every clip not yet in DATA/train; a recording that fails is reported and dropped."""
    folder = out / "train"
    folder.mkdir(parents=True, exist_ok=True)
    bar = progress(total=sum(len(r.clips) for r in recordings), desc="clips", unit="clip")
    try:
        for rec in recordings:
            for clip in rec.clips:
                path = folder / rec.name(clip)
                if not (path.is_file() and path.stat().st_size == CLIP_BYTES):
                    x = _audio(rec, clip.start_s, settings.channel)
                    if isinstance(x, str):
                        report.fail(rec.path, x)
                        rec.failed = True
                        break
                    atomic_write_bytes(path, _clip_bytes(x))
                bar.update(1)
            if not rec.failed:
                report.ok()
    finally:
        bar.close()


def _origins(
    rec: Recording, ann: pairing.Annotations | None, settings: ClipSettings, starts
) -> list[ClipOrigin]:
    """clips.csv's rows of one recording (``ann``: its tables' selections)."""
    when = starttime.recording_start(rec.path, rel=rec.rel, table=starts).when
    found = starts.lookup(rec.path, rec.rel) if starts is not None else None
    site = (found[1] if found else None) or (rec.rel.parts[0] if len(rec.rel.parts) > 1 else "")
    rows = []
    for clip in rec.clips:
        s = ann.selections[clip.box] if ann is not None and clip.box is not None else None
        rows.append(
            ClipOrigin(
                clip_name=rec.name(clip),
                label=clip.label,
                kind=clip.kind,
                recording=str(rec.path),
                rel=rec.rel.as_posix(),
                channel=settings.channel,
                start_s=clip.start_s,
                start_time=None if when is None else when + timedelta(seconds=clip.start_s),
                site=site,
                table="" if s is None else str(ann.sources[clip.box]),
                row=None if s is None else s.row,
                selection_label="" if s is None else s.label,
            )
        )
    return rows


def _summary(recordings: list[Recording], settings: ClipSettings) -> None:
    counts = {POSITIVE: 0, "negative": 0, HARD_NEGATIVE: 0}
    width = max([len(str(r.rel)) for r in recordings] + [9])
    print(f"{'recording':<{width}}  positives  negatives  hard negatives")
    for rec in recordings:
        n = {k: sum(c.kind == k for c in rec.clips) for k in counts}
        note = "" if rec.selections is not None or rec.clips else " (no table: unused)"
        note = " (failed: skipped)" if rec.failed else note
        print(
            f"{rec.rel!s:<{width}}  {n[POSITIVE]:9d}  {n['negative']:9d}  "
            f"{n[HARD_NEGATIVE]:14d}{note}"
        )
        if not rec.failed:
            counts = {k: counts[k] + n[k] for k in counts}
    negatives = counts["negative"] + counts[HARD_NEGATIVE]
    alarms = sum(
        c.box is not None and r.boxes[c.box].false_alarm
        for r in recordings
        if not r.failed
        for c in r.clips
    )
    share = (counts[HARD_NEGATIVE] - alarms) / negatives if negatives else 0.0
    print(
        f"total: {counts[POSITIVE]} positives, {negatives} negatives, of which "
        f"{counts[HARD_NEGATIVE] - alarms} ({share:.0%}) hard: near selections of other labels "
        f"(asked: {settings.hard_negative_share:.0%})"
    )
    if alarms:  # hard negatives too (kind hard-negative in clips.csv), outside the share
        print(f"and {alarms} hard negatives at the detections a reviewer marked no (Verified)")


def make_clips(
    recordings: list[Path],
    annotations: list[Path],
    out: Path,
    settings: ClipSettings,
    *,
    force: bool = False,
) -> BatchReport:
    """Cut the training set into ``out`` (module docstring) and print a summary per recording.

    Returns the report of the recordings (unreadable ones are in it, reported and skipped); the
    caller ends with ``report.finish()``, which raises when any failed. ``force``: cut again
    into a DATA made with other settings.
    """
    if settings.start_times is not None:
        settings = replace(settings, start_times=Path(os.path.abspath(settings.start_times)))
    settings.check()
    out = Path(out)
    inputs = [Path(p) for p in (*recordings, *annotations)]
    for p in inputs:
        if not os.path.exists(p):
            raise UpcallError(f"{p}: no such file or folder")
    starts = starttime.read_start_times(settings.start_times) if settings.start_times else None
    tables = pairing.find_tables([Path(p) for p in annotations])
    found = [
        (f, rel)
        for f, rel in stream.find_recordings(list(map(Path, recordings)))
        if not _inside(f, out)
    ]
    report = BatchReport("recordings")
    recs, paired = _readable(found, tables, settings, report)
    used = _unique([r for r in recs if r.selections is not None or settings.unannotated_negatives],
                   report)  # fmt: skip
    if report.failures and not any(r.selections is not None for r in used):
        report.finish()  # every annotated recording failed: say so, not "no selection"
    plan(used, settings)
    _check_out(out, settings, force, inputs)
    _cut(used, out, settings, report)
    kept = [r for r in used if not r.failed]
    names = {r.name(c) for r in kept for c in r.clips}
    for path in (out / "train").glob("*.aiff"):  # clips of recordings no longer given
        if path.name not in names:
            path.unlink()
    rows = [row for r in kept for row in _origins(r, paired.get(r.path), settings, starts)]
    # the Kaggle layout's labels
    atomic_write_csv(
        out / "train.csv", [("clip_name", "label"), *((c.clip_name, c.label) for c in rows)]
    )
    write_clips_csv(out / CLIPS_CSV, rows)
    known = {r.path: r for r in recs}
    _summary([known.get(f) or Recording(f, rel, 0.0, None, failed=True) for f, rel in found],
             settings)  # fmt: skip
    return report


def _readable(
    found: list[tuple[Path, Path]],
    tables: list[tuple[Path, Path]],
    settings: ClipSettings,
    report: BatchReport,
) -> tuple[list[Recording], dict[Path, pairing.Annotations]]:
    """The recordings that open (the others reported) with their tables' selections (None: no
    table), and the annotations by recording."""
    pairs = pairing.pair(
        found, tables, label_column=settings.label_column, truth=True, no_rows=True, report=report
    )  # of a reviewed table (Verified): its "yes" rows, and its "no" rows for hard negatives
    paired = {a.recording: a for a in pairs}  # an unreadable recording with a table: reported
    failed = {item for item, _ in report.failures}
    recs = []
    for path, rel in found:
        try:
            if str(path) not in failed:
                with stream.open_audio(path, channel=settings.channel) as f:
                    duration = f.frames / f.samplerate
                ann = paired.get(path)
                recs.append(Recording(path, rel, duration, None if ann is None else ann.selections))
        except UpcallError as e:
            report.fail(path, str(e).removeprefix(f"{path}: "))
    return recs, paired


def _unique(recordings: list[Recording], report: BatchReport) -> list[Recording]:
    """Those whose clip names no earlier one's take ("a__b/c.wav" and "a/b__c.wav" would)."""
    seen: dict[str, Path] = {}
    out = []
    for rec in recordings:
        stem = rec.name(Planned(0, POSITIVE)).rsplit("_", 1)[0]
        if stem in seen:
            report.fail(rec.path, f"its clips would be named as {seen[stem]}'s ({stem}_*.aiff)")
        else:
            seen[stem] = rec.path
            out.append(rec)
    return out


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` (our own clips are never recordings)."""
    return Path(os.path.realpath(folder)) in Path(os.path.realpath(path)).parents


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    parser.add_argument("recordings", nargs="+", type=Path, metavar="RECORDINGS",
                        help="recordings (WAV, FLAC, AIFF; any rate and channels) or folders of "
                        "them, searched recursively")  # fmt: skip
    parser.add_argument("--annotations", nargs="+", type=Path, required=True, metavar="TABLES",
                        help="Raven selection tables, or folders of them (recursive); tied to "
                        "recordings by name or Begin File (see README); of a reviewed table "
                        "(Verified), yes rows are calls, no rows hard negatives")  # fmt: skip
    cliargs.add_out(parser, "data folder to write (train.csv, train/, clips.csv, clips.json)",
                    metavar="DATA", required=True)  # fmt: skip
    add_clip_arguments(parser)
    parser.add_argument("--force", action="store_true", help="cut again into a DATA made by "
                        "`upcall clips` with other settings")  # fmt: skip


def add_clip_arguments(parser: argparse.ArgumentParser, *, seed: bool = True) -> None:
    """The options that choose the clips (not the inputs, --out or --force), for ``clips`` and
    ``fit --recordings``; ``seed``: add ``--seed`` too. :func:`clip_settings` reads them."""
    from upcall import cliargs

    add = parser.add_argument
    cliargs.add_labels(parser, "other labels give hard negatives")
    add("--negatives-per-positive", type=float, default=2.0, metavar="K",
        help="negative clips per positive clip")  # fmt: skip
    add("--guard", type=float, default=2.0, metavar="S",
        help="seconds a negative clip keeps from every selection of any label")  # fmt: skip
    add("--placements", type=int, default=1, metavar="N", help="clips per positive selection, "
        "each at a random place holding at least 60 %% of the call")  # fmt: skip
    add("--hard-negative-share", type=float, default=0.5, metavar="F",
        help="share of the negatives drawn around selections of other labels, as far as "
        "there are such selections")  # fmt: skip
    add("--channel", type=int, default=0, metavar="C",
        help="channel of multi-channel files, 0-based (default 0)")  # fmt: skip
    add("--unannotated-negatives", action="store_true", help="a recording no table covers was "
        "checked and holds no call: cut negatives from all of it (default: it gives "
        "nothing)")  # fmt: skip
    add("--start-times", type=Path, metavar="CSV",
        help="start times for clips.csv. " + starttime.PATTERNS_HELP)  # fmt: skip
    if seed:
        cliargs.add_seed(parser, "seed of every clip's place")


def clip_settings(args: argparse.Namespace, *, seed: int | None = None) -> ClipSettings:
    """The ClipSettings of :func:`add_clip_arguments`' options (``seed``: instead of --seed)."""
    from upcall import cliargs

    return ClipSettings(
        label_column=args.label_column, positive=cliargs.positive_labels(args),
        negatives_per_positive=args.negatives_per_positive, guard_s=args.guard,
        placements=args.placements, channel=args.channel,
        unannotated_negatives=args.unannotated_negatives,
        seed=args.seed if seed is None else seed, start_times=args.start_times,
        hard_negative_share=args.hard_negative_share,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    settings = clip_settings(args)
    report = make_clips(args.recordings, args.annotations, args.out, settings, force=args.force)
    print(f"wrote {args.out / 'train.csv'} and {args.out / CLIPS_CSV}")
    report.finish()
    return 0
