"""DIR/detections.txt and DIR/detections.csv: every recording's detections in one table.

Made from the per-recording tables of the run (``upcall detect``), each row with its recording's
absolute path (Raven's ``Begin Path``) and its time within that file (``File Offset (s)``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from upcall.audio.raven import read_table, write_table
from upcall.fsutil import atomic_write_text


def table_path(out: Path, rel: Path) -> Path:
    """Where the table of the recording at ``rel`` (under the inputs' common folder) goes."""
    return out / f"{rel}.detections.txt"


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
    write_table(out / "detections.txt", rows, scores=True)
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
