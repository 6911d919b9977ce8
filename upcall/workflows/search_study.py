"""The Optuna study behind ``upcall search``: its settings file, storage, one worker's trials.

A worker asks the study for a trial, writes its job folder DIR/trials/<number>/ (an ordinary
``upcall nets`` job), trains it with the chosen engine and tells the study the final validation
AUC. Each validation record is reported to the trial as it is written (by the run loop's
:func:`upcall.engines.loop.watching`), so the pruner can stop a hopeless trial at once; a pruned
job folder is left as it stopped. Workers share the study through its storage; while a trial
runs its worker holds DIR/trials/.<number>.lock, so a trial left RUNNING by a killed worker on
this machine is recognised and marked failed.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from upcall.data.pngroot import ReadOptions
from upcall.errors import Interrupted, UpcallError
from upcall.jsonfile import JsonFile
from upcall.lock import folder_lock, is_locked
from upcall.workflows.search_space import Param, search_space

if TYPE_CHECKING:
    import optuna

    from upcall.engines import EngineOptions
    from upcall.job.records import TestRecord

JOURNAL = "study.journal"  # the default storage, in the search folder
TRIALS = "trials"  # DIR/trials/<number>/: one job folder per trial
FIGURES = "figures"
FAILURES_IN_A_ROW = 3  # a worker whose trials keep failing stops: something is wrong for all
PRUNE_STARTUP_TRIALS = 3  # trials finished before any is pruned
PRUNE_WARMUP_EPOCHS = 2  # a trial is never pruned at its first epoch
STORAGE_ATTEMPTS = 3
# a trial's user attribute: the trials finished when it was proposed, which seeds the sampler
# and the trial's job, so a resumed study repeats what an unbroken one would have done
PROPOSAL = "proposal"


@dataclass(frozen=True)
class SearchSettings(JsonFile):
    """DIR/search.json: what the study searches and how; a rerun must match (``trials`` aside)."""

    FILE: ClassVar[str] = "search.json"

    data: str  # DATA as given (a dataset folder, or a Kaggle-layout folder made into one)
    dataset: str  # the dataset folder every trial trains on
    study: str  # the Optuna study name
    storage: str | None  # an RDB URL without its password; None: DIR/study.journal
    trials: int  # finished trials (complete or pruned) the study runs to
    seed: int  # seeds the sampler (with the worker and trials done) and each trial's Caffe seed
    networks: tuple[str, ...]
    lr_range: tuple[float, float]
    batch_sizes: tuple[int, ...]
    solver_types: tuple[str, ...]
    lr_policies: tuple[str, ...]
    epochs: tuple[int, int]  # searched in LOW..HIGH
    pruning: bool
    engine: str
    class_weights: tuple[str, ...] = ("none",)  # `upcall nets --class-weights` texts
    augment: tuple[str, ...] = ("none",)  # `upcall nets --augment` specs
    net_params: tuple[str, ...] = ("none",)  # `upcall nets --net-param`s, comma-joined
    # A Kaggle-layout DATA's clip reading and group split (as `upcall fit`'s recipe keys)
    read: ReadOptions = dataclasses.field(default_factory=ReadOptions)
    group_by: str = "auto"
    group_seconds: float | None = None

    def space(self) -> tuple[Param, ...]:
        return search_space(
            networks=self.networks,
            lr_range=self.lr_range,
            batch_sizes=self.batch_sizes,
            solver_types=self.solver_types,
            lr_policies=self.lr_policies,
            epochs=self.epochs,
            class_weights=self.class_weights,
            augment=self.augment,
            net_params=self.net_params,
        )

    def check_same(self, before: SearchSettings, where: Path) -> None:
        """UpcallError naming what differs from the settings the study was started with."""
        changed = [
            f"{f.name} {getattr(before, f.name)} → {getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if f.name != "trials" and getattr(before, f.name) != getattr(self, f.name)
        ]
        if changed:
            raise UpcallError(
                f"{where}: the study was started with other settings ({'; '.join(changed)}); "
                "use another --out or remove it"
            )


@dataclass(frozen=True)
class Worker:
    """What one worker process needs (picklable: upcall.parallel.start_process hands it over)."""

    index: int  # 0..K-1; offsets the sampler's seed
    settings: SearchSettings
    storage_url: str | None  # the full RDB URL (with its password); None: the journal
    out: Path
    engine_options: EngineOptions


def open_storage(url: str | None, out: Path) -> optuna.storages.BaseStorage:
    """DIR/study.journal (safe for several processes on this machine), or an RDB at ``url``."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url is None:
        return optuna.storages.JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # heartbeats let a worker on any machine mark a trial whose worker died as failed
                return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
        except Exception as e:  # sqlalchemy's and the drivers' errors have no common base
            # workers starting together on an empty database race to create Optuna's tables:
            # the losers fail once, then find the tables made
            if attempt + 1 < STORAGE_ATTEMPTS:
                time.sleep(1.0 + attempt)
                continue
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UpcallError(f"--storage {safe_url(url)}: cannot open the study: {reason}") from e
    raise AssertionError("unreachable")


def safe_url(url: str | None) -> str | None:
    """``url`` with its password hidden (for search.json and messages)."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy reads: opening it will say so
        return url


def sampler_for(settings: SearchSettings, worker: int, done: int) -> optuna.samplers.BaseSampler:
    """The TPE sampler that proposes a worker's next trial, seeded from (``--seed``, worker,
    trials finished so far).

    A sampler seeded once per process would restart its random stream on every rerun: a study
    resumed after two trials proposed trial 0's settings again as trial 2. Seeded per proposal
    from what the study holds, a resumed study proposes what an unbroken one would have (a trial
    marked failed by Ctrl-C is proposed again, since failed trials are not counted).
    """
    import numpy as np
    import optuna

    seed = int(np.random.SeedSequence([settings.seed, worker, done]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed)


def load_study(worker: Worker, *, create: bool = False) -> optuna.Study:
    """The study, with this worker's seeded TPE sampler (reseeded before each trial by
    :func:`work`) and the median pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial gets our own line
    s = worker.settings
    pruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=PRUNE_WARMUP_EPOCHS
        )
        if s.pruning
        else optuna.pruners.NopPruner()
    )
    kwargs: dict[str, Any] = dict(
        storage=open_storage(worker.storage_url, worker.out),
        sampler=sampler_for(s, worker.index, 0),
        pruner=pruner,
        study_name=s.study,
    )
    if create:
        return optuna.create_study(direction="maximize", load_if_exists=True, **kwargs)
    return optuna.load_study(**kwargs)


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count toward ``--trials``: finished (complete, pruned) or running."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return study.get_trials(deepcopy=False, states=states)


def finished(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def trial_folder(out: Path, number: int) -> Path:
    return out / TRIALS / str(number)


def _trial_lock(out: Path, number: int) -> Path:
    return out / TRIALS / f".{number}.lock"


def fail_abandoned(study: optuna.Study, out: Path) -> None:
    """Mark failed the RUNNING trials of this search folder whose worker is gone (its lock free).

    A trial's ``job`` attribute is set only once its worker holds the lock, and the worker tells
    the study before letting go, so a free lock means the worker died (killed, power lost).
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        job = t.user_attrs.get("job")
        if job != str(trial_folder(out, t.number)) or is_locked(_trial_lock(out, t.number)):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass  # its worker finished it just now


def work(worker: Worker) -> None:
    """Run trials until the study has ``trials`` of them counted; Ctrl-C raises Interrupted."""
    from upcall.engines import get_engine

    engine = get_engine(worker.settings.engine, worker.engine_options)
    study = load_study(worker)
    failures = 0
    while True:
        fail_abandoned(study, worker.out)
        if len(counted(study)) >= worker.settings.trials:
            return
        done = finished(study)
        study.sampler = sampler_for(worker.settings, worker.index, done)
        trial = study.ask()
        trial.set_user_attr(PROPOSAL, done)
        # another worker may have asked in between: only the first N counted trials run
        ahead = [t for t in counted(study) if t.number < trial.number]
        if len(ahead) >= worker.settings.trials:
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=_state("FAIL"))
            return
        with folder_lock(_trial_lock(worker.out, trial.number)):
            failures = 0 if _run_and_tell(study, trial, worker, engine) else failures + 1
        write_figures(study, worker.out, seed=worker.settings.seed)
        if failures >= FAILURES_IN_A_ROW:
            raise UpcallError(
                f"{worker.out}: {failures} trials in a row failed (listed above); stopping"
            )


def _state(name: str) -> optuna.trial.TrialState:
    from optuna.trial import TrialState

    return TrialState[name]


def _run_and_tell(study, trial, worker: Worker, engine) -> bool:
    """Run ``trial`` and tell the study how it ended; False when it failed."""
    import optuna

    folder = trial_folder(worker.out, trial.number)
    try:
        auc = run_trial(trial, worker, engine)
    except optuna.TrialPruned as e:
        study.tell(trial, state=_state("PRUNED"))
        print(f"trial {trial.number}: pruned ({e}) [{folder}]", flush=True)
        return True
    except (Interrupted, KeyboardInterrupt) as e:
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=_state("FAIL"))
        what = getattr(e, "what", None) or f"{folder}: stopped"
        raise Interrupted(
            f"{what}; trial {trial.number} is marked failed (`upcall train {folder} --resume` "
            "still continues its job); rerun the same upcall search command to go on with the "
            f"study ({finished(study)} of {worker.settings.trials} trials done)"
        ) from e
    except UpcallError as e:
        trial.set_user_attr("error", str(e))
        study.tell(trial, state=_state("FAIL"))
        print(f"trial {trial.number}: failed: {e}", file=sys.stderr, flush=True)
        return False
    study.tell(trial, auc)
    print(f"trial {trial.number}: validation AUC {auc:.4f} [{folder}]", flush=True)
    return True


def run_trial(trial: optuna.Trial, worker: Worker, engine) -> float:
    """Write and train the trial's job folder; its final validation AUC.

    Raises ``optuna.TrialPruned`` when the pruner stops it at a validation pass.
    """
    from upcall.engines.loop import watching
    from upcall.job.datasetinfo import load_dataset
    from upcall.job.nets import write_job
    from upcall.workflows.search_space import trial_job

    s = worker.settings
    space = s.space()
    values = {p.name: p.suggest(trial) for p in space}
    dataset = load_dataset(s.dataset)
    name = str(trial.number)
    job = trial_job(
        space,
        values,
        dataset,
        name=name,
        seed=s.seed + trial.user_attrs.get(PROPOSAL, trial.number),
        gpu=worker.engine_options.gpu is not None,
    )
    folder = write_job(job, worker.out / TRIALS)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr("job", str(folder))
    with watching(pruning_reporter(trial)):
        summary = engine.train(folder)
    auc = summary.final.val_auc if summary.final is not None else None
    if auc is None:
        raise UpcallError(
            f"{folder}: no validation AUC (does the validation set hold both classes?)"
        )
    return auc


def pruning_reporter(trial: optuna.Trial):
    """A run-loop watcher: report each epoch's validation AUC; raise TrialPruned when told to."""
    import optuna

    def on_record(record: TestRecord) -> None:
        if record.iter == 0 or record.val_auc is None:
            return  # iteration 0 tests untrained weights
        step = max(1, round(record.epoch))  # epochs compare across batch sizes; iterations don't
        trial.report(record.val_auc, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation AUC {record.val_auc:.4f} at epoch {step}")

    return on_record


def searched_params(study: optuna.Study) -> list[str]:
    """The parameters the study varies: a choice of one (one network, one batch size) is fixed,
    not searched, so it is left out of the importances, where it would rank last at 0."""
    seen = {}
    for t in study.get_trials(deepcopy=False, states=(_state("COMPLETE"),)):
        for name, dist in t.distributions.items():
            seen.setdefault(name, dist)
    return [name for name, dist in seen.items() if not dist.single()]


def write_figures(study: optuna.Study, out: Path, *, seed: int) -> list[Path]:
    """DIR/figures/optimization_history.png and param_importances.png (once two trials are
    complete); written atomically, so a report may read them while workers run."""
    import optuna
    from optuna.visualization import matplotlib as views

    from upcall.plotting import pyplot, save_png

    pyplot()  # Agg before optuna's views import pyplot
    complete = study.get_trials(deepcopy=False, states=(_state("COMPLETE"),))
    if not complete:
        return []
    written = []
    target = "validation AUC"  # what the study maximises (Optuna would say "Objective Value")
    figures = {
        "optimization_history": lambda: views.plot_optimization_history(study, target_name=target)
    }
    searched = searched_params(study)
    if len(complete) >= 2 and searched:

        def importances():
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            ax = views.plot_param_importances(
                study, evaluator=evaluator, params=searched, target_name=target
            )
            ax.set_xlabel(f"importance for the {target} (fANOVA)")
            return ax

        figures["param_importances"] = importances
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, plot in figures.items():
            try:
                ax = plot()
            except (ValueError, RuntimeError):
                continue  # e.g. importances while every complete trial had the same values
            fig = ax.figure
            fig.tight_layout()
            path = out / FIGURES / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_png(fig, path, dpi=100)
            written.append(path)
    return written
