"""The embedded engine: Caffe's solver loop in PyTorch, on our LMDBs.

The loop is Caffe's ``Solver::Solve`` / ``Step``: test before the update of every
``test_interval``-th iteration (the first only if ``test_initialization``), ``iter_size``
forward/backward passes per update, the displayed loss smoothed over ``average_loss`` updates,
snapshots every ``snapshot`` iterations and after training, a last test at the end. Iterations
are Caffe's; an epoch is ``iter × batch × iter_size / train_count``.

Snapshots are Caffe's ``<prefix>_iter_N.caffemodel`` and ``.solverstate`` (real Caffe loads and
resumes from them) plus ``<prefix>_iter_N.rng.pt``: our addition, holding what Caffe's files do
not — the data cursors, the crop/mirror generators, torch's RNG (dropout) and the loss-smoothing
window — so on the CPU a resumed run ends with exactly the weights of an unbroken one. On a GPU
it resumes the same way but is bit-exact only with ``--deterministic``: otherwise cuDNN
autotuning (``cudnn.benchmark``) and atomic reductions make even two unbroken runs differ in the
last bits. Without the .rng.pt a resume still works but draws fresh randomness (logged).

On a GPU the updates run in bf16 autocast; tests run in float32, since bf16 scores tie often
enough to change the accuracy (Caffe's Accuracy counts a tie against the label).

This module is the engine's transport only: the shared loop (:mod:`upcall.engines.loop`) keeps
the books (records, progress, Ctrl-C, summary.json) from the events :meth:`_Run.run` yields.
"""

from __future__ import annotations

import io
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from upcall.engines.base import TRAIN_LOCK, JobStatus, local_status
from upcall.engines.loop import Display, Event, Log, Scored, Snapshotted, Step, Tested, run_training
from upcall.engines.torch.datalayers import feed_shapes, make_feeder
from upcall.engines.torch.net import CaffeNet
from upcall.engines.torch.options import Options
from upcall.engines.torch.pylayers import seek
from upcall.errors import UpcallError
from upcall.job.config import init_weights
from upcall.job.records import Summary
from upcall.job.spec import JobSpec, classifier_head, load_job
from upcall.job.state import start_point
from upcall.lock import folder_lock
from upcall.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def configure_device(
    gpu: int | None, threads: int | None, *, deterministic: bool = False
) -> torch.device:
    """Pick the device; on the CPU use every available core (or ``threads``).

    ``deterministic`` (a GPU only): deterministic kernels, no cuDNN autotuning. The CPU kernels
    torch picks for these nets are deterministic already.
    """
    from upcall.parallel import default_workers

    torch.set_num_threads(threads or default_workers())
    try:
        torch.set_num_interop_threads(1)  # the loop is one stream of work; extra pools only contend
    except RuntimeError:
        pass  # already set by an earlier run in this process
    if gpu is None:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UpcallError(f"--gpu {gpu} asked for, but this torch build sees no CUDA device")
    if gpu >= torch.cuda.device_count():
        raise UpcallError(f"--gpu {gpu}: only {torch.cuda.device_count()} CUDA device(s) present")
    # autotuning picks the fastest kernel per shape, timed anew in each process, so two runs can
    # pick different (differently rounding) kernels
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    # warn_only: an op without a deterministic CUDA kernel warns instead of stopping the run;
    # none of the layers in upcall.engines.torch.layers needs one today
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    return torch.device("cuda", gpu)


class TorchEngine:
    """Trains a job with upcall.engines.torch (see the module docstring for the semantics)."""

    name = "torch"

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()

    def train(self, job: Path, *, resume: bool = False, restart: bool = False) -> Summary:
        spec = load_job(job)
        _check_layers(spec)  # before anything of an earlier run is cleared
        with folder_lock(spec.job / TRAIN_LOCK):  # one run of a job at a time
            start = start_point(spec, resume=resume, restart=restart)
            o = self.options
            device = configure_device(o.gpu, o.threads, deterministic=o.deterministic)
            run = _Run(spec, device)
            if start:
                start = run.restore(start)
            else:
                run.start_from(init_weights(spec.job))
            return run_training(spec, run, start=start, tensorboard=self.options.tensorboard)

    def status(self, job: Path) -> JobStatus:
        return local_status(job)


def _check_layers(spec: JobSpec) -> None:
    """UpcallError naming the net file and the first layer the torch engine does not run."""
    from upcall.network.shapes import require_supported

    for layer in spec.net.layer:
        try:
            require_supported(layer)
        except UpcallError as e:
            raise UpcallError(f"{spec.job / spec.solver.net}: {e}") from None


class _Run:
    """One training run: nets, solver, feeders, and Caffe's loop over them (a Transport)."""

    engine = "torch"

    def __init__(self, spec: JobSpec, device: torch.device) -> None:
        from upcall.engines.torch.solver import CaffeSolver

        self.spec, self.device = spec, device
        torch.manual_seed(spec.seed)
        s = spec.solver
        self.train_feed = make_feeder(spec.train_data, train=True, seed=spec.seed, device=device)
        self.test_feed = None
        if spec.test_data is not None and len(s.test_iter) and s.test_interval > 0:
            if len(spec.test_data.tops) < 2:
                raise UpcallError(
                    f"{spec.job / s.net}: the TEST data layer needs a label top to be scored"
                )
            self.test_feed = make_feeder(
                spec.test_data, train=False, seed=spec.seed + 1, device=device
            )
        # Channels-last everywhere: on 2 CPU cores WhaleNet's update took 0.59 s against 0.75 s
        # in NCHW (pooling 10× faster). bf16 autocast only on a GPU (tensor cores); the CPU
        # keeps float32, Caffe's precision.
        self.fast = device.type == "cuda"
        self.memory_format = torch.channels_last
        self.net = CaffeNet(
            spec.net,
            phase=TRAIN,
            seed=spec.seed,
            input_shapes=feed_shapes(spec.train_data, self.train_feed),
            base=spec.job,
        )
        self.net.to(device, memory_format=self.memory_format)
        self.test_net = None
        if self.test_feed is not None:
            self.test_net = CaffeNet(
                spec.net,
                phase=TEST,
                seed=spec.seed,
                input_shapes=feed_shapes(spec.test_data, self.test_feed),
                base=spec.job,
            )
            # after .to(): moving a module re-creates its buffers, which would undo the sharing
            self.test_net.to(device, memory_format=self.memory_format).share_from(self.net)
            head = classifier_head(spec.net)
            if head is None:
                raise UpcallError(
                    f"net {spec.net.name!r}: no SoftmaxWithLoss layer in the TEST phase"
                )
            self.head = (head.bottom[0], head.top[0])  # (scores blob, loss blob)
        self.solver = CaffeSolver(self.net.param_specs(), s)
        self.losses: deque[float] = deque(maxlen=max(1, s.average_loss))
        self.iter = 0
        self.stop_requested = False
        self.stopped = False
        self.train_seconds = 0.0  # steady-state update time (the loop's images per second)
        self.timed_from = 0  # the first update after this one is timed
        self.train_count = len(self.train_feed)
        self.device_name = str(device)
        self.threads = torch.get_num_threads()
        self.started_from = ""  # what start_from loaded, for the log

    def start_from(self, weights: Path | None) -> None:
        """A new run's first weights: ``weights`` (a .caffemodel) copied into the TRAIN net by
        layer name over the fillers', as ``caffe train --weights`` does; None: the fillers'."""
        from upcall.engines.torch.caffemodel import load_caffemodel

        if weights is None:
            return
        if not weights.is_file():
            raise UpcallError(f"{weights}: not found (config.json's init_weights)")
        layers = load_caffemodel(self.net, weights)
        self.started_from = f"; weights of {len(layers)} layers from {weights}"

    # -- Caffe's loop ------------------------------------------------------------------------
    def run(self, start: int) -> Iterator[Event]:
        """Caffe's Solve from ``start``, as events for the shared loop."""
        s = self.spec.solver
        yield Log(
            f"torch engine on {self.device}, {self.threads} threads; "
            f"{self.train_count} training images, max_iter {s.max_iter}"
            + (f"; resumed from iteration {start}" if start else self.started_from)
        )
        self.timed_from = start + 1  # the run's first update is warm-up (allocations)
        while self.iter < s.max_iter:
            if self._test_due():
                yield self.test()
            t0 = time.perf_counter()
            loss = self.step()
            if self.iter > self.timed_from:
                self.train_seconds += time.perf_counter() - t0
            display = self._display(loss)
            if display is not None:
                yield display
            yield Step(self.iter, loss)
            snapshotted = bool(s.snapshot) and self.iter % s.snapshot == 0
            if snapshotted:
                yield from self.snapshot()
            if self.stop_requested:
                if not snapshotted:
                    yield from self.snapshot()
                self.stopped = True
                return
        if s.snapshot_after_train and not (s.snapshot and self.iter % s.snapshot == 0):
            yield from self.snapshot()
        if self.test_net is not None and self.iter % s.test_interval == 0:
            yield self.test()

    def stop(self) -> None:
        self.stop_requested = True

    def timing(self) -> tuple[float, int]:
        return self.train_seconds, max(0, self.iter - self.timed_from)

    def initial_weights(self) -> Path | None:
        return None  # every test here comes with its scores

    def score(self, weights: dict[int, Path]) -> dict[int, Scored]:
        return {}

    def _test_due(self) -> bool:
        s = self.spec.solver
        return (
            self.test_net is not None
            and self.iter % s.test_interval == 0
            and (self.iter > 0 or s.test_initialization)
        )

    def _display(self, loss: float) -> Display | None:
        self.losses.append(loss)
        s = self.spec.solver
        done = self.iter - 1  # Caffe displays with the iteration number before its increment
        if s.display and done % s.display == 0:
            smoothed = float(np.mean(self.losses))
            return Display(iter=done, loss=smoothed, lr=self.solver.lr(done))
        return None

    def step(self) -> float:
        """One update: ``iter_size`` forward/backward passes, then the solver's update."""
        self.net.train()
        n = max(1, self.spec.solver.iter_size)
        total = 0.0
        tops = self.spec.train_data.tops
        for _ in range(n):
            inputs = self._inputs(tops, self.train_feed.next_batch())
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.fast):
                loss = self.net.loss(self.net(inputs))
            # gradients add up over iter_size passes; the solver divides by iter_size, as Caffe
            loss.backward()
            total += float(loss.detach())
        self.solver.step(self.iter)
        self.iter += 1
        return total / n

    @torch.no_grad()
    def test(self) -> Tested:
        """Caffe's TestAll, but over each validation record once (:class:`ValPass`): from the
        first record, enough batches to cover them (the last one wraps; the loop drops the
        repeats), instead of ``test_iter`` batches from wherever the last test left the cursor."""
        tops = self.spec.test_data.tops
        scores, labels = [], []
        self.test_feed.cursor = 0
        for _ in range(self.spec.val_pass.batches):
            # float32 even on a GPU (no autocast): see the module docstring
            inputs = self._inputs(tops, self.test_feed.next_batch())
            label = inputs[tops[1]].long()  # HDF5Data's labels are float
            blobs = self.test_net(inputs)
            logits = blobs[self.head[0]].float()
            scores.append(torch.softmax(logits.flatten(1), dim=1).cpu())
            labels.append(label.cpu())
        return Tested(
            iter=self.iter,
            scores=torch.cat(scores).double().numpy(),
            labels=torch.cat(labels).numpy(),
        )

    def _inputs(self, tops: tuple[str, ...], batch) -> dict[str, torch.Tensor]:
        """A data layer's batch by top name, image blobs channels-last."""
        return {
            top: t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t
            for top, t in zip(tops, batch, strict=True)
        }

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> Iterator[Event]:
        """Caffe's snapshot pair for the current iteration, plus our .rng.pt (see module doc),
        written as one set (:func:`upcall.job.snapshots.write_set`)."""
        from upcall.engines.torch.caffemodel import save_caffemodel, save_solverstate
        from upcall.job.snapshots import write_set

        spec = self.spec
        model = spec.snapshot_path(self.iter, ".caffemodel")
        rng = {
            "train": self.train_feed.state(),
            "test": self.test_feed.state() if self.test_feed else None,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "losses": list(self.losses),
        }
        buffer = io.BytesIO()
        torch.save(rng, buffer)  # in memory: a failed write is then an OSError naming the file
        state = self.solver.state(self.iter)
        write_set(
            spec,
            self.iter,
            {
                ".caffemodel": lambda path: save_caffemodel(self.net, path),
                # the .caffemodel as Caffe, run in the job directory, names it
                ".solverstate": lambda path: save_solverstate(
                    path, state, learned_net=str(model.relative_to(spec.job))
                ),
                ".rng.pt": lambda path: path.write_bytes(buffer.getvalue()),
            },
        )
        yield Log(f"Snapshotting to {model.name} (+ .solverstate, .rng.pt)")
        yield Snapshotted(self.iter)

    def restore(self, it: int) -> int:
        """Load snapshot ``it`` (a complete set); returns the iteration to continue from."""
        from upcall.engines.torch.caffemodel import load_caffemodel, read_solverstate

        spec = self.spec
        snap, _ = read_solverstate(spec.snapshot_path(it, ".solverstate"))
        # the set's own .caffemodel: its learned_net may name where another machine wrote it
        load_caffemodel(self.net, spec.snapshot_path(it, ".caffemodel"))
        self.iter = self.solver.load_state(snap)
        # augmentation draws depend only on the batch index: one TRAIN forward per pass
        seek(self.net, self.iter * max(1, spec.solver.iter_size))
        rng_path = spec.snapshot_path(it, ".rng.pt")
        if not rng_path.exists():
            print(f"{rng_path}: missing; resuming with fresh data order and random draws")
            return self.iter
        try:
            rng = torch.load(rng_path, weights_only=False)
        except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError...
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UpcallError(
                f"{rng_path}: cannot be loaded ({reason}); delete the {rng_path.name[:-7]}.* "
                "files to resume from the snapshot before it"
            ) from e
        self.train_feed.load_state(rng["train"])
        if self.test_feed is not None and rng["test"] is not None:
            self.test_feed.load_state(rng["test"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.losses.extend(rng["losses"])
        return self.iter
