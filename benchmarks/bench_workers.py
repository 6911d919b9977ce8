"""Worker start methods on real commands: the old fork pool against upcall's one start method
(``upcall.parallel.START_METHOD``), and spawn, measured in the same run, same machine.

* ``upcall spectrograms DATA --workers 2`` on --clips synthetic clips, into a fresh folder each
  time; the PNGs of every method must be byte-identical (``map_chunks`` is ordered).
* with --detect-job JOB: ``upcall detect JOB --workers 2`` on two copies of a --minutes
  synthetic recording (forkserver and spawn only: a forked child of a process that has run
  torch can hang); the detection tables must be identical.

Each command runs --repeat times per method, the methods interleaved so that a busy machine
slows them alike; printed: the median wall times and each method's ratio to fork (detect:
to spawn), and the median CPU seconds of the whole process tree (the command, its workers, the
forkserver, the resource tracker: this script reaps them all as their subreaper), which a busy
machine disturbs far less than wall time. The method is chosen by the hidden
``UPCALL_START_METHOD`` switch.

    nice -n 10 .venv/bin/python benchmarks/bench_workers.py [--clips 3000] [--repeat 5]
        [--detect-job JOB] [--minutes 10]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _run import upcall  # benchmarks/_run.py: scripts here run from this folder

from upcall.parallel import METHOD_ENV, START_METHOD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--detect-job", type=Path, help="a trained job: also time detect")
    parser.add_argument("--minutes", type=float, default=10.0, help="detect: each recording")
    parser.add_argument("--work", type=Path, default=Path("/tmp/upcall-bench-workers"))
    args = parser.parse_args()
    if sys.platform == "linux":  # orphans (the forkserver and its workers' CPU) come to us
        pr_set_child_subreaper = 36
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    os.environ.setdefault("UPCALL_PROGRESS", "off")
    data = work / "data"
    upcall("synth", data, "--n-train", args.clips, "--seed", 1, "--workers", args.workers)
    print(f"{args.clips} clips, --workers {args.workers}, {args.repeat} runs per method")

    def spectrograms(method: str, run: int) -> tuple[float, str]:
        out = work / f"png-{method}-{run}"
        took = _timed("spectrograms", data, "--out", out, "--workers", args.workers)
        digest = _digest(sorted(out.rglob("*.png")), out)
        shutil.rmtree(out)
        return took, digest

    methods = ["fork", *dict.fromkeys([START_METHOD, "forkserver", "spawn"])]
    _compare("spectrograms", methods, args.repeat, spectrograms)
    if args.detect_job:
        two = work / "two"
        upcall("synth-recording", two / "a.wav", "--minutes", args.minutes, "--seed", 1)
        shutil.copy(two / "a.wav", two / "b.wav")

        def detect(method: str, run: int) -> tuple[float, str]:
            out = work / f"detect-{method}-{run}"
            took = _timed("detect", args.detect_job, two, "--out", out, "--workers", args.workers)
            digest = _digest(sorted(out.rglob("*.txt")), out)
            shutil.rmtree(out)
            return took, digest

        print(f"detect: two {args.minutes:g}-min recordings")
        _compare("detect", ["spawn", "forkserver"], args.repeat, detect)


def _timed(*args: object) -> tuple[float, float]:
    """Run ``upcall ARGS``; (wall seconds, CPU seconds of it and every process below it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "upcall", *map(str, args)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    while True:  # the orphans that came to us (forkserver, resource tracker), once they end
        try:
            os.wait()
        except ChildProcessError:
            break
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return took, cpu


def _compare(name: str, methods: list[str], repeat: int, run) -> None:
    """Each method ``repeat`` times, interleaved; prints medians and ratios to the first."""
    times: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    digests: set[str] = set()
    for i in range(repeat):
        for method in methods:
            os.environ[METHOD_ENV] = method
            took, digest = run(method, i)
            times[method].append(took)
            digests.add(digest)
    os.environ.pop(METHOD_ENV, None)
    base = [statistics.median(t) for t in zip(*times[methods[0]], strict=True)]
    for method in methods:
        wall, cpu = (statistics.median(t) for t in zip(*times[method], strict=True))
        mark = "  (upcall's)" if method == START_METHOD else ""
        print(
            f"  {name:<13} {method:<11} median {wall:6.2f} s wall ({wall / base[0]:4.2f}x "
            f"{methods[0]}), {cpu:6.2f} s CPU ({cpu / base[1]:4.2f}x){mark}"
        )
    print(f"  {name}: outputs {'identical' if len(digests) == 1 else 'DIFFER'} across methods")


def _digest(files: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


if __name__ == "__main__":
    main()
