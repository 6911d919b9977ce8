"""JOB/digits.json: which DIGITS job trains a job folder (written before anything is submitted).

The model name is chosen and written here before the create request, so a run that died at any
point finds its job again: by id once DIGITS answered, by name when the answer was lost. A sweep
resumed later therefore never submits a job twice.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from upcall.jsonfile import JsonFile


@dataclass(frozen=True)
class DigitsRecord(JsonFile):
    """The DIGITS server, dataset and model job behind a job folder."""

    FILE: ClassVar[str] = "digits.json"

    url: str
    model_name: str  # unique per submission (job folder + time), so a lookup by name is safe
    dataset_name: str | None = None
    dataset_id: str | None = None
    model_id: str | None = None  # None: created and lost in transit, or not created yet
    status: str | None = None  # DIGITS's status when last seen
    outputs: dict = field(default_factory=dict)  # table_data.json: "<output> (val) last" ...

    @classmethod
    def new(cls, job: Path, url: str) -> DigitsRecord:
        stamp = f"{job.resolve()} {time.time_ns()}"
        return cls(url=url, model_name=f"{job.name} {hashlib.sha1(stamp.encode()).hexdigest()[:8]}")

    def update(self, job: Path, **changes: object) -> DigitsRecord:
        """The record with ``changes``, written to ``job`` at once."""
        record = replace(self, **changes)
        record.write(job)
        return record
