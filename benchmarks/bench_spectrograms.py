"""Clips per second of ``upcall spectrograms`` against the tutorial's way and against the I/O floor.

    python benchmarks/bench_spectrograms.py [--clips 30000] [--tutorial-clips 1000] [--repeats 3]

* ours: ``upcall.data.render.make`` in tutorial mode, all cores (``--workers``), every clip made.
* tutorial: the tutorial's ``preprocess-aiff.py`` loop in one process: read int16 (soundfile,
  as aifc did), ``pyplot.specgram(NFFT=256, noverlap=128)`` (never cleared, as in the script),
  old SciPy's bytescale, one PNG save. It is slow, so it runs on the first ``--tutorial-clips``
  clips and rates are compared.
* floor: read every clip and write a 129 × 30 PNG of zeros with the same atomic writer and the
  same number of workers as ours: what any converter must pay.

Repeats are interleaved (ours, floor, tutorial, ours, ...) so a change in machine load hits all
three; medians are printed. The clips come from ``upcall.audio.synth`` (Kaggle layout, seed 0).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from upcall.audio.synth import SynthSettings, synthesize
from upcall.data.pngroot import find_clips, png_path
from upcall.data.render import make
from upcall.data.spectrogram import HEIGHT, WIDTH, write_png
from upcall.parallel import default_workers, map_chunks


def ours(data: Path, out: Path, workers: int) -> int:
    _, made, _ = make(data, out=out, mode="tutorial", workers=workers)
    return made


def _floor_chunk(items: list[tuple[Path, Path]]) -> list[None]:
    blank = np.zeros((HEIGHT, WIDTH), np.uint8)
    for clip, png in items:
        sf.read(clip, dtype="int16")
        write_png(png, blank)
    return [None] * len(items)


def floor(data: Path, out: Path, workers: int) -> int:
    clips = find_clips(data)
    items = [(c, png_path(c, data_dir=data, root=out)) for c in clips]
    for _ in map_chunks(_floor_chunk, items, workers=workers, chunk=256):
        pass
    return len(items)


def tutorial(data: Path, out: Path, n: int) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    clips = find_clips(data)[:n]
    (out / "train").mkdir(parents=True, exist_ok=True)
    for clip in clips:
        amplitudes, _ = sf.read(clip, dtype="int16")
        pxx = plt.specgram(amplitudes, NFFT=256, noverlap=128)[0]
        Image.fromarray(_old_bytescale(pxx)).save(out / "train" / (clip.stem + ".png"))
    plt.close("all")
    return len(clips)


def _old_bytescale(data: np.ndarray) -> np.ndarray:
    # SciPy 0.18's bytescale, which the tutorial's scipy.misc.imsave applied.
    cmin, cmax = data.min(), data.max()
    scale = 255.0 / ((cmax - cmin) or 1)
    return np.clip((data * 1.0 - cmin) * scale + 0.4999, 0, 255).astype(np.uint8)


def timed(fn, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    n = fn(out)
    rate = n / (time.perf_counter() - start)
    shutil.rmtree(out, ignore_errors=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=30000)
    parser.add_argument("--tutorial-clips", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument(
        "--data", type=Path, default=None, help="reuse (or create) this synthetic data directory"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-spec-") as tmp:
        data = args.data or Path(tmp) / "data"
        synthesize(data, SynthSettings(n_train=args.clips, n_test=0, seed=0), workers=args.workers)
        runs = {
            "ours": functools.partial(ours, data, workers=args.workers),
            "floor": functools.partial(floor, data, workers=args.workers),
            "tutorial": functools.partial(tutorial, data, n=args.tutorial_clips),
        }
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.repeats):
            for name, fn in runs.items():
                rates[name].append(timed(lambda out, fn=fn: fn(out=out), Path(tmp) / name))
                print(f"repeat {r + 1}: {name:8s} {rates[name][-1]:8.0f} clips/s", flush=True)

    med = {name: statistics.median(v) for name, v in rates.items()}
    print(
        f"\n{args.clips} clips (tutorial's way on the first {args.tutorial_clips}, rates "
        f"compared), {args.workers} workers, median of {args.repeats} repeats:"
    )
    for name in runs:
        print(
            f"  {name:8s} {med[name]:8.0f} clips/s   (repeats: "
            f"{', '.join(f'{v:.0f}' for v in rates[name])})"
        )
    print(f"  ours / tutorial = {med['ours'] / med['tutorial']:.1f}x faster (target >= 30x)")
    print(f"  floor / ours    = {med['floor'] / med['ours']:.2f}x (target <= 3x)")
    print(
        f"  floor / tutorial = {med['floor'] / med['tutorial']:.1f}x: the most any converter "
        "writing these files with these workers could gain over the tutorial's way"
    )


if __name__ == "__main__":
    main()
