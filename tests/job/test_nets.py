"""``upcall nets``: job folders per (network, learning rate), and the checked-in prototxt/."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from upcall.errors import BatchFailed, UpcallError
from upcall.job import nets
from upcall.job.datasetinfo import load_dataset
from upcall.network import build as ns
from upcall.proto import caffe_pb2, read_text, to_text

REPO_PROTOTXT = Path(__file__).resolve().parents[2] / "prototxt"


def _dataset(folder: Path, *, size: str, train=(70, 30), val=(9, 1)) -> Path:
    h, w = (129, 30) if size == "native" else (256, 256)
    folder.mkdir()
    for db in ("train_db", "val_db"):
        (folder / db).mkdir()
    (folder / "mean.binaryproto").write_bytes(b"")
    (folder / "labels.txt").write_text("not-whale\nwhale\n")
    info = {
        "image": {"height": h, "width": w, "channels": 1},
        "size": size,
        "counts": {
            "train": dict(zip(("not-whale", "whale"), train, strict=True)),
            "val": dict(zip(("not-whale", "whale"), val, strict=True)),
        },
        "labels": ["not-whale", "whale"],
        "seed": 3,
    }
    (folder / "dataset.json").write_text(json.dumps(info))
    return folder


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    nets.configure(parser)
    return nets.run(parser.parse_args(list(argv)))


def test_one_job_per_network_and_rate(tmp_path):
    data = _dataset(tmp_path / "ds", size="native")
    out = tmp_path / "jobs"
    assert (
        _run(
            "--dataset",
            str(data),
            "--networks",
            "whalenet,whalenet-small",
            "--lr",
            "0.001,0.05",
            "--epochs",
            "3",
            "--batch-size",
            "25",
            "--seed",
            "5",
            "--out",
            str(out),
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "whalenet-lr0.001",
        "whalenet-lr0.05",
        "whalenet-small-lr0.001",
        "whalenet-small-lr0.05",
    ]
    job = out / "whalenet-lr0.05"
    assert sorted(p.name for p in job.iterdir()) == [
        ".upcall-made",  # `upcall nets` made it: a later run may replace it
        "config.json",
        "deploy.prototxt",
        "solver.prototxt",
        "train_val.prototxt",
    ]
    solver = read_text(job / "solver.prototxt", caffe_pb2.SolverParameter())
    # 100 training images / 25 = 4 iterations per epoch; 10 val images / 25 → 1 test batch.
    assert (solver.max_iter, list(solver.test_iter), solver.test_interval) == (12, [1], 4)
    assert (solver.base_lr, solver.random_seed, solver.net) == (
        pytest.approx(0.05),
        5,
        "train_val.prototxt",
    )
    train_val = read_text(job / "train_val.prototxt", caffe_pb2.NetParameter())
    sources = [x.data_param.source for x in train_val.layer if x.type == "Data"]
    assert sources == [str(data / "train_db"), str(data / "val_db")]
    assert train_val.layer[0].transform_param.mean_file == str(data / "mean.binaryproto")
    assert [x.data_param.batch_size for x in train_val.layer if x.type == "Data"] == [25, 25]
    config = json.loads((job / "config.json").read_text())
    assert (config["network"], config["base_lr"], config["epochs"], config["batch_size"]) == (
        "whalenet",
        0.05,
        3,
        25,
    )
    assert config["dataset"] == str(data) and config["dataset_info"]["seed"] == 3
    assert config["solver"]["seed"] == 5 and config["seed"] == 5
    assert config["schedule"]["train_iter"] == 4
    assert config["network_source"] == {
        "registry": "whalenet",
        "native_only": True,
        "options": {"blocks": 4, "width": 16},
    }
    deploy = read_text(job / "deploy.prototxt", caffe_pb2.NetParameter())
    assert list(deploy.layer[0].input_param.shape[0].dim) == [1, 1, 129, 30]


def test_networks_that_do_not_fit_fail_once_and_the_rest_are_written(tmp_path, capsys):
    native = _dataset(tmp_path / "native", size="native")
    with pytest.raises(BatchFailed, match="1 of 3 jobs failed"):
        _run(
            "--dataset",
            str(native),
            "--networks",
            "alexnet,whalenet",
            "--lr",
            "0.01,0.1",
            "--out",
            str(tmp_path / "jobs"),
        )
    err = capsys.readouterr().err
    assert (
        "alexnet: alexnet needs images of at least 227×227; this dataset is 129×30 "
        "(native): rebuild it with `upcall lmdb LISTS --size 256x256`"
    ) in err
    assert err.count("alexnet") == 2  # one line for both rates
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == [
        "whalenet-lr0.01",
        "whalenet-lr0.1",
    ]


def test_whalenet_refuses_squashed_images(tmp_path):
    big = _dataset(tmp_path / "big", size="256x256")
    with pytest.raises(
        UpcallError,
        match=r"whalenet is designed for the native spectrogram; this "
        r"dataset is 256×256 \(256x256\).*--size native",
    ):
        nets.make_job("whalenet", load_dataset(big), nets.SolverSettings())


def test_own_prototxt(tmp_path):
    data = _dataset(tmp_path / "ds", size="native")
    mine = ns.net(
        "tiny",
        [
            ns.include(ns.data("d1", batch_size=8), phase="TRAIN"),
            ns.include(ns.data("d2", batch_size=8), phase="TEST"),
            ns.pool("p", "data", kernel=(4, 2), stride=(4, 2)),
            ns.ip("fc", "p"),
            ns.softmax_loss("loss", ["fc", "label"]),
        ],
    )
    path = tmp_path / "tiny.prototxt"
    path.write_text(to_text(mine))
    assert _run("--dataset", str(data), "--network", str(path), "--out", str(tmp_path / "j")) == 0
    config = json.loads((tmp_path / "j" / "tiny-lr0.01" / "config.json").read_text())
    assert config["network_source"] == {"prototxt": str(path)}
    assert config["deploy_input"] == [1, 1, 129, 30]
    # A name that is not a plain word (it would make a path) gives way to the file's stem.
    mine.name = "My net/v2"
    odd = tmp_path / "Odd.prototxt"
    odd.write_text(to_text(mine))
    assert nets.make_job(str(odd), load_dataset(data), nets.SolverSettings()).name == ("odd-lr0.01")


def test_bad_prototxt_names_file_line_and_column(tmp_path):
    data = _dataset(tmp_path / "ds", size="native")
    path = tmp_path / "broken.prototxt"
    path.write_text('name: "x"\nlayer {\n  nme: "y"\n}\n')
    with pytest.raises(UpcallError, match=rf"{path}:3:3 : .*no field named \"nme\""):
        nets.make_job(str(path), load_dataset(data), nets.SolverSettings())


def test_jobs_with_results_are_never_overwritten(tmp_path):
    data = _dataset(tmp_path / "ds", size="native")
    out = tmp_path / "jobs"
    args = ("--dataset", str(data), "--networks", "whalenet", "--out", str(out))
    assert _run(*args) == 0
    assert _run(*args) == 0  # only our own files there: rewritten
    (out / "whalenet-lr0.01" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(BatchFailed):
        _run(*args)
    assert (out / "whalenet-lr0.01" / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "dataset.json: not found"),
        (
            lambda d: (d.mkdir(), (d / "dataset.json").write_text("{}")),
            r"dataset\.json: missing field 'image'",
        ),
        (
            lambda d: (d.mkdir(), (d / "dataset.json").write_text('{"format": 2}')),
            r"dataset\.json: dataset\.json format 2 is not one this upcall reads",
        ),
    ],
)
def test_bad_dataset(tmp_path, setup, message):
    setup(tmp_path / "ds")
    with pytest.raises(UpcallError, match=message):
        load_dataset(tmp_path / "ds")


def test_bad_options(tmp_path):
    data = _dataset(tmp_path / "ds", size="native")
    with pytest.raises(UpcallError, match="--lr must be comma-separated numbers"):
        _run("--dataset", str(data), "--lr", "fast", "--out", str(tmp_path))
    with pytest.raises(UpcallError, match="--dataset and --out are required"):
        _run("--lr", "0.1")


def test_checked_in_prototxt_has_not_drifted(tmp_path):
    nets.write_tutorial(tmp_path)
    fresh = {
        p.relative_to(tmp_path): p.read_text()
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != ".upcall-made"  # stored jobs are known by config.json
    }
    stored = {
        p.relative_to(REPO_PROTOTXT): p.read_text()
        for p in REPO_PROTOTXT.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert sorted(map(str, fresh)) == sorted(map(str, stored)), "run scripts/make_prototxt.py"
    drifted = [str(k) for k in fresh if fresh[k] != stored[k]]
    assert not drifted, f"run scripts/make_prototxt.py; drifted: {drifted}"
    assert len(fresh) == 3 * 4 * 4


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands(text: str) -> list[list[str]]:
    """Every `upcall spectrograms|lists|lmdb|nets ...` the README's workflow table (steps 2–5)
    and its "Networks" section show, in order, as argument lists (optional [...] parts in)."""
    import re
    import shlex

    rows = [line for line in text.splitlines() if re.match(r"\| [2-5]\. ", line)]
    rows += [line for line in text.splitlines() if line.startswith("`upcall nets --dataset")]
    found = []
    for line in rows:
        for span in re.findall(r"`(upcall (?:spectrograms|lists|lmdb|nets) [^`]*)`", line):
            if "..." not in span:
                found.append(shlex.split(span.replace("[", "").replace("]", ""))[1:])
    return found


def test_readme_workflow_commands_run_as_shown(tmp_path, capsys):
    """Steps 2–5 of the README, word for word, on 40 synthetic clips (the table's step 1 makes
    30,000): every command exits 0 and step 6's job is there."""
    from upcall.audio.synth import SynthSettings, synthesize
    from upcall.cli import main

    commands = readme_commands(README.read_text())
    steps = [c[0] for c in commands]
    assert steps[:5] == ["spectrograms", "lists", "lmdb", "lmdb", "nets"], commands
    data = synthesize(tmp_path / "DATA", SynthSettings(n_train=40, n_test=2, seed=1))
    names = ("DATA", "ROOT", "LISTS", "DATASET", "DATASET_NATIVE", "JOBS")
    where = {name: str(tmp_path / name) for name in names} | {"DATA": str(data)}
    for argv in commands:
        argv = [where.get(word, word) for word in argv]
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    for network in ("alexnet", "googlenet", "whalenet"):
        assert (tmp_path / "JOBS" / f"{network}-lr0.01" / "solver.prototxt").is_file()
    listed = (tmp_path / "LISTS" / "train.txt").read_text()
    assert listed.startswith(f"{tmp_path / 'ROOT'}/train/")  # step 2's enhanced PNGs


@pytest.mark.parametrize(
    ("param", "problem"),
    [
        ("width=x", "parameter width must be a whole number ≥ 1 (default 16), not 'x'"),
        ("width=2.5", "parameter width must be a whole number ≥ 1 (default 16), not 2.5"),
        ("blocks=0", "parameter blocks must be a whole number ≥ 1 (default 4), not 0"),
        ("time_pool=1", "parameter time_pool must be true or false (default False), not 1"),
        ("dropout=high", "parameter dropout must be a number (default 0.5), not 'high'"),
    ],
)
def test_net_param_type_errors_name_the_key(tmp_path, capsys, param, problem):
    from upcall.cli import main

    ds = _dataset(tmp_path / "ds", size="native")
    argv = ["nets", "--dataset", str(ds), "--networks", "whalenet", "--net-param", param]
    assert main([*argv, "--out", str(tmp_path / "jobs")]) == 1
    err = capsys.readouterr().err
    assert f"whalenet: network whalenet: {problem}" in err, err
    assert "Traceback" not in err and not (tmp_path / "jobs").exists()


def test_seed_random_draws_a_seed_records_it_and_says_so(tmp_path, capsys):
    from upcall.cli import main

    ds = _dataset(tmp_path / "ds", size="native")
    seeds = []
    for out in ("a", "b"):
        argv = ["nets", "--dataset", str(ds), "--out", str(tmp_path / out), "--seed", "random"]
        assert main(argv) == 0
        job = tmp_path / out / "whalenet-lr0.01"
        config = json.loads((job / "config.json").read_text())
        solver = read_text(job / "solver.prototxt", caffe_pb2.SolverParameter())
        seed = config["seed"]
        assert isinstance(seed, int) and seed == config["solver"]["seed"] == solver.random_seed
        captured = capsys.readouterr()
        assert f"seed {seed} (drawn at random; --seed {seed} repeats it)" in captured.err
        assert captured.out.strip() == str(job)  # stdout still lists only the job folders
        seeds.append(seed)
    assert seeds[0] != seeds[1]  # drawn (equal: one chance in 2**31)
    again = ["nets", "--dataset", str(ds), "--out", str(tmp_path / "c"), "--seed", str(seeds[0])]
    assert main(again) == 0 and "drawn" not in capsys.readouterr().err
    for name in ("solver.prototxt", "train_val.prototxt", "config.json"):
        first = (tmp_path / "a" / "whalenet-lr0.01" / name).read_text()
        assert (tmp_path / "c" / "whalenet-lr0.01" / name).read_text() == first, name


def test_a_layer_the_torch_engine_lacks_is_refused_at_job_creation(tmp_path, capsys):
    data = _dataset(tmp_path / "ds", size="native")
    mine = ns.net(
        "lstmnet",
        [
            ns.include(ns.data("d1", batch_size=8), phase="TRAIN"),
            ns.include(ns.data("d2", batch_size=8), phase="TEST"),
            ns.ip("fc", "data"),
            ns.softmax_loss("loss", ["fc", "label"]),
        ],
    )
    # a type only real Caffe runs (here fed by and feeding layers of known shape)
    mine.layer.insert(2, caffe_pb2.LayerParameter(name="odd", type="LSTM"))
    mine.layer[2].bottom.append("data")
    mine.layer[2].top.append("seq")
    path = tmp_path / "lstm.prototxt"
    path.write_text(to_text(mine))
    argv = ("--dataset", str(data), "--network", str(path), "--out", str(tmp_path / "j"))
    with pytest.raises(BatchFailed):
        _run(*argv)
    err = capsys.readouterr().err
    refusal = (
        "layer 'odd' (type LSTM) is not implemented by the torch engine; --engine caffe runs it"
    )
    assert refusal in err
    assert not (tmp_path / "j" / "lstmnet-lr0.01").exists()
    # real Caffe takes it: the job is written, its shapes left to Caffe past the LSTM
    assert _run(*argv, "--engine", "caffe") == 0
    assert (tmp_path / "j" / "lstmnet-lr0.01" / "train_val.prototxt").is_file()


def test_job_engines_are_the_engines():
    from upcall.engines import ENGINES

    assert set(nets.JOB_ENGINES) == set(ENGINES)
