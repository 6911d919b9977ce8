"""The server's jobs: one folder per job under the jobs folder, a record of it, and the queue.

Facts followed (NVIDIA/DIGITS source):
- digits/job.py: a job id is ``YYYYMMDD-HHMMSS-xxxx`` (time of creation, 4 hex digits); the job
  lives in ``<jobs_dir>/<id>/`` and is saved there, so it survives a restart;
  ``json_dict()`` is ``{"id", "name", "status"}``.
- digits/status.py: the status names Initialized, Waiting, Running, Done, Aborted, Error; INIT,
  WAIT and RUN count as running.
- digits/scheduler.py ``load_past_jobs``: a job found running at start-up had lost its server;
  DIGITS marks it Aborted. Here it becomes **Error** with a message saying so (never lost
  silently); a job that had not started yet (Initialized, Waiting) is queued again.
- digits/scheduler.py ``delete_job``: a dataset a model uses cannot be deleted.

Work runs in two single-thread executors (``concurrent.futures``): one builds datasets, one
trains models, so several jobs queue on one machine and a model waits for its dataset.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile
from upcall.lock import folder_lock

INIT, WAIT, RUN, DONE, ABORT, ERROR = (
    "Initialized",
    "Waiting",
    "Running",
    "Done",
    "Aborted",
    "Error",
)
RUNNING = (INIT, WAIT, RUN)  # DIGITS's Status.is_running()
TYPES = {"dataset": "Image Classification Dataset", "model": "Image Classification Model"}
LOCK_FILE = ".upcall-digits-serve.lock"  # held by the one server of a jobs folder
MAX_ERROR = 1000  # characters of a job's error text (status JSON, digits_job.json)
CSS = {
    INIT: "warning",
    WAIT: "warning",
    RUN: "info",
    DONE: "success",
    ABORT: "warning",
    ERROR: "danger",
}


@dataclass(frozen=True)
class JobRecord(JsonFile):
    """<jobs_dir>/<id>/digits_job.json: what the server knows of one job."""

    FILE = "digits_job.json"

    id: str
    kind: str  # "dataset" | "model"
    name: str
    username: str
    group: str = ""
    history: tuple[tuple[str, float], ...] = ()  # (status, unix time), oldest first
    form: dict[str, str] = field(default_factory=dict)  # the fields as posted, with defaults
    dataset_id: str | None = None  # models: the dataset job they train on
    engine: str | None = None  # models: the upcall engine that trains them
    error: str | None = None  # the reason of an Error status

    @property
    def status(self) -> str:
        return self.history[-1][0] if self.history else INIT

    @property
    def submitted(self) -> float:
        return self.history[0][1] if self.history else 0.0

    def elapsed(self) -> float:
        """Seconds spent running (DIGITS's "elapsed")."""
        total, started = 0.0, None
        for status, t in self.history:
            if status == RUN:
                started = t
            elif started is not None:
                total, started = total + t - started, None
        return total + (time.time() - started if started is not None else 0.0)

    def json_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "status": self.status}


def new_id(now: float | None = None) -> str:
    """DIGITS's job id: ``YYYYMMDD-HHMMSS-xxxx``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}-{secrets.token_hex(2)}"


class JobStore:
    """The jobs of one jobs folder, their records on disk, and the two work queues.

    ``work`` maps a job kind to ``function(store, record) -> None``, which runs the job (raising
    UpcallError for an Error, returning normally when done or aborted).
    """

    def __init__(self, jobs_dir: Path, work: dict) -> None:
        self.dir = Path(jobs_dir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        # One server per jobs folder: two would both queue the same waiting job again and then
        # disagree about its state. The kernel drops the lock when the server dies.
        self._held = contextlib.ExitStack()
        try:
            self._held.enter_context(folder_lock(self.dir / LOCK_FILE))
        except UpcallError:
            raise UpcallError(
                f"{self.dir}: another upcall digits serve is using this jobs folder; stop it, "
                "or give this one another --jobs-dir"
            ) from None
        self.work = work
        self.lock = threading.RLock()
        self.jobs: dict[str, JobRecord] = {}
        # id -> stop(kill=False) of its running work: SIGINT (snapshot, then stop), or kill at once
        self.abort_hooks: dict[str, Callable[..., None]] = {}
        self.queues = {k: ThreadPoolExecutor(1, thread_name_prefix=f"digits-{k}") for k in TYPES}
        self._load()

    # -- records ----------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        return self.dir / job_id

    def get(self, job_id: str) -> JobRecord | None:
        with self.lock:
            return self.jobs.get(job_id)

    def all(self, kind: str | None = None) -> list[JobRecord]:
        """Newest first, as DIGITS lists them."""
        with self.lock:
            jobs = [j for j in self.jobs.values() if kind is None or j.kind == kind]
        return sorted(jobs, key=lambda j: j.id, reverse=True)

    def save(self, record: JobRecord) -> JobRecord:
        with self.lock:
            self.jobs[record.id] = record
            if self.folder(record.id).is_dir():
                record.write(self.folder(record.id))
        return record

    def update(self, job_id: str, **changes) -> JobRecord | None:
        """Replace fields of the job's current record; None when the job was deleted."""
        with self.lock:
            record = self.jobs.get(job_id)
            return None if record is None else self.save(replace(record, **changes))

    def set_status(self, job_id: str, status: str, error: str | None = None) -> JobRecord | None:
        """Append ``status`` to the job's history; None when the job was deleted meanwhile."""
        with self.lock:
            record = self.jobs.get(job_id)
            if record is None:
                return None
            history = (*record.history, (status, time.time()))
            return self.save(replace(record, history=history, error=error or record.error))

    def _load(self) -> None:
        requeue = []
        for folder in sorted(p for p in self.dir.iterdir() if p.is_dir()):
            try:
                record = JobRecord.read(folder)
            except UpcallError:
                continue  # DIGITS skips a job it cannot load, too
            if record is None:
                continue
            self.jobs[record.id] = record
            if record.status == RUN:
                self.set_status(record.id, ERROR, "the server stopped while this job was running")
            elif record.status in (INIT, WAIT):
                requeue.append(record.id)
        for job_id in requeue:  # datasets first: models wait for theirs
            if self.jobs[job_id].kind == "dataset":
                self.submit(job_id)
        for job_id in requeue:
            if self.jobs[job_id].kind == "model":
                self.submit(job_id)

    # -- work ---------------------------------------------------------------------------------
    def create(self, record: JobRecord) -> JobRecord:
        """Save a new job (status Initialized) with its folder; the caller fills the folder and
        then calls :meth:`submit`."""
        record = replace(record, history=((INIT, time.time()),))
        self.dir.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                self.folder(record.id).mkdir()
                break
            except FileExistsError:  # two jobs in one second with the same 4 hex digits
                record = replace(record, id=new_id())
        return self.save(record)

    def submit(self, job_id: str) -> None:
        with self.lock:
            record = self.jobs.get(job_id)
            if record is None or record.status not in (INIT, WAIT):
                return  # aborted (or deleted) before it was queued
            record = self.set_status(job_id, WAIT)
        self.queues[record.kind].submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        record = self.get(job_id)
        if record is None or record.status not in (INIT, WAIT):
            return  # aborted or deleted while queued
        if record.kind == "model" and not self._dataset_ready(record):
            return
        self.set_status(job_id, RUN)
        try:
            self.work[record.kind](self, self.get(job_id))
        except Exception as e:  # anything: the job must end in a status, never stay Running
            self._finish(job_id, ERROR, one_line(str(e)) or type(e).__name__)
            return
        finally:
            self.abort_hooks.pop(job_id, None)
        self._finish(job_id, DONE)

    def _finish(self, job_id: str, status: str, error: str | None = None) -> None:
        """End a Running job (never one aborted or deleted meanwhile)."""
        with self.lock:
            record = self.jobs.get(job_id)
            if record is not None and record.status == RUN:
                self.set_status(job_id, status, error)

    def _dataset_ready(self, record: JobRecord) -> bool:
        """Wait for the model's dataset; a dataset that failed aborts the model (as DIGITS)."""
        while True:
            dataset = self.get(record.dataset_id or "")
            me = self.get(record.id)
            if me is None or me.status not in (INIT, WAIT):
                return False
            if dataset is None or dataset.status in (ABORT, ERROR):
                self.set_status(record.id, ABORT)
                return False
            if dataset.status == DONE:
                return True
            time.sleep(0.1)

    def abort(self, job_id: str) -> bool:
        """Abort a running job (DIGITS: only one that is running); False when it is not."""
        with self.lock:
            record = self.jobs.get(job_id)
            if record is None or record.status not in RUNNING:
                return False
            self.set_status(job_id, ABORT)
            hook = self.abort_hooks.get(job_id)
        if hook is not None:
            hook()
        return True

    def users_of(self, dataset_id: str) -> list[JobRecord]:
        return [j for j in self.all("model") if j.dataset_id == dataset_id]

    def delete(self, job_id: str) -> None:
        """Abort the job, end its work (its child killed) and remove its folder."""
        self.abort(job_id)
        with self.lock:
            self.jobs.pop(job_id, None)
            hook = self.abort_hooks.get(job_id)
        if hook is not None:
            hook(kill=True)
        end = time.monotonic() + 10
        while job_id in self.abort_hooks and time.monotonic() < end:
            time.sleep(0.05)  # the worker forgets the hook once its child has ended
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def shutdown(self) -> None:
        """Stop: running jobs end Aborted, as DIGITS's scheduler aborts them when it stops;
        jobs not started yet stay queued for the next start."""
        for job in self.all():
            hook = self.abort_hooks.get(job.id)
            if job.status == RUN:
                self.set_status(job.id, ABORT)
            if hook is not None:
                hook(kill=True)  # the child would die with the server anyway
        for q in self.queues.values():
            q.shutdown(wait=False, cancel_futures=True)
        self._held.close()


def one_line(text: str, limit: int = MAX_ERROR) -> str:
    """``text`` as one line of at most ``limit`` characters (an error that quotes a 150 MB line
    must not become a 150 MB status answer)."""
    line = " ".join(text[: limit + 1].split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
