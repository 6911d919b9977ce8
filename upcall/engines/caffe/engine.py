"""The caffe engine: real Caffe 1.0 trains the job, as DIGITS runs it.

``caffe train --solver=... `` runs with cwd = the job directory; its log is kept whole in
caffe_output.log and parsed as it comes (:mod:`upcall.engines.caffe.log`) into events for the
shared run loop (:mod:`upcall.engines.loop`), which writes the job directory. Caffe's log gives a
test's mean loss and accuracy only, over ``test_iter`` batches that wrap around the validation
set, so the loop keeps those apart (``caffe_logged``) and has the validation records scored by
pycaffe, each validation clip once, with the weights of that iteration (:meth:`_Run.score`):
Caffe's snapshot N (a test at N uses exactly the weights snapshot N holds) and, for the test at
iteration 0, the initial weights, made with the solver's seed and handed to Caffe with
``--weights``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from upcall.augment.caffe_layer import FIRST_BATCH
from upcall.engines.base import TRAIN_LOCK, JobStatus, local_status
from upcall.engines.caffe import root as caffe
from upcall.engines.caffe.log import LogState
from upcall.engines.caffe.options import Options
from upcall.engines.loop import Display, Event, Log, Scored, Snapshotted, Step, Tested, run_training
from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text
from upcall.job import snapshots as sets
from upcall.job.config import init_weights
from upcall.job.records import Summary
from upcall.job.spec import JobSpec, check_data, classifier_head, load_job
from upcall.job.state import start_point
from upcall.lock import folder_lock
from upcall.parallel import default_workers
from upcall.proto import caffe_pb2, to_text

__all__ = ["CAFFE_LOG", "INIT_WEIGHTS", "SOLVER", "CaffeEngine", "LogState"]

CAFFE_LOG = "caffe_output.log"  # DIGITS's name for Caffe's own log
SOLVER = "caffe_solver.prototxt"  # the job's solver with the device this run uses
INIT_WEIGHTS = "init_weights.caffemodel"  # iteration-0 weights, for the first validation record
# glog's settings for the child, whatever the user's environment says: every INFO line, to
# stderr, with the "I1124 09:03:03.986 22488 solver.cpp:239] " prefix the log parser reads.
GLOG_ENV = {
    "GLOG_logtostderr": "1",
    "GLOG_log_prefix": "1",
    "GLOG_minloglevel": "0",
    "GLOG_colorlogtostderr": "0",
}


class CaffeEngine:
    """Trains a job with real Caffe (the bullseye root, ``--caffe-bin`` or ``UPCALL_CAFFE``)."""

    name = "caffe"

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()

    def train(self, job: Path, *, resume: bool = False, restart: bool = False) -> Summary:
        o = self.options
        caffe.require_caffe(caffe_bin=o.caffe_bin)
        if o.gpu is not None and caffe.own_caffe(o.caffe_bin) is None:
            raise UpcallError(
                f"--gpu {o.gpu}: the bundled Caffe is Debian's CPU build; point --caffe-bin "
                "(or UPCALL_CAFFE) at a CUDA build of Caffe to train on a GPU"
            )
        spec = load_job(job)
        check_data(spec)
        with folder_lock(spec.job / TRAIN_LOCK):  # one run of a job at a time
            start = start_point(spec, resume=resume, restart=restart)
            return run_training(spec, _Run(spec, o), start=start, tensorboard=o.tensorboard)

    def status(self, job: Path) -> JobStatus:
        return local_status(job)


class _Run:
    """One `caffe train` run of a job (a Transport): its arguments, the live log, the scoring."""

    engine = "caffe"

    def __init__(self, spec: JobSpec, options: Options) -> None:
        self.spec, self.options = spec, options
        s = spec.solver
        self.train_count = spec.train_data.count()
        self.binds = _binds(spec)
        self.init = init_weights(spec.job)  # `fit --init-weights`: copied over the fillers'
        if self.init is not None:
            self.binds.append(self.init.resolve().parent)
        # a Python layer (online augmentation) imports its module from the job folder
        python = any(lp.type == "Python" for lp in spec.net.layer)
        self.env = caffe.python_env(spec.job, caffe_bin=options.caffe_bin) if python else {}
        tests = spec.test_data is not None and len(s.test_iter) and s.test_interval > 0
        self.head = classifier_head(spec.net) if tests else None  # (scores, label) -> loss
        self.device_name = "cpu" if options.gpu is None else f"cuda:{options.gpu}"
        self.threads = options.threads or default_workers()
        self.state = LogState()
        self.proc: subprocess.Popen | None = None
        self.stopped = False
        self.stop_asked = False  # Ctrl-C came: Caffe is to snapshot and stop

    def run(self, start: int) -> Iterator[Event]:
        spec, state = self.spec, self.state
        if self.env:  # the augmentation layer continues with the draws of batch start×iter_size
            batches = start * max(1, spec.solver.iter_size)
            self.env = {**self.env, FIRST_BATCH: str(batches)}
        args = self._arguments(start)
        yield Log(f"caffe engine: {' '.join(self._command(args))}")
        with open(spec.job / CAFFE_LOG, "a" if start else "w", encoding="utf-8") as log:
            returncode = yield from self._run_caffe(args, log)
        if returncode != 0 and state.snapshots and "SerializeToOstream" in (state.fatal or ""):
            raise UpcallError(  # Caffe's CHECK on a snapshot write: a full disk, most often
                f"{spec.job / state.snapshots[-1]}: Caffe could not write this snapshot (is the "
                f"disk full?); resume later uses the last complete one; see {spec.job / CAFFE_LOG}"
            )
        if returncode != 0 or (state.fatal and state.fatal.startswith("F")):
            raise UpcallError(
                f"{spec.job / CAFFE_LOG}: caffe train failed (exit status "
                f"{returncode}): {state.fatal or 'see the log'}"
            )
        if not state.glog_lines and start < spec.solver.max_iter:
            raise UpcallError(
                f"{spec.job / CAFFE_LOG}: caffe train printed no glog line upcall can read "
                f"(expected {GLOG_ENV}); no metrics were recorded"
            )
        self.stopped = state.stopped_early
        if self.head is not None:  # AUC and recall need the classifier head's scores
            for it, outputs in sorted(state.tests.items()):
                yield Tested(iter=it, outputs=outputs)

    def stop(self) -> None:
        # Caffe's default SIGINT effect: snapshot, then stop ("Optimization stopped early").
        # Asked before Caffe started (during the pycaffe step): Caffe gets it as it starts.
        self.stop_asked = True
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)

    def timing(self) -> tuple[float, int]:
        return self.state.timed

    def initial_weights(self) -> Path | None:
        return self.spec.job / INIT_WEIGHTS

    def _command(self, args: list[str]) -> list[str]:
        return caffe.tool_command(
            "caffe", *args, binds=self.binds, cwd=self.spec.job, caffe_bin=self.options.caffe_bin
        )

    def _arguments(self, start: int) -> list[str]:
        spec, gpu = self.spec, self.options.gpu
        solver = caffe_pb2.SolverParameter()
        solver.CopyFrom(spec.solver)
        if gpu is None:
            solver.solver_mode = caffe_pb2.SolverParameter.CPU
        atomic_write_text(spec.job / SOLVER, to_text(solver))
        args = ["train", f"--solver={SOLVER}"]
        if gpu is not None:
            args.append(f"--gpu={gpu}")
        if start:
            args.append(f"--snapshot={spec.snapshot_path(start, '.solverstate')}")
        elif self.init is not None or (self.head is not None and solver.test_initialization):
            self._initial_weights()
            args.append(f"--weights={INIT_WEIGHTS}")
        return args

    def _pycaffe(self, program: str, params: dict) -> object:
        """Run one of :mod:`upcall.engines.caffe.programs` in the job folder."""
        return caffe.run_program(
            program,
            params,
            binds=self.binds,
            cwd=self.spec.job,
            caffe_bin=self.options.caffe_bin,
            env=self.env,
        )

    def _initial_weights(self) -> None:
        spec = self.spec
        params = {
            "seed": spec.seed,
            "net": str(spec.job / spec.solver.net),
            "out": str(spec.job / INIT_WEIGHTS),
        }
        if self.init is not None:  # Caffe copies them in by layer name (Net::CopyTrainedLayersFrom)
            if not self.init.is_file():
                raise UpcallError(f"{self.init}: not found (config.json's init_weights)")
            params["weights"] = str(self.init.resolve())
        try:
            self._pycaffe("init_weights", params)
        except UpcallError as e:
            raise UpcallError(f"{params['net']}: Caffe cannot build the TRAIN net: {e}") from e

    def _run_caffe(self, args: list[str], log) -> Iterator[Event]:
        """Run Caffe, teeing its log to ``log``; yields its display points and snapshots and
        returns its exit status."""
        env = {**os.environ, **GLOG_ENV, **self.env}
        env.update(OPENBLAS_NUM_THREADS=str(self.threads), OMP_NUM_THREADS=str(self.threads))
        # Its own process group, so Ctrl-C reaches Caffe once, from us (stop()): Caffe then
        # snapshots and stops, and we still record what it did.
        self.proc = proc = subprocess.Popen(
            self._command(args),
            cwd=self.spec.job,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        if self.stop_asked:  # Ctrl-C while the pycaffe step ran: stop at Caffe's first chance
            os.killpg(proc.pid, signal.SIGINT)
        state = self.state
        try:
            for line in proc.stdout:
                log.write(line)
                snapshots = len(state.snapshots)
                point = state.feed(line)
                if point is not None:
                    it, loss, lr = point
                    yield Display(iter=it, loss=loss, lr=lr)
                    yield Step(iter=it, loss=loss)
                if len(state.snapshots) > snapshots and (
                    (it := sets.iteration_of(state.snapshots[-1], (".caffemodel",))) is not None
                ):
                    yield Snapshotted(it)
            return proc.wait()
        finally:
            if proc.poll() is None:  # the loop stopped early (NaN loss, a second Ctrl-C)
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()

    def score(self, weights: dict[int, Path]) -> dict[int, Scored]:
        """The TEST net in pycaffe with each iteration's weights, from the first validation
        record, over enough batches to cover each once (:class:`ValPass`), keeping every
        sample's softmax scores."""
        if self.head is None:
            return {}
        spec = self.spec
        with tempfile.TemporaryDirectory(dir=spec.job, prefix=".scores-") as tmp:
            self._pycaffe("score", self._score_params(weights, Path(tmp)))
            scored = {}
            for it in weights:
                npz = np.load(Path(tmp) / f"{it}.npz")
                scored[it] = Scored(scores=npz["scores"], labels=npz["labels"].astype(np.int64))
            return scored

    def _score_params(self, weights: dict[int, Path], out: Path) -> dict:
        return {
            "net": str(self.spec.job / self.spec.solver.net),
            "models": {str(it): str(p) for it, p in weights.items()},
            "batches": self.spec.val_pass.batches,
            "scores": self.head.bottom[0],
            "labels": self.head.bottom[1],
            "gpu": caffe.pycaffe_gpu(self.options.gpu),
            "out": str(out),
        }


def _binds(spec: JobSpec) -> list[Path]:
    """The host directories Caffe reads and writes: the job and each Data source, mean file and
    InfogainLoss matrix."""
    dirs = [spec.job]
    for layer in spec.net.layer:
        files = (
            layer.data_param.source,
            layer.transform_param.mean_file,
            layer.infogain_loss_param.source,
            layer.image_data_param.source,
            layer.hdf5_data_param.source,
        )
        for path in files:
            if path:  # an absolute path stays as it is
                dirs += _folders(spec.job / path)
        dirs += [d for path in _listed(spec, layer) for d in _folders(path)]
    return list(dict.fromkeys(dirs))


def _folders(path: Path) -> list[Path]:
    """What to bind for ``path``: its folder, links resolved (bwrap cannot bind onto a link;
    a linked file's or folder's target must be bound for the link to lead anywhere)."""
    return [path.parent.resolve(), path.resolve().parent]


def _listed(spec: JobSpec, layer) -> list[Path]:
    """The files an ImageData or HDF5Data layer's list names."""
    from upcall.job import sources

    if layer.type == "ImageData" and layer.image_data_param.source:
        return [path for path, _ in sources.image_list(layer, spec.job)]
    if layer.type == "HDF5Data" and layer.hdf5_data_param.source:
        return sources.hdf5_files(layer, spec.job)
    return []
