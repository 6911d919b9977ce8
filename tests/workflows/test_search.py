"""``upcall search``: an Optuna study over job folders, shared by workers, pruned, resumable.

Real components throughout: the torch engine trains every trial on a real (tiny) LMDB, the
study lives in Optuna's journal file or in a PostgreSQL server this module starts.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from upcall import cli
from upcall.engines import get_engine
from upcall.job.records import read_metrics, validation_records
from upcall.workflows.search_study import (
    JOURNAL,
    SearchSettings,
    Worker,
    _run_and_tell,
    open_storage,
    run_trial,
)

ROOT = Path(__file__).resolve().parents[2]
# a tiny space: one small network, one batch size, every trial a few seconds
TINY = ["--networks", "whalenet-small", "--batch-sizes", "32", "--threads", "1"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from upcall.audio.synth import SynthSettings, synthesize
    from upcall.data.dataset import DatasetSettings, build_dataset
    from upcall.data.lists import make_lists
    from upcall.data.listsfolder import ListSettings

    root = tmp_path_factory.mktemp("search")
    synthesize(root / "data", SynthSettings(n_train=60, seed=3), workers=1)
    make_lists(root / "data", out=root / "lists", settings=ListSettings(seed=3))
    build_dataset(root / "lists", out=root / "ds", settings=DatasetSettings(size=None, workers=1))
    return root / "ds"


def _study(out: Path, storage=None, name: str = "upcall-search") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage or open_storage(None, out))


def _assert_trials_have_jobs(study: optuna.Study, n: int) -> list[optuna.trial.FrozenTrial]:
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(done) == n
    for t in done:
        job = Path(t.user_attrs["job"])
        assert job.name == str(t.number) and job.parent.name == "trials"
        assert (job / "config.json").is_file()
        if t.state is TrialState.COMPLETE:
            assert (job / "summary.json").is_file()
            last = validation_records(read_metrics(job))[-1]
            assert t.value == last.val_auc
    return done


def test_two_local_workers_share_the_journal_and_a_rerun_adds_nothing(dataset, tmp_path, capsys):
    out = tmp_path / "search"
    argv = ["search", str(dataset), "--out", str(out), "--trials", "4", "--epochs", "1,2", *TINY]
    assert cli.main([*argv, "--workers", "2"]) == 0
    study = _study(out)
    done = _assert_trials_have_jobs(study, 4)
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both processes ran trials
    assert (out / JOURNAL).is_file()
    assert (out / "figures" / "optimization_history.png").stat().st_size > 0
    assert SearchSettings.read(out).trials == 4
    best = max((t for t in done if t.state is TrialState.COMPLETE), key=lambda t: t.value)
    printed = capsys.readouterr().out
    assert f"best trial {best.number}: validation AUC {best.value:.4f}" in printed
    assert f"job:     {out / 'trials' / str(best.number)}" in printed

    # the study is finished: a rerun trains nothing; other settings are refused
    assert cli.main(argv) == 0
    assert len(_study(out).trials) == len(study.trials)
    assert cli.main([*argv, "--seed", "1"]) == 1
    assert "seed 0 → 1" in capsys.readouterr().err


def test_ctrl_c_marks_the_trial_failed_and_a_rerun_completes_the_study(dataset, tmp_path):
    out = tmp_path / "search"
    argv = [sys.executable, "-m", "upcall.cli", "search", str(dataset), "--out", str(out)]
    argv += ["--trials", "2", *TINY, "--no-pruning"]
    # 20 epochs: long enough that the Ctrl-C lands inside trial 0's training
    proc = subprocess.Popen(
        [*argv, "--epochs", "20,20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = out / "trials" / "0" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.stat().st_size) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGINT, err  # died by it, after one line
    assert "trial 0 is marked failed" in err
    assert "rerun the same upcall search command" in err
    (trial,) = _study(out).trials
    assert trial.state is TrialState.FAIL and trial.user_attrs["interrupted"]
    assert list((out / "trials" / "0").glob("snapshot_iter_*.caffemodel"))  # resumable by hand

    rerun = subprocess.run(
        [*argv, "--epochs", "20,20"], capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr
    study = _study(out)
    _assert_trials_have_jobs(study, 2)
    assert study.trials[0].state is TrialState.FAIL


def test_a_resumed_study_proposes_what_an_unbroken_one_would(dataset, tmp_path, monkeypatch):
    import upcall.plotting
    from upcall.errors import Interrupted
    from upcall.workflows import search_study

    saved = {}

    def keep(fig, path, **kw):  # the figures as last drawn, instead of their PNGs
        if path.name in saved:
            upcall.plotting.pyplot().close(saved[path.name])
        saved[path.name] = fig

    monkeypatch.setattr(upcall.plotting, "save_png", keep)
    argv = ["search", str(dataset), "--trials", "3", "--epochs", "1,1", "--no-pruning", *TINY]
    assert cli.main([*argv, "--out", str(tmp_path / "unbroken")]) == 0
    unbroken = _study(tmp_path / "unbroken").trials

    # the figures name what is maximised and rank only what was searched (here one network,
    # one batch size, one epoch count: fixed, not searched)
    assert saved["optimization_history.png"].axes[0].get_ylabel() == "validation AUC"
    importances = saved["param_importances.png"].axes[0]
    assert {t.get_text() for t in importances.get_yticklabels()} == {
        "base_lr",
        "solver_type",
        "lr_policy",
    }
    assert "validation AUC" in importances.get_xlabel()

    # Ctrl-C during trial 1's training (at its first validation pass), then the same command
    real = search_study.pruning_reporter

    def ctrl_c_in_trial_1(trial):
        if trial.number != 1:
            return real(trial)

        def stop(record):
            raise Interrupted(f"{tmp_path}: stopped")

        return stop

    monkeypatch.setattr(search_study, "pruning_reporter", ctrl_c_in_trial_1)
    assert cli.main([*argv, "--out", str(tmp_path / "resumed")]) == 130
    monkeypatch.setattr(search_study, "pruning_reporter", real)
    assert cli.main([*argv, "--out", str(tmp_path / "resumed")]) == 0
    resumed = _study(tmp_path / "resumed").trials
    assert [t.state for t in resumed] == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        *[TrialState.COMPLETE] * 2,
    ]
    # the interrupted trial's settings are proposed again, then the unbroken run's next ones:
    # the same trials, the same figures, the same best
    done = [t for t in resumed if t.state is TrialState.COMPLETE]
    assert [t.params for t in done] == [t.params for t in unbroken]
    assert resumed[1].params == unbroken[1].params
    assert [t.value for t in done] == [t.value for t in unbroken]


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_a_kaggle_folder_is_made_into_a_dataset_as_fit_makes_it_and_only_read(tmp_path, capsys):
    from upcall.audio.synth import SynthSettings, synthesize
    from upcall.data.dataset import DatasetManifest
    from upcall.workflows.recipe import DEFAULT_RECIPE

    data = tmp_path / "data"
    synthesize(data, SynthSettings(n_train=40, positive_rate=0.5, seed=5), workers=1)
    before = _tree(data)
    out = tmp_path / "search"
    argv = ["search", str(data), "--out", str(out), "--trials", "1", "--epochs", "1,1", *TINY]
    assert cli.main(argv) == 0
    assert _tree(data) == before  # no PNG, list or lock beside the clips
    assert "[search] 3/3 LMDB dataset" in capsys.readouterr().out
    assert len(list((out / "spectrograms" / "train").glob("*.png"))) == 40
    settings = SearchSettings.read(out)
    assert (settings.data, settings.dataset) == (str(data), str(out / "dataset"))
    # the default recipe's data settings (with search's seed), as `upcall fit` uses them
    recipe = DEFAULT_RECIPE.with_solver(seed=settings.seed)
    made = DatasetManifest.read(out / "dataset")
    assert made.spectrograms.mode == recipe.spectrogram_mode
    assert made.lists.spectrogram_root == str(out / "spectrograms")
    assert (made.lists.split, made.lists.val_fraction, made.lists.balance, made.lists.seed) == (
        recipe.split,
        recipe.val_fraction,
        recipe.balance,
        recipe.seed,
    )
    assert (made.settings.size, made.settings.resize_mode, made.settings.seed) == (
        recipe.dataset_settings().size,
        recipe.dataset_settings().resize_mode,
        recipe.seed,
    )
    _assert_trials_have_jobs(_study(out), 1)

    # other DATA into the same DIR is refused before anything is made from it
    other = tmp_path / "other"
    shutil.copytree(data, other)
    made_before, other_before = _tree(out), _tree(other)
    assert cli.main([*argv[:1], str(other), *argv[2:]]) == 1
    assert f"data {data} → {other}" in capsys.readouterr().err
    assert (_tree(out), _tree(other)) == (made_before, other_before)


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_pruner_stops_training_at_the_first_trained_validation(dataset, tmp_path):
    out = tmp_path / "search"
    out.mkdir()
    settings = SearchSettings(
        data=str(dataset),
        dataset=str(dataset),
        study="s",
        storage=None,
        trials=1,
        seed=0,
        networks=("whalenet-small",),
        lr_range=(0.01, 0.01),
        batch_sizes=(32,),
        solver_types=("SGD",),
        lr_policies=("fixed",),
        epochs=(3, 3),
        pruning=True,
        engine="torch",
    )
    engine = get_engine("torch", threads=1)
    worker = Worker(0, settings, None, out, engine.options)
    study = optuna.create_study(
        storage=open_storage(None, out), study_name="s", direction="maximize", pruner=_AlwaysPrune()
    )

    # the hook itself: the run ends at epoch 1's validation, the job left as it stopped
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="at epoch 1"):
        run_trial(trial, worker, engine)
    job = out / "trials" / "0"
    tests = validation_records(read_metrics(job))
    assert [round(r.epoch) for r in tests] == [0, 1]  # iteration 0, then epoch 1 of 3
    assert not (job / "summary.json").exists()
    study.tell(trial, state=TrialState.PRUNED)
    assert study.trials[0].intermediate_values == {1: tests[1].val_auc}

    # through the worker's tell: marked pruned in the study
    trial = study.ask()
    assert _run_and_tell(study, trial, worker, engine)
    assert study.trials[1].state is TrialState.PRUNED


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on a free localhost port; its URL. Skips without Debian's
    postgresql (``make test``, which installs it, sets UPCALL_REQUIRE_POSTGRES=1: then fails)."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        if os.environ.get("UPCALL_REQUIRE_POSTGRES") == "1":
            pytest.fail("UPCALL_REQUIRE_POSTGRES=1 but PostgreSQL is not installed")
        pytest.skip("PostgreSQL is not installed (bash scripts/install-postgresql.sh)")
    base = Path(tempfile.mkdtemp(prefix="upcall-pg-"))  # not under pytest's root-only tmp
    as_user: list[str] = []
    if os.getuid() == 0:  # postgres refuses to run as root: run it as its own user
        user = "postgres" if _has_user("postgres") else "nobody"
        shutil.chown(base, user)
        as_user = ["runuser", "-u", user, "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*as_user, str(bin_dir / tool), *args], check=True, capture_output=True)

    pg("initdb", "-D", str(data), "-A", "trust", "-U", "upcall", "--no-sync")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -F"
    pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start")
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "upcall", "search")
        yield f"postgresql+psycopg2://upcall@127.0.0.1:{port}/search"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_two_workers_share_a_study_in_postgresql(dataset, tmp_path, postgres_url):
    # two processes as on two machines: each its own search folder, one study in the server
    command = [sys.executable, "-m", "upcall.cli", "search", str(dataset), "--trials", "4"]
    command += ["--epochs", "1,1", "--storage", postgres_url, *TINY]
    procs = [
        subprocess.Popen(
            [*command, "--out", str(tmp_path / f"machine{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    study = _study(tmp_path, storage=postgres_url)
    done = _assert_trials_have_jobs(study, 4)
    machines = {Path(t.user_attrs["job"]).parents[1].name for t in done}
    assert machines == {"machine0", "machine1"}
    for i in range(2):
        settings = SearchSettings.read(tmp_path / f"machine{i}")
        assert settings.storage == postgres_url  # no password to hide here
        assert not (tmp_path / f"machine{i}" / JOURNAL).exists()
