"""Tests for upcall fit: a Kaggle-layout folder to a trained job in one command, resumably."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile

from upcall import cli
from upcall.audio.clipscsv import read_clips_csv
from upcall.audio.synth import SynthSettings, synthesize
from upcall.job.records import read_summary
from upcall.proto import caffe_pb2, read_binary

ROOT = Path(__file__).resolve().parents[2]
# Tiny: a 2-block WhaleNet 4 channels wide, one epoch (180 training clips, 3 iterations).
TINY = {"epochs": 1, "network_params": {"width": 4, "blocks": 2}}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """200 labelled synthetic clips in the Kaggle layout (train.csv, train/), no test/."""
    return synthesize(tmp_path_factory.mktemp("fit") / "data", SynthSettings(n_train=200, seed=1))


def recipe_file(folder: Path, **keys) -> Path:
    path = folder / "my_recipe.json"
    path.write_text(json.dumps({**TINY, **keys}))
    return path


def fit(data: Path, out: Path, recipe: Path, *extra: str) -> int:
    argv = ["fit", str(data), "--out", str(out), "--recipe", str(recipe), "--threads", "1"]
    return cli.main([*argv, *extra])


def test_fit_end_to_end_then_classify_then_rerun_skips(data, tmp_path, capsys):
    out, recipe = tmp_path / "out", recipe_file(tmp_path)
    assert fit(data, out, recipe) == 0
    printed = capsys.readouterr().out
    job = out / "jobs" / "whalenet-lr0.01"
    assert f"job:            {job}" in printed
    assert re.search(r"validation AUC: (n/a|[01]\.\d{4}) \(accuracy [01]\.\d{4}\)", printed)
    assert f"upcall classify {job} CLIP_OR_FOLDER ..." in printed
    assert f"upcall detect {job} RECORDING ... --out DIR" in printed
    summary = read_summary(job)
    assert summary.engine == "torch" and summary.epochs >= 1.0
    config = json.loads((job / "config.json").read_text())
    assert config["network_source"]["options"] == {"width": 4, "blocks": 2}
    assert config["epochs"] == 1 and config["seed"] == 0
    # the recipe file held two keys; recipe.json has all of them, the rest the defaults
    written = json.loads((out / "recipe.json").read_text())
    assert written["epochs"] == 1 and written["spectrogram_mode"] == "fine"
    # PNGs under OUT; DATA is only read
    assert (out / "spectrograms" / "train" / "train1.png").is_file()
    assert not list((data / "train").glob("*.png"))

    clips = [data / "train" / "train1.aiff", data / "train" / "train2.aiff"]
    assert cli.main(["classify", str(job), *map(str, clips)]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert [row.split("\t")[0] for row in rows] == [str(c) for c in clips]
    assert all(re.search(r"whale=[01]\.\d{4}$", row) for row in rows)

    modified = (job / "summary.json").stat().st_mtime_ns
    assert fit(data, out, recipe) == 0
    printed = capsys.readouterr().out
    for step in ("2/5 train/val lists", "3/5 LMDB dataset", "4/5 whalenet job", "5/5 training"):
        assert re.search(rf"\[fit\] {step}.*\(already done\)", printed), step
    assert (job / "summary.json").stat().st_mtime_ns == modified

    # A label edited with the file's old times kept (cp -p, rsync -a): refused by content, not
    # the old model reported; a touched but unchanged train.csv is not a change.
    csv_path = data / "train.csv"
    text, before = csv_path.read_text(), csv_path.stat()
    row = re.search(r"^(train\d+\.aiff),0$", text, re.M)
    try:
        csv_path.write_text(text.replace(row.group(0), f"{row.group(1)},1", 1))
        os.utime(csv_path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert fit(data, out, recipe) == 1
        assert capsys.readouterr().err.strip().splitlines() == [
            f"upcall fit: error: {csv_path}: the label of {row.group(1)} changed from 0 to 1 "
            f"since the lists in {out / 'lists'} were made; use another --out or remove it"
        ]
    finally:
        csv_path.write_text(text)
    os.utime(csv_path, (before.st_atime, time.time() + 60))
    assert fit(data, out, recipe) == 0
    assert "2/5 train/val lists" in capsys.readouterr().out

    # A clip replaced by another sound of the same size and times (train.csv untouched): its
    # spectrogram is remade, and the lists, LMDB and model made from the old one are refused.
    clip, other = data / "train" / "train1.aiff", data / "train" / "train2.aiff"
    old_bytes, stat = clip.read_bytes(), clip.stat()
    assert other.stat().st_size == stat.st_size and other.read_bytes() != old_bytes
    try:
        clip.write_bytes(other.read_bytes())
        os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert fit(data, out, recipe) == 1
        assert capsys.readouterr().err.strip().splitlines() == [
            f"upcall fit: error: {data / 'train'}: clips changed (same names, other content) "
            f"since the lists in {out / 'lists'} were made; use another --out or remove it"
        ]
    finally:
        clip.write_bytes(old_bytes)
        os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fit(data, out, recipe) == 0  # the old clip back: everything matches again
    assert (job / "summary.json").stat().st_mtime_ns == modified


def test_another_recipe_or_seed_is_refused(data, tmp_path, capsys):
    out = tmp_path / "out"
    (out).mkdir()
    from upcall.workflows.recipe import load_recipe

    load_recipe(recipe_file(tmp_path)).write(out)  # as a first run leaves it
    assert fit(data, out, recipe_file(tmp_path, epochs=2)) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"upcall fit: error: {out / 'recipe.json'}: {out} was made with another recipe "
        "(epochs 1 → 2); use another --out, or the --recipe and --seed it was made with"
    ]
    assert fit(data, out, recipe_file(tmp_path), "--seed", "7") == 1
    assert "(seed 0 → 7)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["recipe.json"]  # nothing made


def test_sigint_during_training_then_rerun_resumes(data, tmp_path):
    out = tmp_path / "out"
    # many epochs, so the Ctrl-C lands in training; snapshots only at the end or on Ctrl-C
    recipe = recipe_file(tmp_path, epochs=1000, snapshot_epochs=1000)
    cmd = [sys.executable, "-m", "upcall", "fit", str(data), "--out", str(out)]
    cmd += ["--recipe", str(recipe), "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = out / "jobs" / "whalenet-lr0.01"
    metrics = job / "metrics.jsonl"
    deadline = time.monotonic() + 120
    try:
        while not metrics.exists() or '"train"' not in metrics.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGINT, err  # died by it, after one line
    assert err.count("run the same upcall fit command again") == 1 and "--resume" not in err
    snaps = sorted(job.glob("snapshot_iter_*.solverstate"))
    assert len(snaps) == 1 and not (job / "summary.json").exists()
    stopped = read_binary(snaps[0], caffe_pb2.SolverState()).iter
    # end the job two iterations later, so the resumed run is short
    solver = job / "solver.prototxt"
    solver.write_text(re.sub(r"max_iter: \d+", f"max_iter: {stopped + 2}", solver.read_text()))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "[fit] 4/5 whalenet job" in done.stdout and "(already done)" in done.stdout
    summary = read_summary(job)
    assert summary.resumed_from == stopped and summary.iterations == stopped + 2


def test_missing_train_csv_is_one_line(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    assert cli.main(["fit", str(data), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"upcall fit: error: {data / 'train.csv'}: not found; DATA must hold train.csv "
        "(clip_name,label rows) and train/ with the clips"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("csv", "problem"),
    [
        (
            "clip_name,label\ntrain1.aiff,2\n",
            r"train\.csv:2: label '2' of train1\.aiff is not 0 or 1",
        ),
        ("clip_name,label\ntrain1.aiff,1\n", r"train\.csv: every clip has label 1; a detector"),
        ("clip_name,label\nnone.aiff,1\n", r"train\.csv:2: clip none\.aiff not found in .*train"),
    ],
    ids=["bad-label", "one-class", "missing-clip"],
)
def test_bad_data_is_one_line(data, tmp_path, capsys, csv, problem):
    mine = tmp_path / "data"
    mine.mkdir()
    (mine / "train").symlink_to(data / "train")
    (mine / "train.csv").write_text(csv)
    assert cli.main(["fit", str(mine), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(problem, err[0]), err
    assert not (tmp_path / "out").exists()


def test_validation_without_whales_is_refused_before_training(data, tmp_path, capsys):
    # 4 up-calls among 40 clips: the stratified 10 % holds round(0.4) = 0 of them
    mine = tmp_path / "data"
    mine.mkdir()
    (mine / "train").symlink_to(data / "train")
    rows = [f"train{k}.aiff,{int(k <= 4)}" for k in range(1, 41)]
    (mine / "train.csv").write_text("clip_name,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert fit(mine, out, recipe_file(tmp_path)) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"upcall fit: error: {out / 'lists' / 'val.txt'}: no whale clips among its 4: "
        "validation figures need both classes; raise val_fraction in the recipe, or add "
        "labelled clips of that class to train.csv"
    ]
    assert "3/5" not in captured.out and not (out / "dataset").exists()


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"epochs": 2.5}, "epochs: expected int, got float"),
        ({"epochs": 1e9}, "epochs: expected int, got float"),
        ({"epochs": 10**9}, "epochs: 1000000000 epochs of a stand-in set of 1000 clips"),
        ({"batch_size": True}, "batch_size: expected int | null, got bool"),
        ({"seed": True}, "seed: expected int | null, got bool"),
        ({"power": "x"}, "power: expected float | null, got str"),
        ({"network": "nosuchnet"}, "network: unknown network 'nosuchnet'; known: alexnet"),
        ({"class_weights": "1,2,3"}, "class_weights: '1,2,3' gives 3 weights for 2 classes"),
        ({"network_params": {"width": "x"}}, "network_params: network whalenet: parameter width"),
        ({"network_params": {"depth": 2}}, "network_params: network whalenet has no parameter"),
        ({"network": "alexnet"}, "network alexnet at size native: alexnet needs images of at"),
    ],
    ids=lambda v: json.dumps(v)[:30] if isinstance(v, dict) else "",
)
def test_a_bad_recipe_is_one_line_before_anything_is_made(data, tmp_path, capsys, keys, problem):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(keys))
    out = tmp_path / "out"
    assert fit(data, out, path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"upcall fit: error: {path}: {problem}"), err
    assert not out.exists()  # no recipe.json recorded, no spectrograms made


def test_clips_at_8khz_fit_in_one_step_with_resample(data, tmp_path, capsys):
    from scipy.signal import resample_poly

    mine = tmp_path / "data8k"
    (mine / "train").mkdir(parents=True)
    rows = (data / "train.csv").read_text().splitlines()[:81]  # 80 clips, both classes
    (mine / "train.csv").write_text("\n".join(rows) + "\n")
    for row in rows[1:]:
        clip = data / "train" / row.split(",")[0]
        samples, rate = soundfile.read(clip)
        soundfile.write(
            mine / "train" / clip.name, resample_poly(samples, 4, 1), 4 * rate, "PCM_16"
        )
    out = tmp_path / "out"
    assert fit(mine, out, recipe_file(tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        'sample rate 8000 Hz, expected 2000 Hz (--resample converts it, as "resample": true '
        "in a --recipe file does)"
    ), err
    assert not out.exists()  # refused before anything is made or recorded
    assert fit(mine, out, recipe_file(tmp_path), "--resample") == 0
    assert json.loads((out / "recipe.json").read_text())["resample"] is True
    made = json.loads((out / "spectrograms" / "spectrograms.json").read_text())
    assert made["resample"] is True and made["fit"] == "strict"
    # the recipe key does what the flag does: the same run, every step already done
    capsys.readouterr()
    assert fit(mine, out, recipe_file(tmp_path, resample=True)) == 0
    assert re.search(r"5/5 training.*\(already done\)", capsys.readouterr().out)


def test_data_or_recordings_not_both(data, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert cli.main(["fit", str(data), "--recordings", str(data), "--out", out]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "upcall fit: error: give DATA (a folder with train.csv and train/) or --recordings and "
        "--annotations, not both"
    ]
    assert cli.main(["fit", "--recordings", str(data), "--out", out]) == 1
    assert "--recordings needs --annotations" in capsys.readouterr().err
    assert cli.main(["fit", "--out", out]) == 1
    assert "give DATA, or --recordings and --annotations" in capsys.readouterr().err


def listed(lists: Path) -> dict[str, list[tuple[str, int]]]:
    """Each list as (PNG path under its spectrogram root, label) lines."""
    root = Path(json.loads((lists / "lists.json").read_text())["spectrogram_root"])
    return {
        name: [
            (Path(png).relative_to(root).as_posix(), int(label))
            for png, label in (
                line.rsplit(" ", 1) for line in (lists / name).read_text().splitlines()
            )
        ]
        for name in ("train.txt", "val.txt")
    }


def test_fit_recordings_is_clips_then_fit_with_no_recording_on_both_sides(tmp_path, capsys):
    from tests.recordings import annotated_recordings

    survey = annotated_recordings(tmp_path / "survey")
    inputs = [str(survey.recordings), "--annotations", str(survey.tables), "--positive", "upcall"]
    run = tmp_path / "run"
    argv = [
        "fit",
        "--recordings",
        *inputs,
        "--out",
        str(run),
        "--recipe",
        str(recipe_file(tmp_path)),
    ]
    assert cli.main([*argv, "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "upcall lists: split by sites from" in printed
    manifest = json.loads((run / "lists" / "lists.json").read_text())
    assert manifest["group_by"] == "site" and manifest["groups"] == {"train": 1, "val": 1}
    # no recording (here: no site) on both sides
    origin = {o.clip_name: o for o in read_clips_csv(run / "clips" / "clips.csv")}
    lists = listed(run / "lists")
    sites = {
        name: {origin[Path(png).with_suffix(".aiff").name].site for png, _ in rows}
        for name, rows in lists.items()
    }
    assert sites["train.txt"] and sites["val.txt"] and not sites["train.txt"] & sites["val.txt"]
    # `upcall clips` then `upcall fit DATA`, with the same defaults: the same clips and lists
    data = tmp_path / "data"
    assert cli.main(["clips", *inputs, "--out", str(data)]) == 0
    assert (data / "train.csv").read_text() == (run / "clips" / "train.csv").read_text()
    assert fit(data, tmp_path / "out", recipe_file(tmp_path)) == 0
    assert listed(tmp_path / "out" / "lists") == lists
    # a rerun cuts nothing again and trains nothing again
    capsys.readouterr()
    assert cli.main([*argv, "--threads", "1"]) == 0
    assert re.search(r"5/5 training.*\(already done\)", capsys.readouterr().out)
    # other clip options into the same OUT: refused in one line, nothing cut
    assert cli.main([*argv, "--threads", "1", "--guard", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"upcall fit: error: {run / 'clips' / 'clips.json'}: the clips were cut with other "
        "settings (guard_s 2.0 → 3.0); use another --out, or the options it was made with"
    ]
    # the split's groups come from clips.csv: an edit there (same train.csv) is refused, not
    # silently kept with the old lists
    clips_csv = data / "clips.csv"
    clips_csv.write_text(clips_csv.read_text().replace(",site2,", ",site1,"))
    assert fit(data, tmp_path / "out", recipe_file(tmp_path)) == 1
    assert "clips.csv: the clips' provenance (groups) changed since" in capsys.readouterr().err
