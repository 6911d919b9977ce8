"""``upcall demo OUT``: the whole workflow on synthetic data, start to finish (``make demo``).

synthetic clips → spectrograms → lists → LMDB → WhaleNet job → training (torch engine) → report
→ the trained model scores a held-out test set (clips of the same synthesis whose labels,
test_truth.csv, no step before reads), so the AUC it ends with was not used for anything. Each step is skipped when its output is already there, so rerunning after an interruption
continues where it stopped (training resumes from its latest snapshot). OUT/demo.json records the
settings; a rerun with other settings is refused rather than reporting the old results.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile
from upcall.results.records import Summary

HELP = "run the whole workflow on synthetic data: clips → spectrograms → LMDB → WhaleNet → report"


@dataclass(frozen=True)
class DemoSettings(JsonFile):
    """OUT/demo.json. Sized to finish in minutes on two CPU cores (see README for the time)."""

    FILE: ClassVar[str] = "demo.json"

    n_train: int = 10000  # clips; 10 % of them become the validation set
    epochs: int = 5
    seed: int = 0
    base_lr: float = 0.01  # the tutorial's baseline rate
    network: str = "whalenet"  # works on the native 129×30 spectrogram, no resizing
    n_test: int = 2000  # held-out clips, scored once at the end (labels in test_truth.csv)


def _step(title: str, done: bool) -> bool:
    print(f"[demo] {title}{' (already done)' if done else ''}", flush=True)
    return not done


def _check_settings(out: Path, settings: DemoSettings) -> None:
    """Record ``settings`` in OUT/demo.json; refuse an OUT made with other settings, whose
    finished steps would otherwise be skipped and their old results reported."""
    before = DemoSettings.read(out)
    if before is not None:
        changed = [
            f"{f.name} {getattr(before, f.name)} → {getattr(settings, f.name)}"
            for f in fields(settings)
            if getattr(before, f.name) != getattr(settings, f.name)
        ]
        if changed:
            raise UpcallError(
                f"{out}: made by a demo with other settings ({', '.join(changed)}); "
                "use another OUT or remove it"
            )
        return
    settings.write(out)


def held_out_auc(job: Path, data: Path) -> tuple[float | None, int]:
    """(AUC, or None with one class only; clips) of the job's final snapshot on DATA/test, against DATA/test_truth.csv."""
    import csv

    import numpy as np

    from upcall.results.classify import classify
    from upcall.results.metrics import auc

    truth_path = data / "test_truth.csv"
    with open(truth_path, newline="", encoding="utf-8") as f:
        truth = {row["clip_name"]: int(row["label"]) for row in csv.DictReader(f)}
    rows = classify(job, sorted((data / "test").glob("*.aiff")))
    missing = [row["input"] for row in rows if Path(row["input"]).name not in truth]
    if missing:
        raise UpcallError(f"{truth_path}: has no label for {missing[0]}")
    scores = np.array([row["whale"] for row in rows])
    labels = np.array([truth[Path(row["input"]).name] for row in rows])
    return auc(scores, labels == 1), len(rows)


def result_line(summary: Summary) -> str:
    """The last validation figures; AUC is n/a when the validation set had a single class."""

    def fmt(key: str) -> str:
        value = getattr(summary.final, key, None)
        return "n/a" if value is None else f"{value:.4f}"

    return (
        f"validation AUC: {fmt('val_auc')} (accuracy {fmt('val_accuracy')}) after "
        f"{summary.epochs:.2f} epochs in {summary.wall_seconds:.0f} s"
    )


@dataclass(frozen=True)
class DemoResult:
    summary: Summary  # the trained job's summary.json (its validation figures)
    test_auc: float | None  # on the held-out test clips; None: none, or one class only
    n_test: int


def run_demo(
    out: Path, settings: DemoSettings = DemoSettings(), *, threads: int | None = None
) -> DemoResult:
    """Run every step under ``out``; returns the summary and the held-out test AUC."""
    from upcall.audio.synth import SynthSettings, synthesize
    from upcall.data.dataset import DatasetSettings, build_dataset
    from upcall.data.lists import ListSettings, make_lists
    from upcall.data.render import ensure
    from upcall.model.nets import load_dataset, make_job, write_job
    from upcall.model.solver import SolverSettings
    from upcall.results.report import make_report
    from upcall.workflows.sweep import train_pending

    out = Path(out).resolve()
    _check_settings(out, settings)
    data, lists, dataset, jobs = out / "data", out / "lists", out / "dataset", out / "jobs"
    s = settings
    # synthesize and ensure keep what an earlier run finished, so they always run
    _step(f"1/8 synthetic clips: {s.n_train} labelled, {s.n_test} held out, in {data}", False)
    synthesize(data, SynthSettings(n_train=s.n_train, n_test=s.n_test, seed=s.seed))
    _step(f"2/8 spectrograms (tutorial mode) beside the clips in {data}", False)
    ensure(data)
    if _step(f"3/8 train/val lists in {lists}", (lists / "lists.json").exists()):
        make_lists(data, out=lists, settings=ListSettings(seed=s.seed))
    if _step(f"4/8 LMDB dataset at native size in {dataset}", (dataset / "dataset.json").exists()):
        build_dataset(lists, out=dataset, settings=DatasetSettings(size=None, seed=s.seed))
    solver = SolverSettings(base_lr=s.base_lr, epochs=s.epochs, seed=s.seed)
    job = make_job(s.network, load_dataset(dataset), solver)
    folder = jobs / job.name
    if _step(f"5/8 {s.network} job in {folder}", (folder / "solver.prototxt").exists()):
        write_job(job, jobs)
    summary_path = folder / Summary.FILE
    if _step(
        f"6/8 training {s.network} for {s.epochs} epochs (torch engine)", summary_path.exists()
    ):
        from upcall.engines import get_engine

        train_pending(folder, get_engine("torch", threads=threads))
    _step(f"7/8 model comparison in {out}", False)
    make_report([jobs], out=out)
    _step(f"8/8 scoring the {s.n_test} held-out test clips with the final snapshot", False)
    test_auc, n = held_out_auc(folder, data) if s.n_test else (None, 0)
    from upcall.results.jobdir import read_summary

    return DemoResult(read_summary(folder), test_auc, n)


def configure(parser: argparse.ArgumentParser) -> None:
    d = DemoSettings()
    parser.add_argument(
        "out", type=Path, metavar="OUT", help="folder for everything the demo makes"
    )
    parser.add_argument(
        "--n-train",
        type=int,
        default=d.n_train,
        help=f"synthetic training clips (default {d.n_train})",
    )
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    parser.add_argument(
        "--n-test",
        type=int,
        default=d.n_test,
        help=f"held-out test clips, scored once at the end (default {d.n_test})",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    parser.add_argument("--threads", type=int, help="CPU threads for training (default: all cores)")


def run(args: argparse.Namespace) -> int:
    if args.n_train < 20 or args.epochs < 1 or args.n_test < 0:
        raise UpcallError(
            f"--n-train must be at least 20, --epochs at least 1 and --n-test at least 0 "
            f"(got {args.n_train}, {args.epochs}, {args.n_test})"
        )
    settings = DemoSettings(
        n_train=args.n_train, epochs=args.epochs, seed=args.seed, n_test=args.n_test
    )
    result = run_demo(args.out, settings, threads=args.threads)
    job = args.out.resolve() / "jobs" / f"{settings.network}-lr{settings.base_lr:g}"
    print(f"\ncurves:         {job / 'curves.png'}")
    print(f"report:         {args.out.resolve() / 'report.md'}")
    print(result_line(result.summary))
    if result.test_auc is not None:
        print(
            f"held-out test AUC: {result.test_auc:.4f} on {result.n_test} clips never used for "
            "training, tuning or choosing the model (hard synthetic data; see README)"
        )
    return 0
