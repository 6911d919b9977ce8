"""The shared flags (upcall.cliargs): one spelling, default and meaning in every command; the old
spellings still parse; choices come from the registries."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.job.test_nets import _dataset
from upcall import cli, cliargs
from upcall.proto import caffe_pb2, read_text


def _parser(command: str) -> argparse.ArgumentParser:
    root = cli.build_parser(command)
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _flag(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return parser._option_string_actions.get(flag)


def _help(command: str) -> str:
    """The help on one line (wide enough that argparse breaks no words at their hyphens)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "10000")
        return " ".join(_parser(command).format_help().split())


def _with(flag: str) -> dict[str, argparse.Action]:
    """Every command with ``flag``, and its action."""
    found = {}
    for name in cli.COMMANDS:
        action = _flag(_parser(name), flag)
        if action is not None:
            found[name] = action
    return found


# What each shared flag's commands are today: a command that loses or gains one shows here.
SEEDED = {"synth", "synth-recording", "clips", "lists", "augment", "lmdb", "explore", "nets",
          "baseline", "sweep", "search", "fit", "demo", "review"}  # fmt: skip
ON_GPU = {"nets", "train", "sweep", "search", "fit"}
WORKERS = {"synth", "spectrograms", "augment", "lmdb", "baseline", "detect", "search"}
THRESHOLDS = {"detect", "evaluate", "report", "presence", "review"}


def test_seed_defaults_to_0_in_every_command_and_takes_a_number_or_random(capsys):
    seeded = _with("--seed")
    assert set(seeded) == SEEDED
    for name, action in seeded.items():
        assert action.default == cliargs.SEED == 0, name
        assert action.type is cliargs.seed_value, name
        assert "random: draw one and print it (default 0)" in _help(name), name
    args = _parser("lists").parse_args(["DATA", "--seed", "7"])
    assert args.seed == 7 and cliargs.given(args, "seed")
    assert not cliargs.given(_parser("lists").parse_args(["DATA"]), "seed")
    drawn = _parser("synth").parse_args(["--out", "X", "--seed", "random"]).seed
    assert isinstance(drawn, int) and 0 <= drawn < 2**31
    assert f"seed {drawn} (drawn at random; --seed {drawn} repeats it)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser("synth").parse_args(["--out", "X", "--seed", "seven"])
    assert "an integer or 'random', not 'seven'" in capsys.readouterr().err


def test_gpu_is_a_device_number_and_the_bare_switch_still_means_device_0():
    on_gpu = _with("--gpu")
    assert set(on_gpu) == ON_GPU
    for name in on_gpu:
        parser = _parser(name)
        required = {"train": ["JOB"], "fit": ["DATA", "--out", "O"], "search": ["DATA",
                    "--out", "O", "--trials", "1"], "sweep": ["--dataset", "D", "--out", "O"]}  # fmt: skip
        base = required.get(name, [])
        assert parser.parse_args(base).gpu is None, name  # the CPU
        assert parser.parse_args([*base, "--gpu"]).gpu == 0, name
        assert parser.parse_args([*base, "--gpu", "2"]).gpu == 2, name
        text = _help(name)
        assert "CUDA device N" in text and "(bare --gpu: device 0; default: the CPU)" in text


def test_nets_writes_the_same_job_with_bare_gpu_and_gpu_0_and_device_id_for_others(tmp_path):
    ds = _dataset(tmp_path / "ds", size="native")
    files = ("solver.prototxt", "train_val.prototxt", "deploy.prototxt", "config.json")

    def nets(out: str, *flags: str) -> Path:
        argv = ["nets", "--dataset", str(ds), "--out", str(tmp_path / out), *flags]
        assert cli.main(argv) == 0
        return tmp_path / out / "whalenet-lr0.01"

    bare, zero = nets("bare", "--gpu", "--seed", "5"), nets("zero", "--gpu", "0", "--seed", "5")
    for name in files:
        assert (bare / name).read_bytes() == (zero / name).read_bytes(), name
    solver = read_text(bare / "solver.prototxt", caffe_pb2.SolverParameter())
    assert solver.solver_mode == caffe_pb2.SolverParameter.GPU
    assert not solver.HasField("device_id") and solver.random_seed == 5
    three = read_text(nets("three", "--gpu", "3", "--seed", "5") / "solver.prototxt",
                      caffe_pb2.SolverParameter())  # fmt: skip
    assert three.device_id == 3 and three.solver_mode == caffe_pb2.SolverParameter.GPU
    three.ClearField("device_id")
    assert three == solver
    # no --seed is --seed 0, byte for byte; and the CPU by default
    unseeded, seeded = nets("unseeded"), nets("seeded", "--seed", "0")
    for name in files:
        assert (unseeded / name).read_bytes() == (seeded / name).read_bytes(), name
    cpu = read_text(unseeded / "solver.prototxt", caffe_pb2.SolverParameter())
    assert cpu.solver_mode == caffe_pb2.SolverParameter.CPU and cpu.random_seed == 0


def test_threshold_has_one_default_and_one_meaning():
    found = _with("--threshold")
    assert set(found) == THRESHOLDS
    for name, action in found.items():
        assert action.default == cliargs.THRESHOLD == 0.5, name
        assert "whose score (whale probability) is at least P counts as a whale call" in _help(name)


def test_workers_say_what_one_worker_is_and_why_a_default_is_1():
    found = _with("--workers")
    assert set(found) == WORKERS
    for name, action in found.items():
        text = _help(name)
        assert "--workers N workers at once on this machine; one worker is a " in text, name
        if action.default is None:
            assert "(default all cores)" in text, name
        else:  # where one worker already keeps every core busy
            assert action.default == 1 and "(default 1: one " in text and "every core" in text


@pytest.mark.parametrize(("command", "rest"), [("synth", []), ("synth-recording", ["--minutes",
                         "1"]), ("demo", [])])  # fmt: skip
def test_out_is_a_flag_and_the_old_positional_still_works(command, rest, capsys):
    parser = _parser(command)
    assert parser.parse_args(["X", *rest]).out == Path("X")
    assert parser.parse_args(["--out", "X", *rest]).out == Path("X")
    assert parser.parse_args([*rest, "X"]).out == Path("X")
    text = _help(command)
    assert "--out " in text and "positional arguments" not in text  # the old one is hidden
    with pytest.raises(SystemExit):
        parser.parse_args(["X", "--out", "Y", *rest])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(rest)
    assert "--out is required" in capsys.readouterr().err


def test_synth_recording_writes_the_same_file_with_either_spelling(tmp_path):
    old, new = tmp_path / "old.wav", tmp_path / "new.wav"
    assert cli.main(["synth-recording", str(old), "--minutes", "0.05"]) == 0
    assert cli.main(["synth-recording", "--out", str(new), "--minutes", "0.05"]) == 0
    assert old.read_bytes() == new.read_bytes()


def test_every_command_that_writes_one_place_takes_out():
    writers = set(cli.COMMANDS) - {"train", "classify", "caffe", "digits"}
    assert writers <= set(_with("--out"))
    for name, action in _with("--out").items():
        assert action.type is Path, name


def test_epochs_defaults_say_why_they_differ():
    assert _flag(_parser("nets"), "--epochs").default == 30
    assert _flag(_parser("sweep"), "--epochs").default == 5
    assert _flag(_parser("demo"), "--epochs").default == 15
    assert "(default 30: DIGITS's form default" in _help("nets")
    assert "(default 5: the tutorial's sweep, 5 epochs a rate" in _help("sweep")
    assert "(default 15: the recipe's, as `upcall fit` trains)" in _help("demo")
    assert "over 15 epochs (`upcall nets` keeps DIGITS's 30)" in _help("fit")


def test_choices_come_from_the_registries(monkeypatch):
    from upcall.data.resize import RESIZE_MODES
    from upcall.data.spectrogram import MODES, FineMode
    from upcall.engines import ENGINES
    from upcall.network.zoo import NETWORKS

    monkeypatch.setitem(MODES, "finer", FineMode())
    for command in ("spectrograms", "lists"):
        assert _flag(_parser(command), "--mode").choices == list(MODES), command
    spectrograms = _help("spectrograms")
    assert "fine: 32 ms hop, 0–500 Hz" in spectrograms  # the recipe's mode, described
    assert "finer: 32 ms hop" in spectrograms  # a new mode shows by itself
    for command in ("train", "sweep", "search", "fit"):
        assert _flag(_parser(command), "--engine").choices == sorted(ENGINES), command
    assert list(_flag(_parser("lmdb"), "--resize-mode").choices) == list(RESIZE_MODES)
    monkeypatch.setitem(NETWORKS, "whalenet-tiny", NETWORKS["whalenet"])
    for command in ("nets", "sweep", "search"):
        text = _help(command)
        assert all(name in text for name in NETWORKS), command
        assert "whalenet-wide, whalenet-tiny;" in text, command


def test_digits_serve_takes_its_engines_from_the_registry():
    from upcall.engines import ENGINES

    digits = _parser("digits")
    sub = next(a for a in digits._actions if isinstance(a, argparse._SubParsersAction))
    engine = _flag(sub.choices["serve"], "--engine")
    assert set(engine.choices) == set(ENGINES) - {"digits"}


def test_snapshot_means_the_same_in_classify_and_export():
    for command in ("classify", "export"):
        action = _flag(_parser(command), "--snapshot")
        assert action.default is None and action.type is int, command
        assert "use the snapshot of iteration N (default: the latest)" in _help(command)


def test_fit_keeps_a_recipe_files_seed_unless_seed_is_given():
    from upcall.workflows.recipe import DEFAULT_RECIPE

    fit = _parser("fit")
    assert not cliargs.given(fit.parse_args(["DATA", "--out", "O", "--recipe", "r.json"]), "seed")
    assert cliargs.given(fit.parse_args(["DATA", "--out", "O", "--seed", "0"]), "seed")
    assert DEFAULT_RECIPE.seed == cliargs.SEED  # no --recipe, no --seed: the same 0


def test_lists_mode_takes_only_a_registered_mode(capsys):
    with pytest.raises(SystemExit):
        _parser("lists").parse_args(["DATA", "--mode", "tutorail"])
    assert "invalid choice: 'tutorail'" in capsys.readouterr().err
