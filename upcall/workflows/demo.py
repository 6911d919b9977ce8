"""``upcall demo OUT``: the whole workflow on synthetic data, start to finish (``make demo``).

synthetic clips → the default recipe's pipeline (``upcall.workflows.pipeline``, as `upcall fit`
runs it: spectrograms → lists → LMDB → WhaleNet job → training on the torch engine) → report
→ the trained model scores a held-out test set (clips of the same synthesis whose labels,
test_truth.csv, no step before reads), so the AUC it ends with was not used for anything. Each
step is skipped when its output is already there, so rerunning after an interruption continues
where it stopped (training resumes from its latest snapshot). OUT/demo.json and OUT/recipe.json
record the settings; a rerun with other settings is refused rather than reporting old results.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

from upcall.errors import BatchReport, UpcallError
from upcall.job.records import Summary
from upcall.jsonfile import JsonFile
from upcall.workflows.pipeline import PIPELINE_STEPS, Layout, Steps, result_line, run_pipeline
from upcall.workflows.recipe import DEFAULT_RECIPE, Recipe, check_recipe

HELP = "run the whole workflow on synthetic data: clips → spectrograms → LMDB → WhaleNet → report"


@dataclass(frozen=True)
class DemoSettings(JsonFile):
    """OUT/demo.json. Sized to finish in minutes on two CPU cores (see README for the time).

    The training recipe is :data:`~upcall.workflows.recipe.DEFAULT_RECIPE` with these epochs and
    seed (OUT/recipe.json records it).
    """

    FILE: ClassVar[str] = "demo.json"

    n_train: int = 10000  # clips; 10 % of them become the validation set
    epochs: int = DEFAULT_RECIPE.epochs
    seed: int = 0
    n_test: int = 2000  # held-out clips, scored once at the end (labels in test_truth.csv)

    @property
    def recipe(self) -> Recipe:
        return DEFAULT_RECIPE.with_solver(epochs=self.epochs, seed=self.seed)

    @property
    def network(self) -> str:
        return self.recipe.network


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

    from upcall.inference import load_model
    from upcall.metrics import auc

    truth_path = data / "test_truth.csv"
    with open(truth_path, newline="", encoding="utf-8") as f:
        truth = {row["clip_name"]: int(row["label"]) for row in csv.DictReader(f)}
    model = load_model(job)
    report = BatchReport("inputs")
    rows = model.classify(sorted((data / "test").glob("*.aiff")), report=report)
    report.finish()
    missing = [row["input"] for row in rows if Path(row["input"]).name not in truth]
    if missing:
        raise UpcallError(f"{truth_path}: has no label for {missing[0]}")
    scores = np.array([row[model.positive_class] for row in rows])
    labels = np.array([truth[Path(row["input"]).name] for row in rows])
    return auc(scores, labels == 1), len(rows)


@dataclass(frozen=True)
class DemoResult:
    summary: Summary  # the trained job's summary.json (its validation figures)
    test_auc: float | None  # on the held-out test clips; None: none, or one class only
    n_test: int
    job: Path  # the trained job folder


def run_demo(
    out: Path, settings: DemoSettings = DemoSettings(), *, threads: int | None = None
) -> DemoResult:
    """Synthesize clips under ``out``, run the default recipe's pipeline on them, compare, and
    score the held-out clips; returns the summary and the held-out test AUC."""
    from upcall.audio.synth import SynthSettings, synthesize
    from upcall.engines import get_engine
    from upcall.job.records import read_summary
    from upcall.reports.report import make_report

    out = Path(out).resolve()
    _check_settings(out, settings)
    check_recipe(out, settings.recipe, hint="use another OUT or remove it")
    data = out / "data"
    # the tutorial's layout: PNGs beside the clips
    layout = Layout.under(out, data=data, spectrograms=data)
    s = settings
    steps = Steps("demo", PIPELINE_STEPS + 3)
    # synthesize keeps what an earlier run finished, so it always runs
    steps.step(f"synthetic clips: {s.n_train} labelled, {s.n_test} held out, in {data}")
    synthesize(data, SynthSettings(n_train=s.n_train, n_test=s.n_test, seed=s.seed))
    engine = get_engine("torch", threads=threads)
    job = run_pipeline(layout, s.recipe, engine, steps=steps, rerun="upcall demo")
    steps.step(f"model comparison in {out / 'report.html'}")
    make_report([layout.jobs], out=out, html=True)
    steps.step(f"scoring the {s.n_test} held-out test clips with the final snapshot")
    test_auc, n = held_out_auc(job, data) if s.n_test else (None, 0)
    return DemoResult(read_summary(job), test_auc, n, job)


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    d = DemoSettings()
    cliargs.add_out(
        parser,
        "folder for everything the demo makes (OUT alone, the old spelling, still works)",
        metavar="OUT",
        required=True,
        positional=True,
    )
    parser.add_argument(
        "--n-train",
        type=int,
        default=d.n_train,
        help=f"synthetic training clips (default {d.n_train})",
    )
    cliargs.add_epochs(parser, d.epochs, "the recipe's, as `upcall fit` trains")
    parser.add_argument(
        "--n-test",
        type=int,
        default=d.n_test,
        help=f"held-out test clips, scored once at the end (default {d.n_test})",
    )
    cliargs.add_seed(parser, "seed of every step: the data, the split, the training")
    cliargs.add_threads(parser, "for training")


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
    print(f"\ncurves:         {result.job / 'curves.png'}")
    print(f"report:         {args.out.resolve() / 'report.html'}")
    print(result_line(result.summary))
    if result.test_auc is not None:
        print(
            f"held-out test AUC: {result.test_auc:.4f} on {result.n_test} clips never used for "
            "training, tuning or choosing the model (hard synthetic data; see README)"
        )
    return 0
