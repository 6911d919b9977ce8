"""The one run loop every engine shares: the books kept around an engine's training.

An engine supplies only transport (:class:`Transport`): it runs Caffe's solver its own way (in
process, in a Caffe child process, on a remote server) and reports what happens as
:data:`Event` values. This loop turns them into the job directory: epochs from images per
iteration, the NaN stop, Ctrl-C with a snapshot, the progress bar, validation records (scoring a
snapshot when the engine reported a test without per-sample scores; each validation clip counted
once, :class:`upcall.job.spec.ValPass`) and summary.json, written once, at the end. Every file
of the job folder is written through one object, :class:`upcall.job.writer.JobWriter`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from upcall.errors import Interrupted, UpcallError
from upcall.job.records import Summary, TestRecord
from upcall.job.spec import JobSpec
from upcall.job.writer import JobWriter
from upcall.progress import epoch_line, progress


@dataclass(frozen=True)
class Log:
    """A line for train.log."""

    text: str


@dataclass(frozen=True)
class Step:
    """An update finished: ``iter`` updates are done (moves the progress bar)."""

    iter: int
    loss: float  # this update's loss, unsmoothed


@dataclass(frozen=True)
class Display:
    """Caffe's display point: the loss smoothed over ``average_loss`` updates, and the lr."""

    iter: int
    loss: float
    lr: float


@dataclass(frozen=True)
class Tested:
    """A validation pass at iteration ``iter``.

    With per-sample ``scores`` (≥ N, K) and ``labels`` of the records from the first one on
    (:attr:`JobSpec.val_pass`), it becomes a full record at once; without, the loop scores the
    weights of that iteration through :meth:`Transport.score` after the run. ``outputs`` are
    Caffe's own logged test figures (over its wrapped pass): kept apart, as ``caffe_logged``.
    """

    iter: int
    scores: np.ndarray | None = None
    labels: np.ndarray | None = None
    outputs: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshotted:
    """A snapshot pair (.caffemodel, .solverstate) for iteration ``iter`` is on disk."""

    iter: int


Event = Log | Step | Display | Tested | Snapshotted

# Called with each validation record made while training runs (``upcall search`` prunes a trial
# from them); one run per process, so a module-level list is enough. Tests an engine reports
# without scores (the caffe engine's) are scored after the run and reach no watcher.
_WATCHERS: list[Callable[[TestRecord], None]] = []


@contextlib.contextmanager
def watching(callback: Callable[[TestRecord], None]) -> Iterator[None]:
    """Call ``callback`` with each validation record of the runs inside the block.

    ``callback`` may raise to end the run at once: the engine's clean-up runs, no snapshot is
    taken and no summary.json is written (the job is left as a run stopped there).
    """
    _WATCHERS.append(callback)
    try:
        yield
    finally:
        _WATCHERS.remove(callback)


class Stopped(Interrupted):
    """Ctrl-C stopped a job's training; ``what`` says where (the message adds how to go on)."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what}; {hint}" if hint else what)
        self.what = what


@dataclass(frozen=True)
class Scored:
    """A validation pass recomputed from saved weights: per-sample scores from the first record
    on (at least :attr:`ValPass.count` of them; the loop keeps that many)."""

    scores: np.ndarray  # (≥ N, K) softmax
    labels: np.ndarray  # (≥ N,) int64


class Transport(Protocol):
    """What an engine supplies to :func:`run_training`."""

    engine: str  # the engine's name, for summary.json and messages
    train_count: int  # images in the training set: epochs are counted against it
    device_name: str  # "cpu", "cuda:0" ...
    threads: int | None  # CPU threads the run uses (None: not known here)
    stopped: bool  # set by run() when it ended early because stop() asked it to

    def run(self, start: int) -> Iterator[Event]:
        """Train from iteration ``start`` to max_iter (or to a stop), reporting as it goes."""
        ...

    def stop(self) -> None:
        """Ctrl-C: finish the current iteration, snapshot, and end run() (stopped = True)."""
        ...

    def timing(self) -> tuple[float, int]:
        """(seconds, updates) of steady-state training so far: no tests, snapshots, warm-up."""
        ...

    def initial_weights(self) -> Path | None:
        """The weights an iteration-0 test ran with, when they are on disk."""
        ...

    def score(self, weights: dict[int, Path]) -> dict[int, Scored]:
        """The validation pass with each iteration's weights; {} when the engine cannot."""
        ...


class _Books:
    """The bookkeeping of one run; :func:`run_training` feeds it the transport's events."""

    def __init__(
        self, spec: JobSpec, transport: Transport, start: int, tensorboard: Path | None
    ) -> None:
        self.spec, self.transport, self.start = spec, transport, start
        s = spec.solver
        self.images_per_iter = spec.train_data.batch_size * max(1, s.iter_size)
        self.writer = JobWriter(
            spec.job,
            class_names=list(spec.class_names),
            start_iter=start,
            tensorboard=tensorboard,
            snapshots=spec,
        )
        self.pending: dict[int, Tested] = {}  # tests awaiting scores
        self.displays = 0
        self.snapshot: int | None = None
        self.stop_asked = False
        self.started = time.perf_counter()
        self.bar = progress(total=s.max_iter, desc=spec.job.name, unit="iter")
        self.bar.update(start)

    def wall_seconds(self) -> float:
        return self.writer.earlier_seconds + time.perf_counter() - self.started

    def epoch(self, it: int) -> float:
        return it * self.images_per_iter / self.transport.train_count

    def images_per_second(self) -> float | None:
        seconds, updates = self.transport.timing()
        return round(updates * self.images_per_iter / seconds, 2) if seconds > 0 else None

    def take(self, event: Event) -> None:
        w = self.writer
        match event:
            case Log(text):
                w.log(text)
            case Step(it, loss):
                self.bar.update(it - self.bar.n)
                seconds, updates = self.transport.timing()
                speed = self.images_per_iter * updates / max(seconds, 1e-9)
                self.bar.set_postfix(
                    epoch=f"{self.epoch(it):.2f}", loss=f"{loss:.4f}", img_s=f"{speed:.0f}"
                )
            case Display(it, loss, lr):
                if not math.isfinite(loss):
                    raise UpcallError(
                        f"{self.spec.job}: training loss became {loss} at iteration {it}; "
                        "try decreasing the learning rate"
                    )
                self.displays += 1
                w.train(iter=it, epoch=self.epoch(it), lr=lr, loss=loss)
            case Tested() if event.iter in w.tested():
                pass  # one record per iteration (a resumed engine may repeat a test)
            case Tested() if event.scores is not None:
                record = self._record(event, event.scores, event.labels)
                epoch_line(self.bar, record)  # a log file's line per validation pass
                for watch in tuple(_WATCHERS):
                    watch(record)
            case Tested():
                self.pending[event.iter] = event
            case Snapshotted(it):
                self.snapshot = it
                self.writer.snapshotted(it, self.wall_seconds())

    def _record(self, t: Tested, scores=None, labels=None) -> TestRecord:
        """The record of test ``t``: upcall's figures from ``scores`` (each clip once), and what
        Caffe logged apart; without scores, only what Caffe logged."""
        if scores is not None:
            scores, labels = self.spec.val_pass.keep(scores, labels)
        return self.writer.test(
            iter=t.iter,
            epoch=self.epoch(t.iter),
            val_loss=None,  # with scores: the mean cross-entropy over the unique clips
            scores=scores,
            labels=labels,
            caffe_logged=dict(t.outputs) or None,
        )

    def score_pending(self) -> None:
        """Records for the tests reported without scores: scored from saved weights if possible."""
        weights = {}
        for it in sorted(self.pending):
            path = self.transport.initial_weights() if it == 0 else None
            path = path or self.spec.snapshot_path(it, ".caffemodel")
            if path.is_file():
                weights[it] = path
        scored = self.transport.score(weights) if weights else {}
        for it, t in sorted(self.pending.items()):
            if it in scored:
                self._record(t, scored[it].scores, scored[it].labels)
            elif t.outputs:
                self._record(t)  # what Caffe logged only: no weights to score
            else:
                self.writer.log(
                    f"Iteration {it} test ({self.transport.engine}): no weights to score"
                )
        self.pending.clear()

    def check_reported(self) -> None:
        """Fail loudly when a finished run that should have shown training losses showed none."""
        s = self.spec.solver
        first = -(-self.start // s.display) * s.display if s.display else None
        if first is not None and first < s.max_iter and not self.displays:
            raise UpcallError(
                f"{self.spec.job}: the {self.transport.engine} engine trained iterations "
                f"{self.start}..{s.max_iter} but reported no training loss (display every "
                f"{s.display}); its output could not be read"
            )

    def interrupted(self) -> Stopped:
        from upcall.engines import DEFAULT_ENGINE

        job, name = self.spec.job, self.transport.engine
        where = f" at iteration {self.snapshot}" if self.snapshot is not None else ""
        flag = f" --engine {name}" if name != DEFAULT_ENGINE else ""
        return Stopped(
            f"{job}: stopped{where} with a snapshot",
            f"continue with: upcall train {job}{flag} --resume",
        )


def run_training(
    spec: JobSpec, transport: Transport, *, start: int, tensorboard: Path | None = None
) -> Summary:
    """Run ``transport`` from iteration ``start`` and keep the books; returns the summary.

    ``tensorboard``: also write the records as TensorBoard scalars under ``DIR/<job name>/``
    (:mod:`upcall.job.tensorboard`).

    Raises :class:`Stopped` after Ctrl-C (once the engine has snapshotted; after summary.json
    when the Ctrl-C came as the last iteration ended); a second Ctrl-C aborts at once, without a
    snapshot.
    """
    books = _Books(spec, transport, start, tensorboard)

    def on_sigint(signum, frame) -> None:
        if books.stop_asked:  # a second Ctrl-C: stop now, without a snapshot
            raise KeyboardInterrupt
        books.stop_asked = True
        print(
            "\nstopping after this iteration (Ctrl-C again to abort without a snapshot)", flush=True
        )
        transport.stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        events = transport.run(start)
        try:
            for event in events:
                books.take(event)
        finally:
            events.close()  # an engine's clean-up (a child process) runs now, not at GC
        books.score_pending()
        if transport.stopped:
            raise books.interrupted()
        books.check_reported()
    except BaseException:
        books.writer.close()
        raise
    finally:
        books.bar.close()
        signal.signal(signal.SIGINT, previous)
    iterations = max(start, int(spec.solver.max_iter))
    summary = books.writer.finish(
        engine=transport.engine,
        network=spec.network,
        iterations=iterations,
        epochs=round(books.epoch(iterations), 6),
        wall_seconds=round(books.wall_seconds(), 3),
        train_images_per_second=books.images_per_second(),
        device=transport.device_name,
        threads=transport.threads,
        resumed_from=start or None,
    )
    if books.stop_asked:  # Ctrl-C came too late to stop the engine: it is trained, but stop
        raise Stopped(f"{spec.job}: interrupted as training ended; the job is trained", "")
    return summary
