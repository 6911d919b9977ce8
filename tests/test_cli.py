"""The declared entry points import, and every sub-command is wired to a real module."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from upcall import cli

ROOT = Path(__file__).resolve().parents[1]


def test_every_declared_entry_point_imports():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts, "pyproject declares no console scripts"
    for name, target in scripts.items():
        module_name, _, attr = target.partition(":")
        assert callable(getattr(importlib.import_module(module_name), attr)), name


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_module_follows_the_contract(command):
    module = importlib.import_module(cli.COMMANDS[command])
    assert isinstance(module.HELP, str) and module.HELP.strip()
    assert callable(module.configure) and callable(module.run)


def test_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "upcall", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in cli.COMMANDS:
        assert command in out


def test_user_error_is_one_line_and_exit_1(tmp_path, capsys):
    missing = tmp_path / "nope"
    code = cli.main(["explore", str(missing)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and str(missing) in err[0]


def _parsers(parser, name="upcall"):
    """(name, parser) of the command and of every sub-command, nested ones included."""
    import argparse

    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                yield from _parsers(child, f"{name} {child_name}")


def test_every_option_with_a_default_shows_it_in_help():
    """An option whose default is a value (not absent, not a flag) says it in --help: in its
    own words, or as the "(default: X)" the shared formatter adds."""
    import argparse

    missing = []
    for name, parser in _parsers(cli.build_parser()):
        assert parser.format_help(), name  # every --help formats (a stray % would raise)
        formatter = parser._get_formatter()
        for action in parser._actions:
            default = action.default
            if not action.option_strings or default is None or default is False:
                continue
            if default == argparse.SUPPRESS or (isinstance(default, list) and not default):
                continue
            text = formatter._get_help_string(action) if action.help else ""
            if "default" not in text.lower() and f"({default}" not in text:
                missing.append(f"{name} {action.option_strings[-1]}")
    assert not missing, missing


def _help(*command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "upcall", *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(done.stdout.split())  # argparse's line breaks as spaces


def test_serve_help_shows_its_defaults():
    text = _help("digits", "serve")
    for shown in ("default 127.0.0.1", "default 5000", "default ./digits-jobs", "default torch"):
        assert shown in text, text


def test_commands_that_train_give_their_defaults_and_why_they_differ():
    nets, sweep, fit = _help("nets"), _help("sweep"), _help("fit")
    assert "(default 30: DIGITS's form default" in nets, nets
    assert "Caffe random_seed, written into solver.prototxt and config.json" in nets, nets
    assert "(default 5: the tutorial's sweep, 5 epochs a rate" in sweep, sweep
    assert "so the jobs of a sweep differ only in what is swept" in sweep, sweep
    assert "poly policy over 15 epochs (`upcall nets` keeps DIGITS's 30), seed 0" in fit, fit


@pytest.mark.parametrize(
    ("script", "args"),
    [("preprocess-aiff.py", ["DATA"]), ("scripts/run_sweep.py", ["--dataset", "D", "--out", "J"])],
)
def test_a_door_run_outside_the_virtualenv_says_run_make_venv(script, args, tmp_path):
    """The tutorial's scripts under a Python without upcall's packages (the system's python3):
    one line naming `make venv`, exit 1, no traceback."""
    python = _python_without_packages()
    done = subprocess.run(
        [python, str(ROOT / script), *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: this Python ("), done.stderr
    assert "run `make venv`, then `.venv/bin/python" in lines[0]


def test_make_lists_without_an_upcall_says_run_make_venv(tmp_path):
    import shutil

    shutil.copy(ROOT / "make_lists.sh", tmp_path)  # no .venv beside it
    env = {"PATH": "/usr/bin:/bin"}  # and no upcall on PATH
    done = subprocess.run(
        ["bash", str(tmp_path / "make_lists.sh"), "DATA"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"make_lists.sh: upcall is not installed ({tmp_path}/.venv/bin/upcall is missing and no "
        "upcall is on PATH): run `make venv` first"
    ]


def _python_without_packages() -> str:
    import shutil

    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import soundfile"], capture_output=True)
        if probe.returncode != 0:
            return candidate
    pytest.skip("every python3 here has upcall's packages")
