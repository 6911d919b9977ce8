"""What made each detection table, so a rerun redoes exactly what changed.

    DIR/detect.json         :class:`DetectSettings`: the model and settings of the last run
    DIR/<rel>.made.json     :class:`Made`, written after the table (and scores) it describes

A recording's table is kept on a rerun only when its record names the same settings digest
(detect.json's settings, the model's snapshot hash included) and the same recording: size,
modification time and a hash of its first and last :data:`EDGE` bytes. Hashing whole archives
would double the I/O of a run that reads each file once; a replaced recording changes its size,
its time or (for an in-place edit of the same length) its header or end. A table without its
record, or with a record of other inputs, is made again; so is one whose recording's absolute
start (its clock times) is no longer the one it was made with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile

EDGE = 1 << 20  # bytes hashed at each end of a recording (1 MiB: the header and 4 min at 2 kHz)


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
    # "tight": boxes bound the call (upcall.detect.boxes); tables of earlier runs, made without
    # this key, spanned the windows that fired and are made again
    boxes: str = "tight"
    # what ran the net: "torch" (a job's, in runs before it was recorded), "onnx" (ONNX Runtime,
    # on an exported model, as always, or on a job's cached export), "caffe"
    backend: str = "torch"
    # not settings (left out of comparisons and the digest): how the net was run, when torch
    # stood in for ONNX Runtime, and the last run's seconds per stage (read, spectrogram,
    # network, events, boxes, writing, ...: summed over its recordings and processes)
    note: str = field(default="", compare=False)
    stages: dict[str, float] | None = field(default=None, compare=False)

    UNHASHED: ClassVar[tuple[str, ...]] = ("note", "stages")


@dataclass(frozen=True)
class RecordingStamp:
    """A recording as it was read: enough to notice it was replaced, without reading it all."""

    size: int
    mtime_ns: int
    edges_sha256: str  # SHA-256 of the first and last EDGE bytes


@dataclass(frozen=True)
class Made(JsonFile):
    """DIR/<rel>.made.json: what the table beside it was made from."""

    FILE = "made.json"
    settings_sha256: str  # digest of the run's DetectSettings (model snapshot hash included)
    recording: RecordingStamp
    scores: bool  # <rel>.scores.csv was written too
    start: str | None = None  # the recording's absolute start (ISO 8601 with offset), if known
    start_source: str = "unknown"  # where the start came from (upcall.audio.starttime.Start)
    duration_s: float | None = None  # the recording's length (None in records of older runs)


def stamp(path: Path) -> RecordingStamp:
    """The :class:`RecordingStamp` of ``path``; UpcallError when it cannot be read."""
    try:
        st = path.stat()
        h = hashlib.sha256()
        with open(path, "rb") as f:
            h.update(f.read(EDGE))
            if st.st_size > EDGE:
                f.seek(max(EDGE, st.st_size - EDGE))
                h.update(f.read(EDGE))
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from None
    return RecordingStamp(st.st_size, st.st_mtime_ns, h.hexdigest())


def settings_digest(settings: JsonFile) -> str:
    """What a table's record names: the settings, less what is no setting (:data:`UNHASHED`);
    the backend is left out where runs before it was recorded used it too (torch; ONNX Runtime
    for an exported .onnx model, the only one that runs it), so their tables are kept."""
    value = settings.to_json()
    for key in getattr(settings, "UNHASHED", ()):
        value.pop(key, None)
    onnx_file = str(value.get("model", "")).lower().endswith(".onnx")
    if value.get("backend") == "torch" or onnx_file:
        value.pop("backend", None)
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def record_path(out: Path, rel: Path) -> Path:
    return out / f"{rel}.made.json"


def is_done(out: Path, rel: Path, made: Made, table: Path, scores_csv: Path | None) -> bool:
    """Whether ``table`` (and ``scores_csv``, when asked for) were made from ``made``'s inputs."""
    try:
        old = Made.read(record_path(out, rel))
    except UpcallError:  # a damaged record: make the table again
        return False
    if old is None or not table.is_file():
        return False
    if (old.settings_sha256, old.recording) != (made.settings_sha256, made.recording):
        return False
    if (old.start, old.start_source) != (made.start, made.start_source):
        return False  # the table's clock times would be other ones
    return scores_csv is None or (old.scores and scores_csv.is_file())
