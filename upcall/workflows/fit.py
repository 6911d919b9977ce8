"""``upcall fit DATA --out OUT``: train a detector on your own labelled clips in one step.

DATA is the Kaggle layout: train.csv (``clip_name,label`` rows, label 1 = up-call) and train/
with the clips; test/ is not needed. The recipe (:mod:`upcall.workflows.recipe`, default
:data:`~upcall.workflows.recipe.DEFAULT_RECIPE`) decides every step:

    OUT/recipe.json      the recipe used; a rerun with another recipe is refused
    OUT/spectrograms/    a PNG per clip (DATA is only read)
    OUT/lists/           train/val lists      OUT/dataset/   Caffe LMDBs
    OUT/jobs/<network>-lr<lr>/   the trained job: what `upcall classify` and `upcall detect` use

The recipe is checked whole (types, values, the job it makes) before any step runs, and
recorded only then. Each step is skipped when its output was made from what it reads now;
an OUT made from DATA before its labels or clips changed (by content, not modification time) is
refused. After a Ctrl-C the same command continues (training resumes from its latest snapshot).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from upcall.errors import UpcallError
from upcall.workflows.pipeline import (
    PIPELINE_STEPS,
    Layout,
    Steps,
    check_same_data,
    result_line,
    run_pipeline,
)
from upcall.workflows.recipe import (
    DEFAULT_RECIPE,
    Recipe,
    check_buildable,
    check_recipe,
    load_recipe,
)

if TYPE_CHECKING:
    from upcall.engines import EngineOptions

HELP = "train a detector on your own labelled clips (train.csv + train/) in one step"


def check_data(data: Path) -> int:
    """UpcallError (one line) unless DATA holds a readable train.csv whose clips are in train/
    and whose labels include both classes; returns the number of clips."""
    from upcall.data.traincsv import read_train_csv

    hint = "DATA must hold train.csv (clip_name,label rows) and train/ with the clips"
    if not data.is_dir():
        raise UpcallError(f"{data}: no such folder; {hint}")
    if not (data / "train.csv").is_file():
        raise UpcallError(f"{data / 'train.csv'}: not found; {hint}")
    if not (data / "train").is_dir():
        raise UpcallError(f"{data / 'train'}: no such folder; {hint}")
    clips = read_train_csv(data / "train.csv")
    for clip in clips:
        if not (data / "train" / clip.name).is_file():
            raise UpcallError(
                f"{data / 'train.csv'}:{clip.line}: clip {clip.name} not found in {data / 'train'}"
            )
    labels = {clip.label for clip in clips}
    if labels != {0, 1}:
        raise UpcallError(
            f"{data / 'train.csv'}: every clip has label {labels.pop()}; a detector needs "
            "clips of both classes (1: up-call, 0: no up-call)"
        )
    return len(clips)


def fit(
    data: str | Path,
    out: str | Path,
    recipe: Recipe = DEFAULT_RECIPE,
    *,
    engine_name: str = "torch",
    engine_options: EngineOptions | None = None,
) -> Path:
    """Run the recipe on DATA into OUT; returns the trained job folder."""
    from upcall.engines import get_engine

    data, out = Path(data).resolve(), Path(out).resolve()
    n = check_data(data)
    layout = Layout.under(out, data=data)
    check_same_data(layout, clips=False)  # the clips once their spectrograms are up to date
    try:  # the whole recipe, on this many clips, before anything is made or recorded
        check_buildable(recipe, clips=n)
    except UpcallError as e:
        raise UpcallError(f"recipe: {e}") from None
    engine = get_engine(engine_name, engine_options)
    check_recipe(out, recipe, hint="use another --out, or the --recipe and --seed it was made with")
    print(f"[fit] {n} labelled clips in {data}; recipe in {out / Recipe.FILE}", flush=True)
    return run_pipeline(
        layout, recipe, engine, steps=Steps("fit", PIPELINE_STEPS), rerun="upcall fit"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs
    from upcall.engines import add_engine_arguments

    parser.add_argument(
        "data", type=Path, metavar="DATA", help="folder with train.csv and train/ (Kaggle layout)"
    )
    cliargs.add_out(parser, "folder for everything fit makes (resumable)", required=True)
    parser.add_argument(
        "--recipe",
        type=Path,
        metavar="FILE",
        help='a recipe.json whose keys replace the default recipe\'s (e.g. {"epochs": 10}); '
        "default: the built-in recipe, the best measured (README, Quality): WhaleNet with time "
        "pooling on the fine spectrogram, SGD at 0.01 with the poly policy over 15 epochs "
        "(`upcall nets` keeps DIGITS's 30), seed 0",
    )
    cliargs.add_seed(
        parser,
        "seed of the split, shuffle and training; the built-in recipe's is "
        f"{DEFAULT_RECIPE.seed}, and a --recipe FILE's own seed holds unless --seed is given",
    )
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from upcall.cliargs import given
    from upcall.engines import options_from_args
    from upcall.job.records import read_summary

    recipe = load_recipe(args.recipe) if args.recipe else DEFAULT_RECIPE
    if given(args, "seed") or args.recipe is None:
        recipe = recipe.with_solver(seed=args.seed)
    job = fit(
        args.data,
        args.out,
        recipe,
        engine_name=args.engine,
        engine_options=options_from_args(args),
    )
    summary = read_summary(job)
    print(f"\njob:            {job}")
    print(f"curves:         {job / 'curves.png'}")
    print(result_line(summary))
    whale = (summary.final.recall or {}).get("whale") if summary.final else None
    if whale is not None:
        print(f"whale recall:   {whale:.4f} (share of the validation up-calls scored above 0.5)")
    print("\nnext:")
    print(f"  upcall classify {job} CLIP_OR_FOLDER ...")
    print(f"  upcall detect {job} RECORDING ... --out DIR")
    return 0
