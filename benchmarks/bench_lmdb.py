"""Images per second of `upcall lmdb` against Caffe's own convert_imageset, same images, same run.

    .venv/bin/python benchmarks/bench_lmdb.py [--n 30000] [--repeats 3] [--work DIR]

N greyscale 30×129 spectrogram-like PNGs (mostly dark, a few bright streaks, min–max scaled to
8 bits like the tutorial's) are squashed to 256×256 into an LMDB, PNG-encoded and raw, by
`upcall lmdb` (worker threads on all cores plus the LMDB writer; it also computes the mean,
which convert_imageset does not) and by
`convert_imageset --gray --resize_height=256 --resize_width=256 --backend=lmdb --shuffle
[--encoded --encode_type=png]` (single-threaded C++/OpenCV) from the Caffe root. Prints the median
wall time and CPU time of each, images/s and the ratios. On a shared machine quote the ratios:
wall time shows who finishes first, CPU time per image what each costs regardless of load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from upcall.data.dataset import DatasetSettings, build_dataset
from upcall.data.spectrogram import bytescale
from upcall.engines.caffe.root import tool_command
from upcall.parallel import default_workers, map_chunks


def _write_pngs(items: list[tuple[int, str]]) -> list[None]:
    for k, path in items:
        rng = np.random.default_rng(k)
        pxx = rng.exponential(1.0, (129, 30)) ** 2  # linear power: a few large values dominate
        pxx[rng.integers(5, 60), :] += rng.exponential(
            200.0
        )  # a tonal streak, as up-calls and ships make
        Image.fromarray(bytescale(pxx[None])[0]).save(path)
    return [None] * len(items)


def prepare(work: Path, n: int) -> tuple[Path, Path]:
    """The PNGs, our lists (90 % train / 10 % val) and convert_imageset's list of all N."""
    png, lists = work / "png", work / "lists"
    marker = work / f"png.{n}.done"
    if not marker.exists():
        png.mkdir(parents=True, exist_ok=True)
        items = [(k, str(png / f"train{k}.png")) for k in range(1, n + 1)]
        list(map_chunks(_write_pngs, items, desc="pngs", unit="png"))
        marker.touch()
    labels = [k % 4 == 0 for k in range(1, n + 1)]  # ~25 % whales, as in train.csv
    lines = [
        f"png/train{k}.png {int(label)}\n" for k, label in zip(range(1, n + 1), labels, strict=True)
    ]
    lists.mkdir(exist_ok=True)
    n_val = n // 10
    (lists / "train.txt").write_text("".join(f"{work}/{line}" for line in lines[: n - n_val]))
    (lists / "val.txt").write_text("".join(f"{work}/{line}" for line in lines[n - n_val :]))
    (lists / "labels.txt").write_text("not-whale\nwhale\n")
    (work / "caffe_list.txt").write_text("".join(lines))
    return lists, work / "caffe_list.txt"


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its finished children (pool workers, tools)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def time_ours(lists: Path, out: Path, encoding: str, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one build."""
    shutil.rmtree(out, ignore_errors=True)
    start, cpu = time.perf_counter(), _cpu_seconds()
    build_dataset(lists, out=out, settings=DatasetSettings(encoding=encoding, workers=workers))
    return time.perf_counter() - start, _cpu_seconds() - cpu


def time_caffe(work: Path, listfile: Path, db: Path, encoded: bool) -> tuple[float, float]:
    shutil.rmtree(db, ignore_errors=True)
    flags = ["--gray", "--resize_height=256", "--resize_width=256", "--backend=lmdb", "--shuffle"]
    if encoded:
        flags += ["--encoded", "--encode_type=png"]
    cmd = tool_command(
        "convert_imageset", *flags, f"{work}/", str(listfile), str(db), binds=(work,)
    )
    start, cpu = time.perf_counter(), _cpu_seconds()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start, _cpu_seconds() - cpu
    if done.returncode != 0:
        sys.exit(f"convert_imageset failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30_000, help="images (default 30000)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; medians are printed")
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="upcall's worker threads"
    )
    parser.add_argument(
        "--work", type=Path, help="scratch folder, kept for reruns (default: a temp dir)"
    )
    args = parser.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="bench_lmdb."))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    lists, listfile = prepare(work, args.n)
    runs = {
        "upcall lmdb --encoding png": lambda: time_ours(lists, work / "ours", "png", args.workers),
        "convert_imageset --encoded png": lambda: time_caffe(
            work, listfile, work / "caffe_db", True
        ),
        "upcall lmdb --encoding none": lambda: time_ours(
            lists, work / "ours", "none", args.workers
        ),
        "convert_imageset (raw)": lambda: time_caffe(work, listfile, work / "caffe_db", False),
    }
    # Repeats take turns (all four, then all four again) so a change in the machine's load
    # falls on both tools alike.
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            measured[name].append(fn())
    wall = {name: statistics.median(w for w, _ in m) for name, m in measured.items()}
    cpu = {name: statistics.median(c for _, c in m) for name, m in measured.items()}
    print(
        f"{args.n} images 129x30 -> 256x256 squash, median of {args.repeats} run(s); upcall on "
        f"{args.workers} worker threads, convert_imageset on 1; load average {os.getloadavg()[0]:.1f}"
    )
    for name in runs:
        print(
            f"  {name:<32} {wall[name]:8.2f} s wall {args.n / wall[name]:7.0f} images/s"
            f"   {cpu[name]:7.2f} CPU-s {1e3 * cpu[name] / args.n:6.2f} CPU-ms/image"
        )
    names = list(runs)
    for enc, ours, caffe in (("png", names[0], names[1]), ("raw", names[2], names[3])):
        print(
            f"  {enc}: upcall/convert_imageset speed {wall[caffe] / wall[ours]:.2f}x (wall), "
            f"{cpu[caffe] / cpu[ours]:.2f}x (CPU per image)"
        )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
