"""``upcall search DATA --out DIR --trials N``: an Optuna hyperparameter search over whole jobs.

Optuna's TPE sampler chooses each trial's network, learning rate, batch size, solver type,
learning-rate policy and epochs (:mod:`upcall.workflows.search_space`), maximising the job's final
validation AUC; the median pruner stops a trial whose per-epoch validation AUC falls below that
of earlier trials (:mod:`upcall.workflows.search_study`). Layout of DIR:

    DIR/search.json                 SearchSettings: what is searched (a rerun must match)
    DIR/study.journal               the study (Optuna's journal file), unless --storage URL
    DIR/spectrograms/, DIR/lists/   from a Kaggle-layout DATA (only read), as `upcall fit` makes
    DIR/dataset/                    them with its default recipe's data settings (else DATA itself)
    DIR/trials/<number>/            one ordinary job folder per trial (report, classify, detect)
    DIR/figures/optimization_history.png, param_importances.png

Ctrl-C stops each worker at the end of a training iteration with a snapshot; the trial it was
running is marked failed and a rerun of the same command continues the study until N trials are
finished (complete or pruned). The sampler is seeded before each trial from ``--seed`` and the
trials finished so far (:func:`upcall.workflows.search_study.sampler_for`), so the rerun proposes
what an unbroken run would have, the interrupted trial's settings first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path

from upcall.errors import Interrupted, UpcallError
from upcall.parallel import cap_workers, start_process, starting_workers
from upcall.workflows.search_study import SearchSettings, Worker

HELP = "search network and solver settings with Optuna, one job folder per trial"

DEFAULT_SOLVER_TYPES = "SGD,Nesterov,Adam"
DEFAULT_LR_POLICIES = "fixed,step,exp"


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs
    from upcall.data.groups import add_group_arguments
    from upcall.data.pngroot import add_read_arguments
    from upcall.engines import add_engine_arguments
    from upcall.network.zoo import NETWORKS

    parser.add_argument(
        "data",
        type=Path,
        metavar="DATA",
        help="a dataset folder made by `upcall lmdb`, or a Kaggle-layout folder (train.csv, "
        "train/), made into DIR/dataset first as `upcall fit` makes its dataset (DATA is only "
        "read)",
    )
    cliargs.add_out(parser, "search folder", required=True)
    parser.add_argument(
        "--trials",
        type=int,
        required=True,
        metavar="N",
        help="trials to finish (complete or pruned), counting those of earlier runs",
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="an Optuna RDB URL shared by workers on several machines, e.g. "
        "postgresql://user:password@host/db (default: DIR/study.journal, for this machine)",
    )
    parser.add_argument(
        "--study", default="upcall-search", help="study name in the storage (default upcall-search)"
    )
    cliargs.add_workers(
        parser,
        "is a process training one trial after another, with cores / N CPU threads unless "
        "--threads says otherwise",
        default=1,
        why="one trial's training already uses every core",
    )
    cliargs.add_seed(parser, "seed of the sampler and of each trial's job")
    clips = parser.add_argument_group("clips (a Kaggle-layout DATA, as `upcall fit` takes them)")
    add_read_arguments(clips)
    add_group_arguments(clips)
    space = parser.add_argument_group("search space")
    cliargs.add_networks(
        space, NETWORKS, default=None, paths=False, none="every network that fits the dataset"
    )
    space.add_argument(
        "--lr-range",
        default="0.0001,0.05",
        metavar="LOW,HIGH",
        help="base learning rate, sampled on a log scale (default 0.0001,0.05)",
    )
    space.add_argument(
        "--batch-sizes", default="32,64,128", help="comma-separated (default 32,64,128)"
    )
    space.add_argument(
        "--solver-types",
        default=DEFAULT_SOLVER_TYPES,
        help=f"comma-separated Caffe solver types (default {DEFAULT_SOLVER_TYPES})",
    )
    space.add_argument(
        "--lr-policies",
        default=DEFAULT_LR_POLICIES,
        help=f"comma-separated learning-rate policies (default {DEFAULT_LR_POLICIES})",
    )
    space.add_argument(
        "--epochs",
        default="1,10",
        metavar="LOW,HIGH",
        help="training epochs, searched in LOW..HIGH (default 1,10)",
    )
    space.add_argument(
        "--class-weights",
        default="none",
        metavar="CHOICES",
        help="semicolon-separated `upcall nets --class-weights` values, e.g. 'none;balanced;1,3' "
        "(default none)",
    )
    space.add_argument(
        "--augment",
        default="none",
        metavar="CHOICES",
        help="semicolon-separated `upcall nets --augment` specs, e.g. 'none;shift=4,tmask=6' "
        "(default none); each trial's augmentation is seeded by its job seed",
    )
    space.add_argument(
        "--net-params",
        default="none",
        metavar="CHOICES",
        help="semicolon-separated network builder keywords, each choice comma-joined "
        "`upcall nets --net-param` values, e.g. 'time_pool=true;time_pool=true,background=31' "
        "(default none); every choice must build every searched network",
    )
    space.add_argument(
        "--no-pruning",
        action="store_true",
        help="train every trial to the end (default: the median pruner stops trials whose "
        "validation AUC is below the median of earlier trials at the same epoch, from epoch 2, "
        "once 3 trials have finished)",
    )
    add_engine_arguments(parser)


def _split(text: str, kind: type, flag: str) -> tuple:
    try:
        return tuple(kind(x.strip()) for x in text.split(",") if x.strip())
    except ValueError:
        raise UpcallError(f"{flag}: expected comma-separated values, got {text!r}") from None


def _choices(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(";") if x.strip())


def dataset_folder(data: Path, out: Path) -> Path:
    """The dataset every trial trains on: DATA itself when it is a dataset, DIR/dataset for a
    Kaggle-layout DATA (made by :func:`make_search_dataset`); nothing is read or written."""
    from upcall.data.dataset import DatasetManifest

    if (data / DatasetManifest.FILE).is_file():
        return data
    if not (data / "train.csv").is_file():
        raise UpcallError(
            f"{data}: neither a dataset (dataset.json, from `upcall lmdb`) nor a Kaggle-layout "
            "folder (train.csv)"
        )
    return out / "dataset"


def make_search_dataset(data: Path, out: Path, settings: SearchSettings) -> None:
    """Make DIR/dataset from a Kaggle-layout DATA as `upcall fit` would with its default recipe,
    the settings' seed, clip reading and group split: PNGs in DIR/spectrograms, lists in
    DIR/lists; DATA is only read."""
    from upcall.workflows.fit import check_data
    from upcall.workflows.pipeline import DATA_STEPS, Layout, Steps, check_same_data, make_dataset
    from upcall.workflows.recipe import DEFAULT_RECIPE

    recipe = dataclasses.replace(
        DEFAULT_RECIPE.with_solver(seed=settings.seed),
        read_options=settings.read,
        group_by=settings.group_by,
        group_seconds=settings.group_seconds,
    )
    check_data(data, recipe.read_options)
    layout = Layout.under(out, data=data)
    check_same_data(layout, clips=False)
    # fit's data settings (mode, split, size), so a search and a fit of DATA train on one dataset
    make_dataset(layout, recipe, steps=Steps("search", DATA_STEPS))


def _settings(args: argparse.Namespace, out: Path) -> SearchSettings:
    """The settings from the command line, checked; ``networks`` are the named ones (default
    all) until :func:`_fitting` keeps those that fit the dataset, which may not exist yet."""
    from upcall.data.pngroot import ReadOptions, read_options
    from upcall.network.zoo import NETWORKS
    from upcall.workflows.search_study import safe_url

    if args.trials < 1:
        raise UpcallError(f"--trials must be at least 1, not {args.trials}")
    if args.workers < 1:
        raise UpcallError(f"--workers must be at least 1, not {args.workers}")
    data = args.data.resolve()
    names = _split(args.networks, str, "--networks") if args.networks else tuple(NETWORKS)
    lr_range = _split(args.lr_range, float, "--lr-range")
    if len(lr_range) != 2:
        raise UpcallError(f"--lr-range: expected LOW,HIGH, got {args.lr_range!r}")
    epochs = _split(args.epochs, int, "--epochs")
    if len(epochs) != 2:
        raise UpcallError(f"--epochs: expected LOW,HIGH, got {args.epochs!r}")
    settings = SearchSettings(
        data=str(data),
        dataset=str(dataset_folder(data, out)),
        study=args.study,
        storage=safe_url(args.storage),
        trials=args.trials,
        seed=args.seed,
        networks=names,
        lr_range=lr_range,
        batch_sizes=_split(args.batch_sizes, int, "--batch-sizes"),
        solver_types=_split(args.solver_types, str, "--solver-types"),
        lr_policies=_split(args.lr_policies, str, "--lr-policies"),
        epochs=epochs,
        class_weights=_choices(args.class_weights),
        augment=_choices(args.augment),
        net_params=_choices(args.net_params),
        pruning=not args.no_pruning,
        engine=args.engine,
        read=read_options(args) or ReadOptions(),
        group_by=args.group_by or "auto",
        group_seconds=args.group_seconds,
    )
    settings.space()  # check the ranges and choices before anything is written
    return settings


def _fitting(settings: SearchSettings, named: bool) -> SearchSettings:
    """``settings`` with the networks that fit its (now made) dataset; a named one that does
    not is an error."""
    from upcall.job.datasetinfo import load_dataset
    from upcall.workflows.search_space import fitting_networks

    names = settings.networks if named else None
    networks = fitting_networks(load_dataset(settings.dataset), names)
    return dataclasses.replace(settings, networks=tuple(networks))


def run(args: argparse.Namespace) -> int:
    from upcall.engines import options_from_args
    from upcall.workflows.search_study import finished, load_study, write_figures

    out = args.out.resolve()
    settings = _settings(args, out)
    before = SearchSettings.read(out)
    where = out / SearchSettings.FILE
    if before is not None:  # before any work: another DATA or seed must not touch DIR
        dataclasses.replace(settings, networks=before.networks).check_same(before, where)
    out.mkdir(parents=True, exist_ok=True)
    if Path(settings.dataset) != Path(settings.data):
        make_search_dataset(Path(settings.data), out, settings)
    settings = _fitting(settings, named=bool(args.networks))
    if before is not None:
        settings.check_same(before, where)
    settings.write(out)
    options = options_from_args(args)
    count = cap_workers(args.workers, settings.trials)  # no more than the trials, nor the cores
    if count > 1 and options.threads is None:  # K workers share the cores
        options = dataclasses.replace(options, threads=max(1, _cores() // count))
    workers = [Worker(i, settings, args.storage, out, options) for i in range(count)]
    study = load_study(workers[0], create=True)  # here, so K workers do not race to create it
    if not study.trials and any((out / "trials").glob("[0-9]*")):
        raise UpcallError(
            f"{out / 'trials'}: holds trials of another study; use another --out or remove it"
        )
    print(f"study {settings.study}: {finished(study)} of {settings.trials} trials done", flush=True)
    try:
        if len(workers) == 1:
            _work_here(workers[0])
        else:
            _work_in_processes(workers)
    finally:
        write_figures(study, out, seed=settings.seed)
    _print_best(study, out)
    return 0


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _work_here(worker: Worker) -> None:
    from upcall.workflows.search_study import work

    try:
        work(worker)
    except KeyboardInterrupt as e:  # between trials: nothing to snapshot
        raise Interrupted(
            f"{worker.out}: stopped between trials; rerun the same upcall search command to go on"
        ) from e


def _worker_main(worker: Worker) -> None:
    """A worker process (:func:`upcall.parallel.start_process`): it dies with its parent; its own
    session, so a terminal's Ctrl-C (or ``timeout``'s SIGTERM to the group) reaches it once,
    through the parent, as SIGINT (a second SIGINT would abort training without a snapshot)."""
    try:
        _work_here(worker)
    except Interrupted as e:
        print(f"upcall search: worker {worker.index}: {e}", file=sys.stderr, flush=True)
        sys.exit(130)
    except UpcallError as e:
        print(f"upcall search: worker {worker.index}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


def _work_in_processes(workers: list[Worker]) -> None:
    """Run each worker in a worker process; Ctrl-C here is passed on to each, once."""
    with starting_workers():  # a Ctrl-C meanwhile comes once all are started, so reaches each
        processes = [start_process(_worker_main, w) for w in workers]
    interrupted = False
    try:
        for p in processes:
            p.join()
    except KeyboardInterrupt:
        interrupted = True
        print("\nstopping each worker after its iteration", file=sys.stderr, flush=True)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: wait anyway
        for p in processes:
            if p.is_alive():
                os.kill(p.pid, signal.SIGINT)
        for p in processes:
            p.join()
        signal.signal(signal.SIGINT, previous)
    codes = [p.exitcode for p in processes]
    if interrupted or 130 in codes:
        raise Interrupted(
            f"{workers[0].out}: search stopped; rerun the same upcall search command to go on"
        )
    failed = [w.index for w, code in zip(workers, codes, strict=True) if code != 0]
    if failed:
        raise UpcallError(
            f"{workers[0].out}: worker(s) {', '.join(map(str, failed))} failed (see above)"
        )


def _print_best(study, out: Path) -> None:
    from upcall.workflows.search_study import finished

    try:
        best = study.best_trial
    except ValueError:  # no complete trial
        print(f"study {study.study_name}: no complete trial yet", flush=True)
        return
    print(f"study {study.study_name}: {finished(study)} trials finished", flush=True)
    print(f"best trial {best.number}: validation AUC {best.value:.4f}", flush=True)
    print(f"job:     {best.user_attrs.get('job')}", flush=True)
    print(f"figures: {out / 'figures'}", flush=True)
