"""``upcall presence DETECTIONS --out DIR``: detections per hour and per day against recording
effort, hours and days with presence, and a diel plot; all bins in UTC.

DETECTIONS is a ``detect`` output folder or selection tables (files or folders). From a detect
folder, recordings.csv (:mod:`upcall.survey.effort`) gives each recording's start and length:
its per-file table (DIR/<rel>.detections.txt; never the combined detections.txt, so each
detection counts once) is placed on the clock, and the recorded spans are the effort, so an hour
without audio is "no effort", not zero. From tables alone, times come from their Begin Date and
Begin Clock Time columns and the effort is unknown (said so; hours without detections are then
"unknown", not zero). A detection counts in the hour its Begin Time falls in. Detections that
cannot be placed (a recording whose start is unknown, a row without a clock time) are counted
and reported per recording, never dropped silently.

Writes DIR/presence.csv (per ``--bin``: hour or day), DIR/diel.png (date × hour of day) and
DIR/presence.json (:class:`Presence`, the summary the HTML report shows).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from upcall import cliargs
from upcall.audio import pairing, raven
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_write_csv
from upcall.jsonfile import JsonFile
from upcall.survey.effort import RECORDINGS_CSV, detections_table, read_effort

HELP = "detections per hour and day against recording effort (UTC): CSV and a diel plot"
HOUR = timedelta(hours=1)


@dataclass
class Placed:
    """Detections on the clock, the recorded spans, and what could not be placed."""

    source: str  # "detect folder DIR" or "tables"
    times: list[datetime] = field(default_factory=list)  # UTC, one per detection
    effort: list[tuple[datetime, datetime]] | None = None  # recorded spans; None: unknown
    unplaced: Counter = field(default_factory=Counter)  # recording/table -> detections
    unplaced_hours: float = 0.0  # audio of recordings whose start is unknown
    below: int = 0  # detections of the wanted labels scoring under --threshold: not counted


def _keep(
    placed: Placed, selections: list[raven.Selection], threshold: float, labels: set[str] | None
) -> list:
    """The selections that count; those of the wanted labels under ``threshold`` are counted in
    ``placed.below``, so that a threshold above detect's own never hides them silently."""
    wanted = [s for s in selections if labels is None or s.label in labels]
    kept = [s for s in wanted if s.score is None or s.score >= threshold]
    placed.below += len(wanted) - len(kept)
    return kept


def _rows(table: raven.Table) -> list[raven.Selection]:
    """A reviewed table's yes rows; every row of any other."""
    return table.truth() if table.verified is not None else table.selections


def from_folder(
    folder: Path, *, threshold: float, labels: set[str] | None, report: BatchReport
) -> Placed:
    """A detect output folder with recordings.csv. A recording without its per-file table is
    reported and left out, its effort too (what it holds is not known)."""
    placed = Placed(f"detect folder {folder}", effort=[])
    for r in read_effort(folder) or []:
        table = detections_table(folder, r.rel)
        if not table.is_file():
            report.fail(f"{folder / RECORDINGS_CSV}: {r.rel}",
                        f"no table {table.name} (detect failed or was interrupted on it: rerun "
                        "detect); left out, its effort too")  # fmt: skip
            continue
        report.ok()
        kept = _keep(placed, _rows(raven.read(table)), threshold, labels)
        if r.start_time is None:
            placed.unplaced[r.rel] += len(kept)
            placed.unplaced_hours += r.duration_s / 3600
            continue
        start = r.start_time.astimezone(UTC)
        placed.effort.append((start, start + timedelta(seconds=r.duration_s)))
        placed.times += [start + timedelta(seconds=s.begin_s) for s in kept]
    return placed


def from_tables(paths: list[Path], *, threshold: float, labels: set[str] | None) -> Placed:
    """Selection tables: times from Begin Date + Begin Clock Time; the effort unknown."""
    placed = Placed("tables")
    # pairing's table discovery: notes and detect's combined table passed over, a folder
    # without tables or a file that is none an error naming it
    for path, _ in pairing.find_tables(paths):
        table = raven.read(path)
        for s in _keep(placed, _rows(table), threshold, labels):
            if s.clock is None:
                placed.unplaced[str(path)] += 1
            else:
                placed.times.append(s.clock.astimezone(UTC))
    return placed


@dataclass(frozen=True)
class Bin:
    """One hour or day (UTC): its recorded seconds (None: unknown) and detections."""

    start: datetime
    effort_s: float | None
    detections: int
    hours_with_effort: int | None = None  # days: hours holding any recording
    hours_with_presence: int = 0  # days: hours holding a detection

    @property
    def presence(self) -> str:
        """ "1" (detections), "0" (recorded, none), "" (no effort, or effort unknown)."""
        if self.detections:
            return "1"
        return "0" if self.effort_s else ""


def _floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def hours(placed: Placed) -> list[Bin]:
    """Every hour of the days from the first to the last placed detection or effort."""
    ends = placed.times + [t for span in placed.effort or [] for t in span]
    if not ends:
        return []
    first = min(ends).replace(hour=0, minute=0, second=0, microsecond=0)
    last = max(ends)
    n = int((last - first) / timedelta(days=1)) * 24 + 24
    counts = Counter(int((_floor(t) - first) / HOUR) for t in placed.times)
    recorded = [0.0] * n
    for a, b in placed.effort or []:
        h = int((_floor(a) - first) / HOUR)
        while a < b:  # spans of several recordings in one hour add up (capped below)
            edge = first + (h + 1) * HOUR
            recorded[h] += (min(b, edge) - a).total_seconds()
            a, h = edge, h + 1
    known = placed.effort is not None
    return [
        Bin(first + h * HOUR, min(recorded[h], 3600.0) if known else None, counts[h])
        for h in range(n)
    ]


def days(hourly: list[Bin]) -> list[Bin]:
    """The hours grouped by UTC date."""
    out = []
    for i in range(0, len(hourly), 24):
        day = hourly[i : i + 24]
        known = day[0].effort_s is not None
        out.append(
            Bin(
                day[0].start,
                sum(h.effort_s for h in day) if known else None,
                sum(h.detections for h in day),
                sum(bool(h.effort_s) for h in day) if known else None,
                sum(bool(h.detections) for h in day),
            )
        )
    return out


@dataclass(frozen=True)
class Presence(JsonFile):
    """DIR/presence.json: what ``upcall presence`` states (bins in UTC)."""

    FILE = "presence.json"
    source: str  # "detect folder DIR" or "tables"
    effort_known: bool  # False: from tables alone, hours without detections are unknown
    threshold: float
    labels: tuple[str, ...] | None
    bin: str  # presence.csv's bins: "hour" or "day"
    first_day: str | None  # YYYY-MM-DD (UTC)
    last_day: str | None
    detections: int  # placed on the clock
    recorded_hours: float | None  # audio hours placed on the clock
    hours_with_effort: int | None
    hours_with_presence: int
    days_with_effort: int | None
    days_with_presence: int
    unplaced_detections: int  # could not be placed on the clock (start unknown)
    unplaced_recordings: tuple[str, ...]  # their recordings or tables
    unplaced_hours: float  # audio of recordings whose start is unknown


def summary(placed: Placed, hourly: list[Bin], daily: list[Bin], args) -> Presence:
    known = placed.effort is not None
    return Presence(
        source=placed.source,
        effort_known=known,
        threshold=args.threshold,
        labels=tuple(sorted(set(cliargs.positive_labels(args) or ()))) or None,
        bin=args.bin,
        first_day=daily[0].start.date().isoformat() if daily else None,
        last_day=daily[-1].start.date().isoformat() if daily else None,
        detections=len(placed.times),
        recorded_hours=sum(h.effort_s for h in hourly) / 3600 if known else None,
        hours_with_effort=sum(bool(h.effort_s) for h in hourly) if known else None,
        hours_with_presence=sum(bool(h.detections) for h in hourly),
        days_with_effort=sum(bool(d.effort_s) for d in daily) if known else None,
        days_with_presence=sum(bool(d.detections) for d in daily),
        unplaced_detections=sum(placed.unplaced.values()),
        unplaced_recordings=tuple(sorted(placed.unplaced)),
        unplaced_hours=placed.unplaced_hours,
    )


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.2f}"


def write_csv(path: Path, bins: list[Bin], kind: str) -> None:
    """presence.csv: hours (start_utc,date,hour,effort_min,...) or days (date,effort_min,...)."""
    if kind == "hour":
        rows = [["start_utc", "date", "hour", "effort_min", "detections", "presence"]]
        rows += [[b.start.isoformat(), b.start.date().isoformat(), b.start.hour,
                  _minutes(b.effort_s), b.detections, b.presence] for b in bins]  # fmt: skip
    else:
        rows = [["date", "effort_min", "hours_with_effort", "detections",
                 "hours_with_presence", "presence"]]  # fmt: skip
        rows += [[b.start.date().isoformat(), _minutes(b.effort_s),
                  "" if b.hours_with_effort is None else b.hours_with_effort,
                  b.detections, b.hours_with_presence, b.presence] for b in bins]  # fmt: skip
    atomic_write_csv(path, rows)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "detections",
        type=Path,
        nargs="+",
        metavar="DETECTIONS",
        help="a detect output folder (with recordings.csv), or selection tables (files or "
        "folders, searched recursively) with Begin Date and Begin Clock Time columns",
    )
    cliargs.add_out(parser, "folder for presence.csv, diel.png and presence.json", required=True)
    cliargs.add_threshold(parser, "only detections scoring at least P count (rows without a "
                          "score always count)")  # fmt: skip
    parser.add_argument(
        "--bin", choices=("hour", "day"), default="hour", help="the rows of presence.csv"
    )
    cliargs.add_labels(parser, "selections of other labels are not counted", column=False)


def _is_detect_folder(paths: list[Path]) -> bool:
    with_effort = [p for p in paths if p.is_dir() and (p / RECORDINGS_CSV).is_file()]
    if with_effort and len(paths) > 1:
        raise UpcallError(f"{with_effort[0]}: a detect folder is given alone, not with others")
    return bool(with_effort)


def gather(args: argparse.Namespace, report: BatchReport) -> Placed:
    labels = cliargs.positive_labels(args)
    kw = dict(threshold=args.threshold, labels=set(labels) if labels else None)
    if _is_detect_folder(args.detections):
        return from_folder(args.detections[0], report=report, **kw)
    print(f"{', '.join(map(str, args.detections))}: no recordings.csv (a detect folder's): "
          "recording effort unknown; hours without detections are shown as unknown, not zero",
          file=sys.stderr)  # fmt: skip
    return from_tables(args.detections, **kw)


def run(args: argparse.Namespace) -> int:
    from upcall.survey.diel import plot_diel

    report = BatchReport("recordings")
    placed = gather(args, report)
    for name, n in sorted(placed.unplaced.items()):
        print(f"{name}: {n} detection(s) not placed on the clock (start time unknown; "
              "detect --start-times gives it)", file=sys.stderr)  # fmt: skip
    if placed.below:
        print(f"{placed.below} detection(s) scored under --threshold {args.threshold:g}: not "
              "counted (a lower --threshold counts them)", file=sys.stderr)  # fmt: skip
    if not placed.times and not placed.effort:
        raise UpcallError(
            f"{args.detections[0]}: nothing to place on the clock: no recording with a known "
            "start time and no detection with a Begin Date and Begin Clock Time"
        )
    hourly = hours(placed)
    daily = days(hourly)
    result = summary(placed, hourly, daily, args)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "presence.csv", hourly if args.bin == "hour" else daily, args.bin)
    plot_diel(hourly, args.out / "diel.png", effort_known=result.effort_known)
    result.write(args.out)
    _print(result, daily)
    report.finish()
    return 0


def _print(p: Presence, daily: list[Bin]) -> None:
    effort = "unknown (tables only)" if not p.effort_known else f"{p.recorded_hours:.2f} h"
    print(f"source: {p.source}\nbins: UTC\nrecording effort: {effort}\n"
          f"detections: {p.detections}\n"
          f"hours with presence: {p.hours_with_presence}"
          + (f" of {p.hours_with_effort} with effort" if p.effort_known else "")
          + f"\ndays with presence: {p.days_with_presence}"
          + (f" of {p.days_with_effort} with effort" if p.effort_known else ""))  # fmt: skip
    if p.unplaced_detections:
        print(f"not placed on the clock: {p.unplaced_detections} detection(s) in "
              f"{len(p.unplaced_recordings)} recording(s)/table(s)")  # fmt: skip
    print("\ndate        effort_h  hours_effort  detections  hours_presence")
    for d in daily:
        eh = "?" if d.effort_s is None else f"{d.effort_s / 3600:.2f}"
        he = "?" if d.hours_with_effort is None else str(d.hours_with_effort)
        print(f"{d.start.date().isoformat()}  {eh:>8}  {he:>12}  {d.detections:>10}  "
              f"{d.hours_with_presence:>14}")  # fmt: skip
