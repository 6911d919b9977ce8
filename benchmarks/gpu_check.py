"""Every CUDA path of upcall checked on one GPU, in a few minutes; run by gpu_check.sh.

Each check prints a row ``check | result | figure | cpu figure | ratio`` as it finishes, and
the table again at the end; the exit status is 1 when a check failed.

    train        the torch engine trains a small synthetic WhaleNet job on the GPU: its val AUC
                 against the same job trained on the CPU
    resume       --deterministic on the GPU: a run stopped half-way and resumed ends with exactly
                 the weights of an unbroken run (max |Δw| must be 0); "resume (autotuned)" shows
                 the same without --deterministic, for information
    bf16         the trained net's val scores under bf16 autocast (what training uses on a GPU)
                 against float32 on the CPU: AUC, top-1 agreement, max |Δp|
    whalenet/alexnet   steady-state training images/s on the GPU against the CPU's (all cores)
    detect       the detector's scoring of 2-s windows (spectrograms + network) on the GPU
                 against the CPU, as × real time at the default 0.5-s step
    caffe        a CUDA Caffe (UPCALL_CAFFE or --caffe-bin; skipped without one) training the
                 whalenet timing job with --gpu against the same Caffe on the CPU

``--dry-run`` runs every check with the CPU standing in for the GPU (tiny sizes), so the script
itself is tested on machines without one (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _run import upcall  # benchmarks/_run.py: scripts here run from this folder
from bench_train import random_dataset, timing_job

from upcall.job.records import read_summary
from upcall.proto import caffe_pb2, read_text, to_text

SKIP = 77  # the exit status of a check run that could not start (no GPU): "skipped"


@dataclass(frozen=True)
class Row:
    check: str
    result: str  # "ok", "FAIL: ...", "skipped: ...", or a plain figure for information
    figure: str = ""
    cpu: str = ""
    ratio: str = ""

    def line(self, widths: tuple[int, ...] = (0, 0, 0, 0, 0)) -> str:
        cells = [self.check, self.result, self.figure, self.cpu, self.ratio]
        while cells[-1] == "":  # no trailing empty columns
            cells.pop()
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()


HEADER = Row("check", "result", "figure", "cpu figure", "ratio")


def table(rows: list[Row]) -> str:
    """The rows under the header, columns aligned."""
    every = [HEADER, *rows]
    widths = tuple(
        max(len(getattr(r, f)) for r in every)
        for f in ("check", "result", "figure", "cpu", "ratio")
    )
    return "\n".join(r.line(widths) for r in every)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "n/a"


@dataclass(frozen=True)
class Setup:
    """What every check needs: the device, the sizes, the work folder."""

    gpu: int | None  # None: --dry-run (the CPU stands in for the GPU)
    work: Path
    clips: int  # synthetic clips for the training checks
    epochs: int
    iters: int  # timed iterations per throughput run on the GPU
    cpu_iters: int  # ... on the CPU (slower: fewer)
    windows: int  # 2-s windows scored by the detection check
    networks: tuple[str, ...]
    caffe_bin: Path | None

    @property
    def gpu_flags(self) -> list[str]:
        return [] if self.gpu is None else ["--gpu", str(self.gpu)]


def prepare_job(s: Setup) -> Path:
    """A tiny synthetic WhaleNet job (synth → spectrograms → lists → lmdb → nets), untrained."""
    data, ds, jobs = s.work / "data", s.work / "dataset", s.work / "jobs"
    upcall("synth", data, "--n-train", s.clips, "--seed", 0)
    upcall("spectrograms", data)
    upcall("lists", data, "--out", s.work / "lists", "--seed", 0)
    upcall("lmdb", s.work / "lists", "--out", ds, "--size", "native", "--seed", 0)
    upcall("nets", "--dataset", ds, "--networks", "whalenet", "--epochs", s.epochs,
           "--seed", 0, "--out", jobs)  # fmt: skip
    (job,) = jobs.iterdir()
    return job


def copy_job(job: Path, name: str, *, max_iter: int | None = None) -> Path:
    """An untrained copy of ``job``; ``max_iter`` rewrites its solver's."""
    to = job.with_name(name)
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(job, to)
    if max_iter is not None:
        set_max_iter(to, max_iter)
    return to


def set_max_iter(job: Path, max_iter: int) -> None:
    solver = read_text(job / "solver.prototxt", caffe_pb2.SolverParameter())
    solver.max_iter = max_iter
    (job / "solver.prototxt").write_text(to_text(solver))


def max_iter(job: Path) -> int:
    return int(read_text(job / "solver.prototxt", caffe_pb2.SolverParameter()).max_iter)


def check_train(s: Setup, job: Path) -> list[Row]:
    gpu_job, cpu_job = copy_job(job, "train-gpu"), copy_job(job, "train-cpu")
    upcall("train", gpu_job, *s.gpu_flags)
    upcall("train", cpu_job)
    g, c = read_summary(gpu_job), read_summary(cpu_job)
    want = "cpu" if s.gpu is None else f"cuda:{s.gpu}"
    gauc, cauc = g.final.val_auc or 0.0, c.final.val_auc or 0.0
    # bf16 updates round differently from float32 ones: a small job's AUC moves a little
    ok = g.device == want and abs(gauc - cauc) <= 0.1
    result = "ok" if ok else f"FAIL: device {g.device}, val AUC {gauc:.4f} vs CPU {cauc:.4f}"
    return [Row("train (val AUC)", result, f"{gauc:.4f}", f"{cauc:.4f}", ratio(gauc, cauc))]


def check_resume(s: Setup, job: Path) -> list[Row]:
    rows = []
    full = max_iter(job)
    for name, flags in (("resume", ["--deterministic"]), ("resume (autotuned)", [])):
        tag = "det" if flags else "auto"
        straight = copy_job(job, f"straight-{tag}")
        upcall("train", straight, *s.gpu_flags, *flags)
        halves = copy_job(job, f"halves-{tag}", max_iter=full // 2)
        upcall("train", halves, *s.gpu_flags, *flags)
        set_max_iter(halves, full)
        upcall("train", halves, *s.gpu_flags, *flags, "--resume")
        diff = max_weight_diff(straight, halves, full)
        if flags:
            result = "ok (bit-exact)" if diff == 0 else f"FAIL: max |Δw| {diff:.3g}"
        else:
            result = "exact" if diff == 0 else "differs (expected without --deterministic)"
        rows.append(Row(name, result, f"max |Δw| {diff:.3g}"))
    return rows


def max_weight_diff(a: Path, b: Path, it: int) -> float:
    """The largest difference between two jobs' snapshot_iter_``it`` weights."""
    from upcall.proto import read_binary

    def blobs(job: Path) -> dict[str, list[np.ndarray]]:
        net = read_binary(job / f"snapshot_iter_{it}.caffemodel", caffe_pb2.NetParameter())
        return {x.name: [np.asarray(blob.data, np.float32) for blob in x.blobs] for x in net.layer}

    x, y = blobs(a), blobs(b)
    return max(
        (
            float(np.max(np.abs(p - q), initial=0.0))
            for n in x
            for p, q in zip(x[n], y[n], strict=True)
        ),
        default=0.0,
    )


def check_bf16(s: Setup, job: Path) -> list[Row]:
    """Val scores of the trained net under bf16 autocast (the GPU's training precision)."""
    import torch

    from upcall.data.datum import load_db
    from upcall.inference import load_model
    from upcall.metrics import evaluate

    trained = job.with_name("train-gpu")
    spec_db = trained.parent.parent / "dataset" / "val_db"
    images, labels = load_db(spec_db)
    cpu = load_model(trained).predictor
    dev = load_model(trained, gpu=s.gpu).predictor
    x = cpu.deploy.preprocess.apply(images)
    p32 = cpu.predict(x)
    device = "cpu" if s.gpu is None else "cuda"
    with torch.autocast(device, dtype=torch.bfloat16):
        p16 = dev.predict(x)
    names = list(cpu.class_names)
    a32 = evaluate(p32, labels, class_names=names)["val_auc"]
    a16 = evaluate(p16, labels, class_names=names)["val_auc"]
    agree = float(np.mean(p16.argmax(1) == p32.argmax(1)))
    dp = float(np.max(np.abs(p16 - p32)))
    # bf16 keeps 8 bits of mantissa: probabilities move by ~1e-2 at most. The AUCs are shown,
    # not judged: on a small val set one near-tie that swaps moves the AUC by 1 / (pos × neg).
    ok = dp <= 0.05
    detail = f"top-1 agreement {agree:.3f}, max |Δp| {dp:.3g}"
    result = f"ok ({detail})" if ok else f"FAIL: {detail}"
    return [Row("bf16 vs fp32 (val AUC)", result, f"{a16:.4f}", f"{a32:.4f}", ratio(a16, a32))]


def check_throughput(s: Setup) -> list[Row]:
    from bench_train import SIZES

    rows = []
    for network in s.networks:
        h, w = SIZES[network]
        dataset = random_dataset(s.work / f"random-{h}x{w}", height=h, width=w, n=256)
        rates = []
        for flags, iters in ((s.gpu_flags, s.iters), ([], s.cpu_iters)):
            job = timing_job(network, dataset, s.work / f"timing-{len(rates)}", iters=iters)
            upcall("train", job, *flags)
            rates.append(float(read_summary(job).train_images_per_second or 0.0))
        gpu_rate, cpu_rate = rates
        rows.append(
            Row(
                f"{network} img/s",
                "ok",
                f"{gpu_rate:.1f}",
                f"{cpu_rate:.1f}",
                ratio(gpu_rate, cpu_rate),
            )
        )
    return rows


def check_detect(s: Setup, job: Path) -> list[Row]:
    """Windows/s of the detector's scorer (spectrogram + network) → × real time at 0.5-s steps."""
    from upcall.detect.score import Scorer
    from upcall.inference import load_model

    trained = job.with_name("train-gpu")
    samples = np.random.default_rng(0).normal(0, 1000, (s.windows, 4000))
    speeds = []
    for gpu in (s.gpu, None):
        scorer = Scorer(trained)
        scorer.model = load_model(trained, gpu=gpu)
        scorer.score(0, samples[:64])  # warm-up: allocations, kernel choice
        start = time.perf_counter()
        scorer.score(0, samples)
        speeds.append(s.windows * 0.5 / (time.perf_counter() - start))
    g, c = speeds
    return [Row("detect (× real time)", "ok", f"{g:.0f}×", f"{c:.0f}×", ratio(g, c))]


def find_caffe(s: Setup) -> Path | None:
    if s.caffe_bin is not None:
        return s.caffe_bin
    if os.environ.get("UPCALL_CAFFE"):
        return Path(os.environ["UPCALL_CAFFE"])
    return None


def check_caffe(s: Setup) -> list[Row]:
    from bench_train import SIZES

    caffe = find_caffe(s)
    if caffe is None or s.gpu is None:
        why = "dry run" if s.gpu is None else "no CUDA Caffe (set UPCALL_CAFFE or --caffe-bin)"
        return [Row("caffe --gpu img/s", f"skipped: {why}")]
    h, w = SIZES["whalenet"]
    dataset = random_dataset(s.work / f"random-{h}x{w}", height=h, width=w, n=256)
    rates = []
    for flags, iters in ((s.gpu_flags, s.iters), ([], s.cpu_iters)):
        job = timing_job("whalenet", dataset, s.work / f"caffe-{len(rates)}", iters=iters)
        upcall("train", job, "--engine", "caffe", "--caffe-bin", caffe, *flags)
        rates.append(float(read_summary(job).train_images_per_second or 0.0))
    g, c = rates
    return [Row("caffe --gpu img/s", "ok", f"{g:.1f}", f"{c:.1f}", ratio(g, c))]


def run_checks(s: Setup) -> list[Row]:
    """Every check in turn; one that raises becomes a FAIL row and the others still run."""
    rows: list[Row] = []
    job: Path | None = None

    def attempt(name: str, check: Callable[[], list[Row]]) -> None:
        try:
            new = check()
        except (Exception, SystemExit) as e:  # _run.upcall exits with the command's stderr
            reason = " ".join(str(e).split())[-300:] or type(e).__name__
            new = [Row(name, f"FAIL: {reason}")]
        for row in new:
            print(row.line(), flush=True)
        rows.extend(new)

    print(HEADER.line(), flush=True)
    try:
        job = prepare_job(s)
    except SystemExit as e:
        rows.append(Row("synthetic job", f"FAIL: {' '.join(str(e).split())[-300:]}"))
        print(rows[-1].line(), flush=True)
    if job is not None:
        attempt("train", lambda: check_train(s, job))
        attempt("resume", lambda: check_resume(s, job))
        attempt("bf16", lambda: check_bf16(s, job))
        attempt("detect", lambda: check_detect(s, job))
    attempt("throughput", lambda: check_throughput(s))
    attempt("caffe", lambda: check_caffe(s))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", type=int, default=0, help="CUDA device index (default 0)")
    parser.add_argument("--work", type=Path, required=True, help="an empty scratch folder")
    parser.add_argument("--clips", type=int, default=1000, help="synthetic clips (default 1000)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument("--iters", type=int, default=30, help="timed GPU iterations (default 30)")
    parser.add_argument("--cpu-iters", type=int, default=6, help="timed CPU iterations (6)")
    parser.add_argument("--windows", type=int, default=4000, help="detection windows (4000)")
    parser.add_argument("--networks", default="whalenet,alexnet", help="throughput networks")
    parser.add_argument("--caffe-bin", type=Path, help="a CUDA caffe binary (or UPCALL_CAFFE)")
    parser.add_argument(
        "--dry-run", action="store_true", help="the CPU stands in for the GPU (tests the script)"
    )
    args = parser.parse_args(argv)
    for name in ("clips", "epochs", "iters", "cpu_iters", "windows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    unknown = set(args.networks.split(",")) - {"whalenet", "alexnet"}
    if unknown:
        parser.error(f"--networks: unknown {', '.join(sorted(unknown))} (whalenet, alexnet)")
    return args


def cuda_problem(gpu: int) -> str | None:
    """Why torch cannot use CUDA device ``gpu`` here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device (a CPU build, or no driver)"
    if gpu >= torch.cuda.device_count():
        return f"--gpu {gpu}: only {torch.cuda.device_count()} CUDA device(s)"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.dry_run and (problem := cuda_problem(args.gpu)):
        print(f"gpu_check: {problem}; nothing checked", file=sys.stderr)
        return SKIP
    setup = Setup(
        gpu=None if args.dry_run else args.gpu,
        work=args.work,
        clips=args.clips,
        epochs=args.epochs,
        iters=args.iters,
        cpu_iters=args.cpu_iters,
        windows=args.windows,
        networks=tuple(args.networks.split(",")),
        caffe_bin=args.caffe_bin,
    )
    started = time.perf_counter()
    rows = run_checks(setup)
    print(f"\n{'dry run on the CPU' if args.dry_run else f'GPU {args.gpu}'}, "
          f"{time.perf_counter() - started:.0f} s:\n{table(rows)}")  # fmt: skip
    return 1 if any(r.result.startswith("FAIL") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
