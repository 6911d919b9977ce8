"""``upcall fit DATA --out OUT``: train a detector on your own labelled clips in one step.

DATA is the Kaggle layout: train.csv (``clip_name,label`` rows, label 1 = up-call) and train/
with the clips; test/ is not needed. The recipe (:mod:`upcall.workflows.recipe`, default
:data:`~upcall.workflows.recipe.DEFAULT_RECIPE`) decides every step:

    OUT/recipe.json      the recipe used; a rerun with another recipe is refused
    OUT/spectrograms/    a PNG per clip (DATA is only read)
    OUT/lists/           train/val lists      OUT/dataset/   Caffe LMDBs
    OUT/jobs/<network>-lr<lr>/   the trained job: what `upcall classify` and `upcall detect` use

Each step is skipped when its output is complete; after a Ctrl-C the same command continues
(training resumes from its latest snapshot).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from upcall.errors import UpcallError
from upcall.workflows.pipeline import PIPELINE_STEPS, Layout, Steps, result_line, run_pipeline
from upcall.workflows.recipe import DEFAULT_RECIPE, Recipe, check_recipe, load_recipe

if TYPE_CHECKING:
    from upcall.engines import EngineOptions

HELP = "train a detector on your own labelled clips (train.csv + train/) in one step"


def check_data(data: Path) -> int:
    """UpcallError (one line) unless DATA holds a readable train.csv whose clips are in train/
    and whose labels include both classes; returns the number of clips."""
    from upcall.data.lists import read_train_csv

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


def check_same_data(layout: Layout, out: Path) -> None:
    """Refuse an OUT whose lists were made from other data, or before train.csv changed: its
    finished steps would be kept and the old data's model reported."""
    from upcall.data.lists import ListsManifest

    lists = ListsManifest.read(layout.lists)
    if lists is None:
        return
    hint = "use another --out or remove it"
    if Path(lists.data_dir) != layout.data:
        raise UpcallError(
            f"{out}: made from the clips in {lists.data_dir}, not {layout.data}; {hint}"
        )
    csv_path = layout.data / "train.csv"
    if csv_path.stat().st_mtime > (layout.lists / ListsManifest.FILE).stat().st_mtime:
        raise UpcallError(
            f"{csv_path}: changed after the lists in {layout.lists} were made; {hint}"
        )


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
    check_same_data(layout, out)
    check_recipe(out, recipe, hint="use another --out, or the --recipe and --seed it was made with")
    engine = get_engine(engine_name, engine_options)
    print(f"[fit] {n} labelled clips in {data}; recipe in {out / Recipe.FILE}", flush=True)
    return run_pipeline(
        layout, recipe, engine, steps=Steps("fit", PIPELINE_STEPS), rerun="upcall fit"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall.engines import add_engine_arguments

    parser.add_argument(
        "data", type=Path, metavar="DATA", help="folder with train.csv and train/ (Kaggle layout)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for everything fit makes (resumable)"
    )
    parser.add_argument(
        "--recipe",
        type=Path,
        metavar="FILE",
        help='a recipe.json whose keys replace the default recipe\'s (e.g. {"epochs": 10}); '
        "default: the built-in recipe",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the split, shuffle and training; replaces the recipe's seed (default: "
        f"the recipe's, {DEFAULT_RECIPE.seed} in the built-in one)",
    )
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from upcall.engines import options_from_args
    from upcall.results.records import read_summary

    recipe = load_recipe(args.recipe) if args.recipe else DEFAULT_RECIPE
    if args.seed is not None:
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
