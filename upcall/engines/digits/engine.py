"""The digits engine: a DIGITS server trains the job; the results come back as a job folder.

The job's dataset lists become a DIGITS text-file dataset (made once per dataset build, found
again by name), the job's net a custom network with the job's solver settings
(:mod:`upcall.digits.fields`). While DIGITS trains, its ``caffe_output.log`` (``/files/<id>/...``)
is read with the caffe engine's log rules into the shared run loop's events; when it is Done the
snapshots (``.caffemodel`` + ``.solverstate``, so they count as sets) come through ``/files``,
DIGITS's prototxts, labels and mean from ``download.tar.gz`` into ``JOB/digits/``, and the
outputs' last/min/max from ``table_data.json`` into ``JOB/digits.json``. DIGITS's log gives a
test's loss and accuracy only, over Caffe's pass that wraps around the validation set: they are
kept apart (``caffe_logged``), and a test with a fetched snapshot is scored here, each
validation clip once (:meth:`_Remote.score`); the iteration-0 test has DIGITS's figures only.

JOB/digits.json is written before each create request (:mod:`.record`), so a run that died, or a
sweep resumed, attaches to the job it made instead of submitting it again.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from upcall.data.dataset import fingerprint
from upcall.digits.client import ACTIVE, FINISHED, DigitsClient, DigitsError
from upcall.digits.fields import dataset_fields, model_fields
from upcall.engines.base import TRAIN_LOCK, JobStatus, local_status
from upcall.engines.caffe.engine import CAFFE_LOG
from upcall.engines.caffe.log import LogState
from upcall.engines.digits.options import Options
from upcall.engines.digits.record import DigitsRecord
from upcall.engines.loop import Display, Event, Log, Scored, Snapshotted, Step, Tested, run_training
from upcall.errors import UpcallError
from upcall.job import snapshots as sets
from upcall.job.config import JobConfig, init_weights
from upcall.job.records import Summary
from upcall.job.spec import JobSpec, job_dir, load_job
from upcall.job.state import clear_results, start_point
from upcall.lock import folder_lock

DIGITS_FILES = "digits"  # JOB/digits/: what download.tar.gz holds (DIGITS's own prototxts)


class DigitsEngine:
    """Trains a job on a DIGITS server (``--digits-url``)."""

    name = "digits"

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()

    def client(self) -> DigitsClient:
        if not self.options.url:
            raise UpcallError("--engine digits needs --digits-url URL (the DIGITS server)")
        return DigitsClient(self.options.url, username=self.options.username)

    def train(self, job: Path, *, resume: bool = False, restart: bool = False) -> Summary:
        client = self.client()
        spec = load_job(job)
        for data in (spec.train_data, spec.test_data):
            if data is not None and data.kind != "Data":  # DIGITS takes LMDB datasets only
                raise UpcallError(
                    f"{spec.job}: the digits engine sends LMDB datasets (Data layers), not a "
                    f"{data.kind} layer's files; train it with --engine torch or caffe"
                )
        if init_weights(spec.job) is not None:  # DIGITS's pretrained model is a server path
            raise UpcallError(
                f"{spec.job / 'config.json'}: init_weights is set; the digits engine starts "
                "from its own fillers: train it with --engine torch or caffe"
            )
        with folder_lock(spec.job / TRAIN_LOCK):
            record = DigitsRecord.read(spec.job)
            if record is not None and (record.model_id is None or not restart):
                # our DIGITS job (or a create whose answer was lost, found again by name): its
                # results are fetched anew; without --resume, a job holding them is refused
                if not resume:
                    start_point(spec, resume=False, restart=restart)
                clear_results(spec)
            else:
                if resume:
                    raise UpcallError(
                        f"{spec.job}: --resume asked for, but no DIGITS job is recorded in "
                        f"{spec.job / DigitsRecord.FILE}; train it with --restart"
                    )
                start_point(spec, resume=False, restart=restart)
                (spec.job / DigitsRecord.FILE).unlink(missing_ok=True)
                record = DigitsRecord.new(spec.job, client.url).update(spec.job)
            record = self._submit(client, spec, record)
            summary = run_training(
                spec,
                _Remote(spec, client, record, self.options),
                start=0,
                tensorboard=self.options.tensorboard,
            )
            self._collect(client, spec, record)
            return summary

    def status(self, job: Path) -> JobStatus:
        job = job_dir(job)
        here = local_status(job)
        if here in (JobStatus.RUNNING, JobStatus.DONE):
            return here
        record = DigitsRecord.read(job)
        if record is None or record.model_id is None:
            return JobStatus.NEW  # train() finds a lost create by name before submitting
        try:
            answer = self.client().status(record.model_id)
        except DigitsError as e:
            if e.status == 404:
                return JobStatus.NEW
            raise
        if answer.get("status") in ACTIVE:
            return JobStatus.RUNNING
        if answer.get("status") == "Done":
            return JobStatus.RESUMABLE  # trained there: train(resume=True) fetches the results
        return JobStatus.NEW  # Aborted or Error: submit again

    def _submit(self, client: DigitsClient, spec: JobSpec, record: DigitsRecord) -> DigitsRecord:
        """The recorded DIGITS model job, made (with its dataset) unless it exists."""
        if record.model_id is not None:
            return record
        found = client.find(record.model_name, "models")
        if found:
            return record.update(spec.job, model_id=found[-1]["id"])
        record = self._dataset(client, spec, record)
        fields = model_fields(
            spec, name=record.model_name, dataset_id=record.dataset_id, gpu=self.options.gpu
        )
        jobs = client.create_models(fields)
        return record.update(spec.job, model_id=jobs[0]["id"], status=jobs[0].get("status"))

    def _dataset(self, client: DigitsClient, spec: JobSpec, record: DigitsRecord) -> DigitsRecord:
        """The DIGITS dataset of the job's dataset build: found by name, else made; waited for."""
        config = JobConfig.read(spec.job)
        dataset = config.dataset_path() if config else None
        if dataset is None:
            raise UpcallError(f"{spec.job / JobConfig.FILE}: names no dataset folder for DIGITS")
        name = f"{dataset.name} {(fingerprint(dataset) or 'lists')[:8]}"
        found = [
            d for d in client.find(name, "datasets") if d.get("status") not in ("Error", "Aborted")
        ]
        if found:
            dataset_id = found[-1]["id"]
        else:
            fields, files = dataset_fields(dataset, name=name, local=self.options.local_paths)
            dataset_id = client.create_dataset(fields, files)["id"]
        record = record.update(spec.job, dataset_name=name, dataset_id=dataset_id)
        status = client.wait(dataset_id, poll=self.options.poll, desc=f"DIGITS dataset {name}")
        if status != "Done":
            raise UpcallError(
                f"{client.url}/datasets/{dataset_id}: the DIGITS dataset {name!r} ended {status}"
            )
        return record

    def _collect(self, client: DigitsClient, spec: JobSpec, record: DigitsRecord) -> None:
        """download.tar.gz into JOB/digits/, table_data.json's figures into digits.json."""
        archive = client.download(record.model_id)
        target = spec.job / DIGITS_FILES
        target.mkdir(exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            tar.extractall(target, filter="data")
        outputs = {
            k: v
            for k, v in client.table_data(record.model_id).items()
            if k.endswith((" last", " min", " max"))
        }
        record.update(spec.job, status="Done", outputs=outputs)


class _Remote:
    """The shared loop's Transport for a DIGITS job: polls it, reads its Caffe log."""

    engine = "digits"

    def __init__(
        self, spec: JobSpec, client: DigitsClient, record: DigitsRecord, options: Options
    ) -> None:
        self.spec, self.client, self.record, self.options = spec, client, record, options
        self.train_count = spec.train_data.count()
        self.device_name = f"digits gpu {options.gpu}" if options.gpu is not None else "digits"
        self.threads = None
        self.state = LogState()
        self.stopped = False
        self.stop_asked = False

    def run(self, start: int) -> Iterator[Event]:
        model_id, url = self.record.model_id, self.client.url
        yield Log(f"digits engine: {url}/models/{model_id} ({self.record.model_name})")
        read, status = 0, None
        while True:
            status = self.client.status(model_id).get("status")
            log = self._log()
            end = len(log) if status in FINISHED else log.rfind("\n") + 1  # whole lines only
            for line in log[read:end].splitlines():
                yield from self._feed(line)
            read = max(read, end)
            if status in FINISHED:
                break
            if self.stop_asked:  # Ctrl-C: the DIGITS job trains on; --resume attaches again
                self.stopped = True
                return
            time.sleep(self.options.poll)
        (self.spec.job / CAFFE_LOG).write_text(log, encoding="utf-8")
        if status != "Done":
            raise UpcallError(
                f"{url}/models/{model_id}: the DIGITS job ended {status}: "
                f"{self.state.fatal or 'see its caffe_output.log'}"
            )
        yield from self._snapshots()
        for it, outputs in sorted(self.state.tests.items()):
            yield Tested(iter=it, outputs=outputs)

    def _log(self) -> str:
        try:
            return self.client.file(f"{self.record.model_id}/{CAFFE_LOG}").decode(errors="replace")
        except DigitsError as e:
            if e.status == 404:  # not written yet: the job waits for its turn
                return ""
            raise

    def _feed(self, line: str) -> Iterator[Event]:
        point = self.state.feed(line)
        if point is not None:
            it, loss, lr = point
            yield Display(iter=it, loss=loss, lr=lr)
            yield Step(iter=it, loss=loss)

    def _snapshots(self) -> Iterator[Event]:
        """Each snapshot the log names, fetched whole (.solverstate, then .caffemodel)."""
        for name in dict.fromkeys(Path(s).name for s in self.state.snapshots):
            it = sets.iteration_of(name, (".caffemodel",))
            if it is None:
                continue
            members = {}
            for suffix in (".solverstate", ".caffemodel"):
                remote = f"{self.record.model_id}/{name.removesuffix('.caffemodel')}{suffix}"
                members[suffix] = self.client.file(remote)
            sets.write_set(self.spec, it, {s: _writer(data) for s, data in members.items()})
            yield Snapshotted(it)

    def stop(self) -> None:
        self.stop_asked = True

    def timing(self) -> tuple[float, int]:
        return self.state.timed

    def initial_weights(self) -> Path | None:
        return None

    def score(self, weights: dict[int, Path]) -> dict[int, Scored]:
        """Per-sample scores of the fetched snapshots on the job's own validation LMDB, each
        record once, with the job's deploy net on this machine's CPU. {} when that cannot run
        here (the records keep only what DIGITS logged)."""
        if self.spec.test_data is None:
            return {}
        from upcall.data.datum import load_db
        from upcall.engines.torch.deploy import deploy_probabilities

        try:
            images, labels = load_db(self.spec.test_data.source)
            return {
                it: Scored(
                    scores=deploy_probabilities(self.spec.job, images, snapshot=it),
                    labels=labels,
                )
                for it in weights
            }
        except (UpcallError, ModuleNotFoundError):
            return {}


def _writer(data: bytes):
    return lambda path: Path(path).write_bytes(data)
