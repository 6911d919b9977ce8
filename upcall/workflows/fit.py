"""``upcall fit DATA --out OUT``: train a detector on your own labelled clips in one step.

DATA is the Kaggle layout: train.csv (``clip_name,label`` rows, label 1 = up-call) and train/
with the clips; test/ is not needed. With ``--recordings DIR... --annotations DIR...`` instead of
DATA, ``upcall clips`` (:func:`upcall.audio.cutclips.make_clips`, its defaults) first cuts
OUT/clips from the recordings and their Raven tables, and the recipe runs on that. The recipe (:mod:`upcall.workflows.recipe`, default
:data:`~upcall.workflows.recipe.DEFAULT_RECIPE`) decides every step:

    OUT/recipe.json      the recipe used; a rerun with another recipe is refused
    OUT/clips/           with --recordings: the clips, train.csv and clips.csv (`upcall clips`)
    OUT/spectrograms/    a PNG per clip (DATA is only read)
    OUT/lists/           train/val lists      OUT/dataset/   Caffe LMDBs
    OUT/jobs/<network>-lr<lr>/   the trained job: what `upcall classify` and `upcall detect` use

The recipe is checked whole (types, values, the job it makes) before any step runs, and
recorded only then. Each step is skipped when its output was made from what it reads now;
an OUT made from DATA before its labels or clips changed (by content, not modification time) is
refused. After a Ctrl-C the same command continues (training resumes from its latest snapshot).
With ``--add-verified VERIFIED --recordings DIR`` beside DATA, the clips at a review's verdicts
join DATA's (:mod:`upcall.workflows.verified`; ``--init-weights RUN`` fine-tunes from RUN's
weights); ``--from RUN`` prints RUN's figures beside the new ones on the same validation clips
(:mod:`upcall.workflows.compare`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from upcall.data.pngroot import ReadOptions
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
    from upcall.audio.cutclips import ClipSettings
    from upcall.engines import EngineOptions

HELP = "train a detector on your own labelled clips (train.csv + train/) in one step"


def check_data(data: Path, read: ReadOptions | None = None) -> int:
    """UpcallError (one line) unless DATA holds a readable train.csv whose clips are in train/
    and whose labels include both classes (and, given ``read``, whose first clip reads with
    those options); returns the number of clips."""
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
    if labels and read is not None:  # one clip read now: a wrong rate is one line, not N
        _probe(data / "train" / clips[0].name, read)
    if labels != {0, 1}:
        raise UpcallError(
            f"{data / 'train.csv'}: every clip has label {labels.pop()}; a detector needs "
            "clips of both classes (1: up-call, 0: no up-call)"
        )
    return len(clips)


def _probe(clip: Path, read: ReadOptions) -> None:
    from upcall.audio.clip import read_clip

    try:
        read_clip(clip, resample=read.resample, mixdown=read.mixdown, fit=read.fit)
    except UpcallError as e:
        message = str(e)
        for flag, key in _RECIPE_KEYS.items():
            if f"({flag}" in message:  # "(--resample converts it)": the recipe key too
                message = f"{message[:-1]}, as {key} in a --recipe file does)"
        raise UpcallError(message) from None


_RECIPE_KEYS = {"--resample": '"resample": true', "--mixdown": '"mixdown": true', "--fit": '"fit"'}


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
    n = check_data(data, recipe.read_options)
    layout = Layout.under(out, data=data)
    check_same_data(layout, clips=False)  # the clips once their spectrograms are up to date
    try:  # the whole recipe, on this many clips, before anything is made or recorded
        check_buildable(recipe, clips=n, engine=engine_name)
    except UpcallError as e:
        raise UpcallError(f"recipe: {e}") from None
    engine = get_engine(engine_name, engine_options)
    check_recipe(out, recipe, hint="use another --out, or the --recipe and --seed it was made with")
    print(f"[fit] {n} labelled clips in {data}; recipe in {out / Recipe.FILE}", flush=True)
    return run_pipeline(
        layout, recipe, engine, steps=Steps("fit", PIPELINE_STEPS), rerun="upcall fit"
    )


def fit_recordings(
    recordings: list[Path],
    annotations: list[Path],
    out: str | Path,
    recipe: Recipe = DEFAULT_RECIPE,
    *,
    clips: ClipSettings | None = None,
    engine_name: str = "torch",
    engine_options: EngineOptions | None = None,
) -> Path:
    """``upcall clips`` into OUT/clips (resumable, refused with other clip settings), then
    :func:`fit` on it; bad recordings are reported, the rest trained on, then BatchFailed."""
    import os
    from dataclasses import fields, replace

    from upcall.audio.cutclips import ClipSettings, make_clips

    out = Path(out).resolve()
    settings = clips or ClipSettings(seed=recipe.seed)
    if settings.start_times is not None:  # as make_clips records it
        settings = replace(settings, start_times=Path(os.path.abspath(settings.start_times)))
    try:  # before any clip is cut: the recipe whole, and the one OUT holds
        check_buildable(recipe, engine=engine_name)
    except UpcallError as e:
        raise UpcallError(f"recipe: {e}") from None
    before = ClipSettings.read(out / "clips") if (out / "clips").is_dir() else None
    if before is not None and before != settings:  # (`upcall clips` would say --force)
        changed = [
            f"{f.name} {getattr(before, f.name)} → {getattr(settings, f.name)}"
            for f in fields(settings)
            if getattr(before, f.name) != getattr(settings, f.name)
        ]
        raise UpcallError(
            f"{out / 'clips' / ClipSettings.FILE}: the clips were cut with other settings "
            f"({', '.join(changed)}); use another --out, or the options it was made with"
        )
    check_recipe(out, recipe, hint="use another --out, or the --recipe and --seed it was made with")
    print(f"[fit] clips from the recordings into {out / 'clips'} (`upcall clips`)", flush=True)
    report = make_clips(recordings, annotations, out / "clips", settings)
    job = fit(out / "clips", out, recipe, engine_name=engine_name, engine_options=engine_options)
    report.finish()
    return job


def fit_verified(
    data: Path,
    verified: Path,
    recordings: list[Path],
    out: Path,
    recipe: Recipe,
    *,
    clips: ClipSettings | None = None,
    init_from: Path | None = None,
    engine_name: str = "torch",
    engine_options: EngineOptions | None = None,
) -> Path:
    """``fit DATA --add-verified VERIFIED --recordings DIR`` (:mod:`upcall.workflows.verified`):
    the review's clips cut into OUT/verified-clips, merged with DATA's into OUT/data, the recipe
    run on that from scratch or, with ``init_from`` (a run), from its latest snapshot; returns
    the trained job folder. Bad recordings are reported, the rest trained on, then BatchFailed."""
    from upcall.audio.cutclips import ClipSettings, make_clips
    from upcall.engines import get_engine
    from upcall.fsutil import sha256_file
    from upcall.workflows.verified import (
        MERGED,
        VERIFIED_CLIPS,
        VerifiedRecord,
        check_record,
        latest_weights,
        merge,
        merged_split,
    )

    data, verified, out = Path(data).resolve(), Path(verified).resolve(), Path(out).resolve()
    check_data(data, recipe.read_options)
    if not verified.exists():
        raise UpcallError(f"{verified}: no such file or folder (--add-verified)")
    weights = latest_weights(init_from) if init_from is not None else None
    record = VerifiedRecord(
        str(data), str(verified), tuple(str(Path(p).resolve()) for p in recordings),
        None if weights is None else str(weights),
        None if weights is None else sha256_file(weights),
    )  # fmt: skip
    try:
        check_buildable(recipe, engine=engine_name)
    except UpcallError as e:
        raise UpcallError(f"recipe: {e}") from None
    check_record(out, record)
    check_recipe(out, recipe, hint="use another --out, or the --recipe and --seed it was made with")
    record.write(out)
    print(f"[fit] clips at the verified detections into {out / VERIFIED_CLIPS}", flush=True)
    settings = clips or ClipSettings(seed=recipe.seed)
    report = make_clips(recordings, [verified], out / VERIFIED_CLIPS, settings)
    merged = out / MERGED
    n_data = merge(data, out / VERIFIED_CLIPS, merged)
    split = merged_split(data, merged, n_data, recipe)
    layout = Layout.under(out, data=merged)
    check_same_data(layout, clips=False)
    start = "from scratch" if weights is None else f"from {weights}"
    print(f"[fit] {n_data} clips of {data} and the verified ones, training {start}", flush=True)
    engine = get_engine(engine_name, engine_options)
    job = run_pipeline(
        layout, recipe, engine, steps=Steps("fit", PIPELINE_STEPS), rerun="upcall fit",
        split=split, init_weights=None if weights is None else str(weights),
    )  # fmt: skip
    report.finish()
    return job


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs
    from upcall.audio.cutclips import add_clip_arguments
    from upcall.data.groups import add_group_arguments
    from upcall.data.pngroot import add_read_arguments
    from upcall.engines import add_engine_arguments

    parser.add_argument(
        "data",
        type=Path,
        nargs="?",
        metavar="DATA",
        help="folder with train.csv and train/ (Kaggle layout, or made by `upcall clips`); "
        "or give --recordings and --annotations instead",
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
    reading = parser.add_argument_group("clips (override the recipe's keys of the same name)")
    add_read_arguments(reading)
    add_group_arguments(reading, default=None)
    recordings = parser.add_argument_group(
        "recordings (instead of DATA: `upcall clips` into OUT/clips first, with its defaults)"
    )
    recordings.add_argument(
        "--recordings",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="recordings (files or folders, searched recursively) to cut clips from",
    )
    recordings.add_argument(
        "--annotations",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="their Raven selection tables (files or folders, searched recursively)",
    )
    add_clip_arguments(recordings, seed=False)
    review = parser.add_argument_group(
        "learning from a review (`upcall review`; with DATA and --recordings)"
    )
    review.add_argument(
        "--add-verified",
        type=Path,
        metavar="VERIFIED",
        help="the reviewed tables (a folder, searched recursively): clips at their yes rows "
        "(up-calls) and no rows (hard negatives) join DATA's, cut from the recordings under "
        "--recordings; unsure rows are left out",
    )
    review.add_argument(
        "--from",
        dest="from_run",
        type=Path,
        metavar="RUN",
        help="an earlier run (a fit OUT or job folder): its figures are printed beside the "
        "new ones, both scored on the new validation clips",
    )
    review.add_argument(
        "--init-weights",
        type=Path,
        metavar="RUN",
        help="fine-tune from RUN's latest snapshot (as `caffe train --weights`) instead of "
        "training from scratch",
    )
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from upcall.audio.cutclips import clip_settings
    from upcall.cliargs import given
    from upcall.data.pngroot import read_options
    from upcall.engines import options_from_args
    from upcall.job.records import read_summary

    verified = args.add_verified is not None
    if (args.from_run or args.init_weights) and not verified:
        raise UpcallError("--from and --init-weights go with --add-verified")
    if verified and (args.data is None or args.recordings is None or args.annotations):
        raise UpcallError(
            "--add-verified needs DATA and --recordings (where the reviewed recordings are), "
            "and no --annotations"
        )
    if not verified and (args.data is None) == (args.recordings is None):
        raise UpcallError(
            "give DATA (a folder with train.csv and train/) or --recordings and --annotations, "
            "not both"
            if args.data
            else "give DATA, or --recordings and --annotations"
        )
    if args.recordings is not None and not args.annotations and not verified:
        raise UpcallError("--recordings needs --annotations (the Raven selection tables)")
    recipe = load_recipe(args.recipe) if args.recipe else DEFAULT_RECIPE
    if given(args, "seed") or args.recipe is None:
        recipe = recipe.with_solver(seed=args.seed)
    groups = {k: getattr(args, k) for k in ("group_by", "group_seconds")}
    recipe = replace(
        recipe,
        read_options=read_options(args, recipe.read_options),
        **{k: v for k, v in groups.items() if v is not None},
    )
    engine = {"engine_name": args.engine, "engine_options": options_from_args(args)}
    if verified:
        job = fit_verified(
            args.data, args.add_verified, args.recordings, args.out, recipe,
            clips=clip_settings(args, seed=recipe.seed), init_from=args.init_weights, **engine,
        )  # fmt: skip
    elif args.recordings is not None:
        clips = clip_settings(args, seed=recipe.seed)
        job = fit_recordings(
            args.recordings, args.annotations, args.out, recipe, clips=clips, **engine
        )
    else:
        job = fit(args.data, args.out, recipe, **engine)
    summary = read_summary(job)
    print(f"\njob:            {job}")
    print(f"curves:         {job / 'curves.png'}")
    print(result_line(summary))
    whale = (summary.final.recall or {}).get("whale") if summary.final else None
    if whale is not None:
        print(f"whale recall:   {whale:.4f} (share of the validation up-calls scored above 0.5)")
    if args.from_run is not None:
        from upcall.workflows.compare import compare
        from upcall.workflows.verified import part_names

        compare(args.from_run, args.out.resolve(), job, parts=part_names(args.out.resolve()))
    print("\nnext:")
    print(f"  upcall classify {job} CLIP_OR_FOLDER ...")
    print(f"  upcall detect {job} RECORDING ... --out DIR")
    return 0
