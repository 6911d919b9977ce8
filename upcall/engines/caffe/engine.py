"""The caffe engine: real Caffe 1.0 trains the job, as DIGITS runs it.

``caffe train --solver=... `` runs with cwd = the job directory; its log is kept whole in
caffe_output.log and parsed as it comes (DIGITS's rules: glog lines, ``Iteration N ... loss``,
``Iteration N, lr``, ``Test net output``, ``Snapshotting``) into the shared job directory.
Caffe's log gives a test's mean loss and accuracy only, so the validation records (AUC, recall)
come from pycaffe scoring the validation set with the weights of that iteration: Caffe's snapshot
N (a test at N uses exactly the weights snapshot N holds) and, for the test at iteration 0, the
initial weights, made with the solver's seed and handed to Caffe with ``--weights``.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from upcall.data.datum import open_db
from upcall.engines import Interrupted
from upcall.engines.caffe import root as caffe
from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text
from upcall.progress import progress
from upcall.proto import caffe_pb2, to_text
from upcall.results.jobdir import JobWriter

CAFFE_LOG = "caffe_output.log"  # DIGITS's name for Caffe's own log
SOLVER = "caffe_solver.prototxt"  # the job's solver with the device this run uses
INIT_WEIGHTS = "init_weights.caffemodel"  # iteration-0 weights, for the first validation record

# glog: "I1124 09:03:03.986 22488 solver.cpp:239] message" (DIGITS's prefix rule)
_GLOG = re.compile(r"^([IWEF])\d{4} \S+\s+\d+ \S+\] (.*)$")
_TRAIN = re.compile(r"^Iteration (\d+) \((\S+) iter/s, (\S+)s/(\d+) iters\), loss = (\S+)$")
_LR = re.compile(r"^Iteration (\d+), lr = (\S+)$")
_TEST = re.compile(r"^Iteration (\d+), Testing net \(#0\)$")
_OUTPUT = re.compile(r"^Test net output #\d+: (\S+) = (\S+)")
_SNAPSHOT = re.compile(r"^Snapshotting to binary proto file (\S+)$")


@dataclass
class LogState:
    """What Caffe's log has said so far; :meth:`feed` takes one line at a time."""

    pending_loss: dict[int, float] = field(default_factory=dict)  # display loss awaiting its lr
    train: list[tuple[int, float, float]] = field(default_factory=list)  # (iter, loss, lr)
    tests: dict[int, dict[str, float]] = field(default_factory=dict)  # iter -> test outputs
    snapshots: list[str] = field(default_factory=list)
    timed: tuple[float, int] = (0.0, 0)  # (seconds, iterations) of Caffe's display intervals
    stopped_early: bool = False
    fatal: str | None = None
    _testing: int | None = None  # the iteration of the latest "Testing net" line

    def feed(self, line: str) -> tuple[int, float, float] | None:
        """Parse one log line; returns a new (iter, loss, lr) display point when one completes."""
        m = _GLOG.match(line.rstrip())
        if not m:
            return None
        level, text = m.group(1), m.group(2).strip()
        if level in "EF":
            self.fatal = line.strip()
        if (out := _OUTPUT.match(text)) and self._testing is not None:
            self.tests[self._testing][out.group(1)] = float(out.group(2))
            return None
        # Other threads' lines (data prefetching) interleave with a test's outputs, so outputs
        # belong to the latest "Testing net" line.
        if t := _TEST.match(text):
            self._testing = int(t.group(1))
            self.tests[self._testing] = {}
        elif t := _TRAIN.match(text):
            it, seconds, n = int(t.group(1)), float(t.group(3)), int(t.group(4))
            self.pending_loss[it] = float(t.group(5))
            if it > 0:  # the first display's timer started before the solver did
                self.timed = (self.timed[0] + seconds, self.timed[1] + n)
        elif (t := _LR.match(text)) and int(t.group(1)) in self.pending_loss:
            it = int(t.group(1))
            point = (it, self.pending_loss.pop(it), float(t.group(2)))
            self.train.append(point)
            return point
        elif t := _SNAPSHOT.match(text):
            self.snapshots.append(t.group(1))
        elif text.startswith("Optimization stopped early"):
            self.stopped_early = True
        return None


class CaffeEngine:
    """Trains a job with real Caffe (the bullseye root, or ``UPCALL_CAFFE``)."""

    name = "caffe"

    def train(
        self, job: Path, *, resume: bool = False, gpu: int | None = None, threads: int | None = None
    ) -> dict:
        from upcall.engines.jobspec import load_job, resume_point

        caffe.require_caffe()
        if gpu is not None and not os.environ.get("UPCALL_CAFFE"):
            raise UpcallError(
                f"--gpu {gpu}: the bundled Caffe is Debian's CPU build; point "
                "UPCALL_CAFFE at a CUDA build of Caffe to train on a GPU"
            )
        spec = load_job(job)
        start = resume_point(spec) if resume else 0
        return _Run(spec, gpu=gpu, threads=threads).solve(start)


class _Run:
    """One `caffe train` run of a job: its arguments, the live log, the validation scoring."""

    def __init__(self, spec, *, gpu: int | None, threads: int | None) -> None:
        from upcall.engines.jobspec import classifier_head

        self.spec, self.gpu, self.threads = spec, gpu, threads
        s = spec.solver
        with open_db(spec.train_data.source) as env:
            self.train_count = env.stat()["entries"]
        self.images_per_iter = spec.train_data.batch_size * max(1, s.iter_size)
        self.binds = _binds(spec)
        tests = spec.test_data is not None and len(s.test_iter) and s.test_interval > 0
        self.head = classifier_head(spec.net) if tests else None  # (scores, label) -> loss

    def epoch(self, it: int) -> float:
        return it * self.images_per_iter / self.train_count

    def solve(self, start: int) -> dict:
        from upcall.engines.jobspec import snapshot_names

        spec, s = self.spec, self.spec.solver
        started = time.perf_counter()
        writer = JobWriter(spec.job, class_names=list(spec.class_names), start_iter=start)
        args = self._arguments(start)
        writer.log(f"caffe engine: {' '.join(caffe.tool_command('caffe', *args))}")
        state = LogState()
        with open(spec.job / CAFFE_LOG, "a" if start else "w", encoding="utf-8") as log:
            returncode = self._run_caffe(args, state, log, writer, start)
        if returncode != 0 or (state.fatal and state.fatal.startswith("F")):
            writer.close()
            raise UpcallError(
                f"{spec.job / CAFFE_LOG}: caffe train failed (exit status "
                f"{returncode}): {state.fatal or 'see the log'}"
            )
        self._validate(state, writer, start)
        if state.stopped_early:
            writer.close()
            raise Interrupted(
                f"{spec.job}: stopped with a snapshot; continue with: "
                f"upcall train {spec.job} --engine caffe --resume"
            )
        seconds, iters = state.timed
        return writer.finish(
            {
                "engine": "caffe",
                "network": spec.network,
                "iterations": int(s.max_iter),
                "epochs": round(self.epoch(int(s.max_iter)), 6),
                "wall_seconds": round(time.perf_counter() - started, 3),
                "train_images_per_second": round(iters * self.images_per_iter / seconds, 2)
                if seconds > 0
                else None,
                "device": "cpu" if self.gpu is None else f"cuda:{self.gpu}",
                "threads": self.threads,
                "resumed_from": start or None,
                "snapshots": snapshot_names(spec),
            }
        )

    def _arguments(self, start: int) -> list[str]:
        spec = self.spec
        solver = caffe_pb2.SolverParameter()
        solver.CopyFrom(spec.solver)
        if self.gpu is None:
            solver.solver_mode = caffe_pb2.SolverParameter.CPU
        atomic_write_text(spec.job / SOLVER, to_text(solver))
        args = ["train", f"--solver={SOLVER}"]
        if self.gpu is not None:
            args.append(f"--gpu={self.gpu}")
        if start:
            args.append(f"--snapshot={spec.snapshot_path(start, '.solverstate')}")
        elif self.head is not None and solver.test_initialization:
            self._initial_weights()
            args.append(f"--weights={INIT_WEIGHTS}")
        return args

    def _initial_weights(self) -> None:
        spec = self.spec
        params = {
            "seed": spec.seed,
            "net": str(spec.job / spec.solver.net),
            "out": str(spec.job / INIT_WEIGHTS),
        }
        script = _INIT_SCRIPT.replace("PARAMS", repr(json.dumps(params)))
        try:
            caffe.run_pycaffe(script, binds=self.binds, cwd=spec.job)
        except UpcallError as e:
            raise UpcallError(f"{params['net']}: Caffe cannot build the TRAIN net: {e}") from e

    def _run_caffe(self, args, state: LogState, log, writer: JobWriter, start: int) -> int:
        """Run Caffe, teeing its log to ``log`` and its display points to ``writer``."""
        env = {**os.environ, "GLOG_logtostderr": "1"}
        if self.threads:
            env.update(OPENBLAS_NUM_THREADS=str(self.threads), OMP_NUM_THREADS=str(self.threads))
        command = caffe.tool_command("caffe", *args, binds=self.binds, cwd=self.spec.job)
        # Its own process group, so Ctrl-C reaches Caffe once, from us: Caffe then snapshots
        # and stops (its default SIGINT effect), and we still record what it did.
        proc = subprocess.Popen(
            command,
            cwd=self.spec.job,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        previous = signal.signal(signal.SIGINT, lambda *_: os.killpg(proc.pid, signal.SIGINT))
        bar = progress(total=self.spec.solver.max_iter, desc=self.spec.job.name, unit="iter")
        bar.update(start)
        try:
            for line in proc.stdout:
                log.write(line)
                point = state.feed(line)
                if point is None:
                    continue
                it, loss, lr = point
                if not math.isfinite(loss):
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait()
                    raise UpcallError(
                        f"{self.spec.job}: training loss became {loss} at iteration "
                        f"{it}; try decreasing the learning rate"
                    )
                writer.train(iter=it, epoch=self.epoch(it), lr=lr, loss=loss)
                bar.update(it - bar.n)
            returncode = proc.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
        return returncode

    def _validate(self, state: LogState, writer: JobWriter, start: int) -> None:
        """One validation record per Caffe test whose weights are on disk, scored by pycaffe."""
        if self.head is None:
            return
        spec = self.spec
        weights = {it: spec.snapshot_path(it, ".caffemodel") for it in state.tests}
        if 0 in weights:
            weights[0] = spec.job / INIT_WEIGHTS
        # A resumed run repeats the test at its first iteration unless the run it continues
        # stopped before that test; keep one record per iteration.
        done = {r["iter"] for r in writer.records if r["kind"] == "test"}
        weights = {it: p for it, p in sorted(weights.items()) if p.is_file() and it not in done}
        for it in sorted(set(state.tests) - set(weights) - done):
            writer.log(
                f"Iteration {it} test (Caffe): {state.tests[it]} (no weights on disk to score)"
            )
        if not weights:
            return
        with tempfile.TemporaryDirectory(dir=spec.job, prefix=".scores-") as tmp:
            caffe.run_pycaffe(
                self._score_script(weights, Path(tmp)), binds=self.binds, cwd=spec.job
            )
            for it in weights:
                scores = np.load(Path(tmp) / f"{it}.npz")
                writer.log(f"Iteration {it} test (Caffe): {json.dumps(state.tests[it])}")
                writer.test(
                    iter=it,
                    epoch=self.epoch(it),
                    val_loss=float(scores["loss"].mean()),
                    scores=scores["scores"],
                    labels=scores["labels"].astype(np.int64),
                )

    def _score_script(self, weights: dict[int, Path], out: Path) -> str:
        params = {
            "net": str(self.spec.job / self.spec.solver.net),
            "models": {str(it): str(p) for it, p in weights.items()},
            "test_iter": int(self.spec.solver.test_iter[0]),
            "scores": self.head.bottom[0],
            "labels": self.head.bottom[1],
            "loss": self.head.top[0],
            "gpu": _scoring_gpu(self.gpu),
            "out": str(out),
        }
        return _SCORE_SCRIPT.replace("PARAMS", repr(json.dumps(params)))


# pycaffe: Caffe's TestAll (test_iter batches of the TEST net) for each model, keeping every
# sample's softmax scores and label, and each batch's loss.
_SCORE_SCRIPT = """
import json, caffe, numpy as np
p = json.loads(PARAMS)
if p["gpu"] is not None:
    caffe.set_mode_gpu()
    caffe.set_device(p["gpu"])
for it, model in p["models"].items():
    net = caffe.Net(p["net"], caffe.TEST, weights=model)
    scores, labels, losses = [], [], []
    for _ in range(p["test_iter"]):
        net.forward()
        z = net.blobs[p["scores"]].data
        z = z.reshape(len(z), -1)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        scores.append(z / z.sum(axis=1, keepdims=True))
        labels.append(net.blobs[p["labels"]].data.ravel().copy())
        losses.append(float(net.blobs[p["loss"]].data))
    np.savez(p["out"] + "/" + it + ".npz", scores=np.concatenate(scores),
             labels=np.concatenate(labels), loss=np.array(losses))
print(json.dumps(sorted(p["models"])))
"""

# The TRAIN net as its fillers make it (seeded like Caffe's solver); Caffe then starts from these
# weights (--weights), so the iteration-0 validation scores the very weights Caffe trains.
_INIT_SCRIPT = """
import json, caffe
p = json.loads(PARAMS)
caffe.set_random_seed(p["seed"])
caffe.Net(p["net"], caffe.TRAIN).save(p["out"])
print(json.dumps(p["out"]))
"""


def _binds(spec) -> list[Path]:
    """The host directories Caffe reads and writes: the job and each Data source and mean file."""
    dirs = [spec.job]
    for layer in spec.net.layer:
        for path in (layer.data_param.source, layer.transform_param.mean_file):
            if path:
                dirs.append((spec.job / path).parent)  # an absolute path stays as it is
    return list(dict.fromkeys(dirs))


def _scoring_gpu(gpu: int | None) -> int | None:
    """The device pycaffe scores on: ``gpu`` only with the user's own pycaffe.

    Without UPCALL_CAFFE_PYTHON the scoring runs in the bundled bullseye root, whose pycaffe is
    Debian's CPU-only build (set_mode_gpu fails there) even when UPCALL_CAFFE trains on a GPU.
    """
    return gpu if os.environ.get("UPCALL_CAFFE_PYTHON") else None
