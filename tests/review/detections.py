"""A small detect output folder over real synthetic recordings, for the review tests.

Two one-minute ``synth-recording`` files at two sites (audio/site1/a.wav, audio/site2/b.wav);
DET/<rel>.detections.txt as ``detect`` writes them (Score, Begin Date / Clock Time, Peak Score
Time; the true up-calls scored high, false alarms scored lower, one row under the threshold),
DET/recordings.csv (absolute paths, start times), and detect's combined table beside a
detect.json (which review passes over).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from upcall.audio import raven
from upcall.audio.raven import Selection
from upcall.audio.recording import RecordingSettings, write_recording
from upcall.survey.effort import RecordingEffort, write_effort

START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
RELS = ("site1/a.wav", "site2/b.wav")


@dataclass(frozen=True)
class Detections:
    det: Path  # the detect folder
    audio: Path  # the recordings' root
    tables: dict[str, list[Selection]]  # rel -> rows as written
    truth: dict[str, list[Selection]]  # rel -> the true up-calls

    @property
    def reviewed(self) -> int:
        """Rows at or above the default threshold (0.5)."""
        return sum(1 for rows in self.tables.values() for s in rows if s.score >= 0.5)


def _row(begin: float, end: float, low: float, high: float, score: float, start: datetime):
    return Selection(begin, end, low, high, label="upcall", score=score,
                     clock=start + timedelta(seconds=begin), peak_s=(begin + end) / 2)  # fmt: skip


def make_detections(root: Path) -> Detections:
    audio, det = root / "audio", root / "det"
    tables, truth, effort = {}, {}, []
    for n, rel in enumerate(RELS):
        wav = audio / rel
        wav.parent.mkdir(parents=True, exist_ok=True)
        calls = [s for s in write_recording(wav, RecordingSettings(minutes=1, seed=n + 1))
                 if s.label == "upcall"]  # fmt: skip
        start = START + timedelta(minutes=n)
        rows = [_row(s.begin_s, s.end_s, s.low_hz, s.high_hz, 0.95 - 0.1 * k, start)
                for k, s in enumerate(calls)]  # fmt: skip
        rows += [_row(5.0 + 10 * n, 6.5 + 10 * n, 60, 200, 0.7, start),  # false alarms
                 _row(40.0, 41.2, 80, 240, 0.55, start),
                 _row(12.0, 13.0, 70, 180, 0.3, start)]  # fmt: skip
        rows.sort(key=lambda s: s.begin_s)
        out = det / f"{rel}.detections.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        raven.write_table(out, rows, scores=True)
        tables[rel], truth[rel] = rows, calls
        effort.append(RecordingEffort(rel, str(wav), start, "file name", 60.0))
    write_effort(det, effort)
    (det / "detect.json").write_text("{}")
    combined = [replace(s, begin_file=Path(rel).name) for rel in RELS for s in tables[rel]]
    raven.write_table(det / "detections.txt", combined, scores=True)
    return Detections(det, audio, tables, truth)
