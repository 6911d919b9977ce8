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
it resumes the same way but is not bit-exact: cuDNN autotuning (``cudnn.benchmark``) and atomic
reductions make even two unbroken runs differ in the last bits. Without the .rng.pt a resume still
works but draws fresh randomness (logged).

On a GPU the updates run in bf16 autocast; tests run in float32, since bf16 scores tie often
enough to change the accuracy (Caffe's Accuracy counts a tie against the label).
"""

from __future__ import annotations

import math
import signal
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from upcall.engines import Interrupted
from upcall.engines.jobspec import (
    DataSpec,
    JobSpec,
    classifier_head,
    load_job,
    resume_point,
    snapshot_names,
)
from upcall.engines.torch.data import Feeder
from upcall.engines.torch.net import CaffeNet
from upcall.errors import UpcallError
from upcall.fsutil import atomic_path
from upcall.progress import progress
from upcall.proto import caffe_pb2
from upcall.results.jobdir import JobWriter

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def configure_device(gpu: int | None, threads: int | None) -> torch.device:
    """Pick the device; on the CPU use every available core (or ``threads``)."""
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
    torch.backends.cudnn.benchmark = True
    return torch.device("cuda", gpu)


class TorchEngine:
    """Trains a job with upcall.engines.torch (see the module docstring for the semantics)."""

    name = "torch"

    def train(
        self, job: Path, *, resume: bool = False, gpu: int | None = None, threads: int | None = None
    ) -> dict:
        spec = load_job(job)
        device = configure_device(gpu, threads)
        return _Run(spec, device).solve(resume=resume)


class _Run:
    """One training run: nets, solver, feeders, writer, and Caffe's loop over them."""

    def __init__(self, spec: JobSpec, device: torch.device) -> None:
        from upcall.engines.torch.solver import CaffeSolver

        self.spec, self.device = spec, device
        torch.manual_seed(spec.seed)
        s = spec.solver
        self.train_feed = Feeder(
            spec.train_data.source,
            batch_size=spec.train_data.batch_size,
            transform=spec.train_data.transform,
            train=True,
            seed=spec.seed,
            device=device,
        )
        self.test_feed = None
        if spec.test_data is not None and len(s.test_iter) and s.test_interval > 0:
            self.test_feed = Feeder(
                spec.test_data.source,
                batch_size=spec.test_data.batch_size,
                transform=spec.test_data.transform,
                train=False,
                seed=spec.seed + 1,
                device=device,
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
            input_shapes=self._shapes(spec.train_data, self.train_feed),
        )
        self.net.to(device, memory_format=self.memory_format)
        self.test_net = None
        if self.test_feed is not None:
            self.test_net = CaffeNet(
                spec.net,
                phase=TEST,
                seed=spec.seed,
                input_shapes=self._shapes(spec.test_data, self.test_feed),
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
        self.images_per_iter = spec.train_data.batch_size * max(1, s.iter_size)
        self.losses: deque[float] = deque(maxlen=max(1, s.average_loss))
        self.iter = 0
        self.stop_requested = False

    @staticmethod
    def _shapes(data: DataSpec, feed: Feeder) -> dict[str, tuple[int, ...]]:
        return {data.tops[0]: feed.output_shape, data.tops[1]: (data.batch_size,)}

    def epoch(self, it: int) -> float:
        return it * self.images_per_iter / len(self.train_feed)

    # -- Caffe's loop ------------------------------------------------------------------------
    def solve(self, *, resume: bool) -> dict:
        spec, s = self.spec, self.spec.solver
        start = self._restore() if resume else 0
        self.writer = JobWriter(spec.job, class_names=list(spec.class_names), start_iter=start)
        self.writer.log(
            f"torch engine on {self.device}, {torch.get_num_threads()} threads; "
            f"{len(self.train_feed)} training images, max_iter {s.max_iter}"
            + (f"; resumed from iteration {start}" if start else "")
        )
        train_seconds = 0.0
        started = time.perf_counter()
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        bar = progress(total=s.max_iter, desc=spec.job.name, unit="iter")
        bar.update(start)
        try:
            while self.iter < s.max_iter:
                if self._test_due():
                    self.test()
                t0 = time.perf_counter()
                loss = self.step()
                if self.iter > start + 1:  # the run's first update is warm-up (allocations)
                    train_seconds += time.perf_counter() - t0
                self._display(loss)
                bar.update(1)
                speed = self.images_per_iter * (self.iter - start - 1) / max(train_seconds, 1e-9)
                bar.set_postfix(
                    epoch=f"{self.epoch(self.iter):.2f}", loss=f"{loss:.4f}", img_s=f"{speed:.0f}"
                )
                if s.snapshot and self.iter % s.snapshot == 0:
                    self.snapshot()
                if self.stop_requested:
                    if not (s.snapshot and self.iter % s.snapshot == 0):
                        self.snapshot()
                    raise Interrupted(
                        f"{spec.job}: stopped at iteration {self.iter} with a "
                        f"snapshot; continue with: upcall train {spec.job} --resume"
                    )
            if s.snapshot_after_train and not (s.snapshot and self.iter % s.snapshot == 0):
                self.snapshot()
            if self.test_net is not None and self.iter % s.test_interval == 0:
                self.test()
        except Interrupted:
            self.writer.close()
            raise
        finally:
            bar.close()
            signal.signal(signal.SIGINT, previous)
        return self._finish(start, train_seconds, time.perf_counter() - started)

    def _on_sigint(self, signum, frame) -> None:
        if self.stop_requested:  # a second Ctrl-C: stop now, without a snapshot
            raise KeyboardInterrupt
        self.stop_requested = True
        print(
            "\nstopping after this iteration (Ctrl-C again to abort without a snapshot)", flush=True
        )

    def _test_due(self) -> bool:
        s = self.spec.solver
        return (
            self.test_net is not None
            and self.iter % s.test_interval == 0
            and (self.iter > 0 or s.test_initialization)
        )

    def _display(self, loss: float) -> None:
        self.losses.append(loss)
        s = self.spec.solver
        done = self.iter - 1  # Caffe displays with the iteration number before its increment
        if s.display and done % s.display == 0:
            smoothed = float(np.mean(self.losses))
            if not math.isfinite(smoothed):
                raise UpcallError(
                    f"{self.spec.job}: training loss became {smoothed} at iteration "
                    f"{done}; try decreasing the learning rate"
                )
            self.writer.train(
                iter=done, epoch=self.epoch(done), lr=self.solver.lr(done), loss=smoothed
            )

    def step(self) -> float:
        """One update: ``iter_size`` forward/backward passes, then the solver's update."""
        self.net.train()
        n = max(1, self.spec.solver.iter_size)
        total = 0.0
        tops = self.spec.train_data.tops
        for _ in range(n):
            data, labels = self.train_feed.next_batch()
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.fast):
                data = data.contiguous(memory_format=self.memory_format)
                loss = self.net.loss(self.net({tops[0]: data, tops[1]: labels}))
            # gradients add up over iter_size passes; the solver divides by iter_size, as Caffe
            loss.backward()
            total += float(loss.detach())
        self.solver.step(self.iter)
        self.iter += 1
        return total / n

    @torch.no_grad()
    def test(self) -> dict:
        """Caffe's TestAll: ``test_iter`` batches; the cursor carries over between tests."""
        tops = self.spec.test_data.tops
        scores, labels, losses = [], [], []
        for _ in range(self.spec.solver.test_iter[0]):
            data, label = self.test_feed.next_batch()
            # float32 even on a GPU (no autocast): see the module docstring
            data = data.contiguous(memory_format=self.memory_format)
            blobs = self.test_net({tops[0]: data, tops[1]: label})
            logits = blobs[self.head[0]].float()
            scores.append(torch.softmax(logits.flatten(1), dim=1).cpu())
            labels.append(label.cpu())
            losses.append(float(blobs[self.head[1]].float().sum()))
        return self.writer.test(
            iter=self.iter,
            epoch=self.epoch(self.iter),
            val_loss=float(np.mean(losses)),
            scores=torch.cat(scores).double().numpy(),
            labels=torch.cat(labels).numpy(),
        )

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self) -> str:
        """Caffe's snapshot pair for the current iteration, plus our .rng.pt (see module doc)."""
        from upcall.engines.torch.caffemodel import save_caffemodel, save_solverstate

        spec = self.spec
        model = spec.snapshot_path(self.iter, ".caffemodel")
        save_caffemodel(self.net, model)
        save_solverstate(
            spec.snapshot_path(self.iter, ".solverstate"),
            self.solver.state(self.iter),
            learned_net=model.name,
        )
        rng = {
            "train": self.train_feed.state(),
            "test": self.test_feed.state() if self.test_feed else None,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "losses": list(self.losses),
        }
        with atomic_path(spec.snapshot_path(self.iter, ".rng.pt")) as tmp:
            torch.save(rng, tmp)
        self.writer.log(f"Snapshotting to {model.name} (+ .solverstate, .rng.pt)")
        return model.name

    def _restore(self) -> int:
        """Load the latest snapshot; returns the iteration to continue from."""
        from upcall.engines.torch.caffemodel import load_caffemodel, read_solverstate

        spec = self.spec
        it = resume_point(spec)
        snap, learned_net = read_solverstate(spec.snapshot_path(it, ".solverstate"))
        # Caffe records the caffemodel path as it was written; ours is relative to the job
        load_caffemodel(self.net, spec.job / learned_net)
        self.iter = self.solver.load_state(snap)
        rng_path = spec.snapshot_path(it, ".rng.pt")
        if not rng_path.exists():
            print(f"{rng_path}: missing; resuming with fresh data order and random draws")
            return self.iter
        rng = torch.load(rng_path, weights_only=False)
        self.train_feed.load_state(rng["train"])
        if self.test_feed is not None and rng["test"] is not None:
            self.test_feed.load_state(rng["test"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.losses.extend(rng["losses"])
        return self.iter

    def _finish(self, start: int, train_seconds: float, wall: float) -> dict:
        spec = self.spec
        timed = self.iter - start - 1  # updates in train_seconds: all but the first
        snaps = snapshot_names(spec)
        return self.writer.finish(
            {
                "engine": "torch",
                "network": spec.network,
                "iterations": self.iter,
                "epochs": round(self.epoch(self.iter), 6),
                "wall_seconds": round(wall, 3),
                # steady state: forward/backward/update only, no tests or snapshots, no warm-up
                "train_images_per_second": round(timed * self.images_per_iter / train_seconds, 2)
                if train_seconds > 0
                else None,
                "device": str(self.device),
                "threads": torch.get_num_threads(),
                "resumed_from": start or None,
                "snapshots": snaps,
            }
        )
