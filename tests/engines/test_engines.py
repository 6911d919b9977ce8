"""The engine interface: every registered engine writes the same job directory, options reach
an engine as flags of its own, status() tells the sweep what to do, Caffe's log is read whatever
the user's glog settings."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.engines.caffe.test_engine import dataset, make_job  # noqa: F401  (dataset is a fixture)
from upcall import cli
from upcall.engines import ENGINES, JobStatus, get_engine
from upcall.errors import UpcallError
from upcall.job.records import read_metrics, read_summary


def _schema(job: Path) -> dict:
    """Field names per record kind and of summary.json, and which iterations have records."""
    lines = [json.loads(x) for x in (job / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((job / "summary.json").read_text())
    return {
        "train": sorted({k for x in lines if x["kind"] == "train" for k in x}),
        "test": sorted({k for x in lines if x["kind"] == "test" for k in x}),
        "train_iters": [x["iter"] for x in lines if x["kind"] == "train"],
        "test_iters": [x["iter"] for x in lines if x["kind"] == "test"],
        "summary": sorted(summary),
        "final": sorted(summary["final"]),
        "types": {
            k: type(v).__name__ for k, v in summary.items() if k != "train_images_per_second"
        },
    }


# The engines that train on this machine; the digits engine needs a server, so
# tests/engines/digits/test_engine.py holds it to the same schema (through ``schema_fields``).
LOCAL_ENGINES = sorted(set(ENGINES) - {"digits"})


def schema_fields(job: Path) -> dict:
    """The field names of a trained job's records and summary (what every engine shares)."""
    found = _schema(job)
    return {k: found[k] for k in ("train", "test", "summary", "final")}


@pytest.fixture(params=LOCAL_ENGINES)
def engine_name(request) -> str:
    if request.param == "caffe":
        request.getfixturevalue("caffe")  # skips (or fails under UPCALL_REQUIRE_CAFFE=1)
    return request.param


def test_every_engine_writes_the_same_job_directory(engine_name, dataset, tmp_path):  # noqa: F811
    job = make_job(tmp_path / "job", dataset, max_iter=6)
    summary = get_engine(engine_name, threads=1).train(job)
    assert summary == read_summary(job) and summary.engine == engine_name
    assert (summary.iterations, summary.epochs, summary.threads) == (6, 2.0, 1)
    records = read_metrics(job)
    assert all(r.val_auc is not None and r.recall for r in records if r.kind == "test")
    expected = {
        "train": ["epoch", "format", "iter", "kind", "loss", "lr"],
        "test": expected_test_fields(),
        "train_iters": [0, 2, 4],
        "test_iters": [0, 3, 6],
        "summary": [
            "best",
            "device",
            "engine",
            "epochs",
            "final",
            "format",
            "iterations",
            "network",
            "resumed_from",
            "snapshots",
            "threads",
            "train_images_per_second",
            "wall_seconds",
        ],
        "final": expected_test_fields(),
        "types": {
            "format": "int",
            "engine": "str",
            "network": "str",
            "iterations": "int",
            "epochs": "float",
            "wall_seconds": "float",
            "device": "str",
            "threads": "int",
            "resumed_from": "NoneType",
            "snapshots": "list",
            "final": "dict",
            "best": "dict",
        },
    }
    assert _schema(job) == expected
    assert get_engine(engine_name).status(job) is JobStatus.DONE


def expected_test_fields() -> list[str]:
    return [
        "caffe_logged",
        "clips",
        "epoch",
        "format",
        "iter",
        "kind",
        "recall",
        "val_accuracy",
        "val_auc",
        "val_loss",
    ]


# --- each validation clip once ----------------------------------------------------------------

VAL_LABELS = [int(i % 4 == 0) for i in range(150)]  # 38 whales among 150 validation clips


@pytest.fixture(scope="module")
def val150(tmp_path_factory):
    """12 training clips and 150 validation clips whose classes overlap (a level of 2 grey in
    noise of 0..99), so the figures of a briefly trained net are neither 0 nor 1."""
    from tests.tinydata import level_dataset

    root = tmp_path_factory.mktemp("val150")
    level_dataset(root, [i % 2 for i in range(12)] + VAL_LABELS, level=2)
    return root


def classified(job: Path, root: Path, tmp_path: Path, *backend: str):
    """`upcall classify` on the 150 validation PNGs: the PNGs, (N, 2) probabilities, labels."""
    lines = (root / "lists" / "val.txt").read_text().splitlines()
    pngs = [line.rsplit(" ", 1)[0] for line in lines]
    out = tmp_path / "classified.csv"
    assert cli.main(["classify", str(job), *pngs, *backend, "--csv", str(out)]) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == pngs
    scores = np.array([[float(r[2]), float(r[3])] for r in rows])
    return pngs, scores, np.array([int(line.rsplit(" ", 1)[1]) for line in lines])


def test_validation_figures_count_each_clip_once(engine_name, val150, tmp_path, capsys):
    """150 validation clips, batch 100: Caffe's test pass (test_iter 2) scores 200 and counts the
    first 50 twice; the recorded figures are `classify`'s on the 150 clips, exactly."""
    from upcall.metrics import evaluate
    from upcall.reports.scores import Scorer

    job = make_job(tmp_path / "job", val150 / "ds", max_iter=6, val_batch=100)
    assert cli.main(["train", str(job), "--engine", engine_name, "--threads", "1"]) == 0
    tests = [r for r in read_metrics(job) if r.kind == "test"]
    assert [(r.iter, r.clips) for r in tests] == [(0, 150), (3, 150), (6, 150)]
    final = tests[-1]
    pngs, scores, labels = classified(job, val150, tmp_path)
    ours = evaluate(scores, labels, class_names=["not-whale", "whale"])
    assert 0 < final.val_auc < 1 and 0 < final.val_accuracy < 1
    assert (final.val_auc, final.val_accuracy, final.recall) == (
        ours["val_auc"],
        ours["val_accuracy"],
        ours["recall"],
    )
    assert final.val_loss == pytest.approx(ours["val_loss"], rel=1e-5)
    # the report scores the same clips the same way (its table's AUC is the record's)
    val = Scorer().score(job)  # in the LMDB's (shuffled) order, each record named by its PNG
    assert sorted(val.names) == sorted(pngs)
    by_png = dict(zip(val.names, val.scores, strict=True))
    assert [by_png[p] for p in pngs] == list(scores[:, 1])
    # what Caffe's pass says: 200 scores in LMDB order, 50 records twice; its cursor goes on
    # between tests, so the third test (at 6) reads from record 2 × 200 mod 150 = 100
    wrap = (100 + np.arange(200)) % 150
    lmdb_order = np.c_[1 - val.scores, val.scores]
    wrapped = evaluate(lmdb_order[wrap], val.labels[wrap], class_names=["not-whale", "whale"])
    assert wrapped["val_auc"] != final.val_auc
    assert wrapped["val_accuracy"] != final.val_accuracy
    if engine_name == "caffe":  # Caffe's own figure is that wrapped one, kept apart
        logged = final.caffe_logged
        assert logged["accuracy"] == pytest.approx(wrapped["val_accuracy"], abs=1e-6)
        assert logged["loss"] == pytest.approx(wrapped["val_loss"], rel=1e-4)
    else:
        assert final.caffe_logged is None


def test_one_snapshot_scores_the_same_through_every_engine(val150, tmp_path):
    """The torch engine's record of its last test, and the same snapshot scored the way the
    caffe engine (pycaffe's TEST net) and the digits engine (the deploy net) score one."""
    from upcall.engines.digits.engine import _Remote
    from upcall.engines.digits.options import Options as DigitsOptions
    from upcall.job.spec import load_job
    from upcall.metrics import evaluate

    job = make_job(tmp_path / "job", val150 / "ds", max_iter=6, val_batch=100)
    get_engine("torch", threads=1).train(job)
    final = [r for r in read_metrics(job) if r.kind == "test"][-1]
    spec = load_job(job)
    snapshot = {6: spec.snapshot_path(6, ".caffemodel")}
    transports = {"digits": _Remote(spec, None, None, DigitsOptions())}
    if caffe_present():
        from upcall.engines.caffe.engine import _Run
        from upcall.engines.caffe.options import Options as CaffeOptions

        transports["caffe"] = _Run(spec, CaffeOptions())
    for name, transport in transports.items():
        scored = transport.score(snapshot)[6]
        scores, labels = spec.val_pass.keep(scored.scores, scored.labels)
        m = evaluate(scores, labels, class_names=list(spec.class_names))
        assert len(labels) == 150, name
        assert (m["val_auc"], m["val_accuracy"], m["recall"]) == (
            final.val_auc,
            final.val_accuracy,
            final.recall,
        ), name
        assert m["val_loss"] == pytest.approx(final.val_loss, rel=1e-5), name


def caffe_present() -> bool:
    """Whether real Caffe runs here (UPCALL_REQUIRE_CAFFE=1: it must)."""
    from upcall.engines.caffe import root

    try:
        root.require_caffe()
    except UpcallError:
        if os.environ.get("UPCALL_REQUIRE_CAFFE") == "1":
            raise
        return False
    return True


def test_status_new_resumable_done(tmp_path):
    from tests.engines.test_train import make_job as make_tiny_job
    from upcall.proto import caffe_pb2

    job = make_tiny_job(tmp_path)
    engine = get_engine("caffe")  # status needs no Caffe: it reads the job's files
    assert engine.status(job) is JobStatus.NEW
    (job / "snapshot_iter_3.solverstate").write_bytes(b"")  # a pair cut short: not resumable
    assert engine.status(job) is JobStatus.NEW
    state = caffe_pb2.SolverState(iter=3, learned_net="snapshot_iter_3.caffemodel")
    (job / "snapshot_iter_3.solverstate").write_bytes(state.SerializeToString())
    (job / "snapshot_iter_3.caffemodel").write_bytes(
        caffe_pb2.NetParameter(name="x").SerializeToString()
    )
    assert engine.status(job) is JobStatus.RESUMABLE
    (job / "summary.json").write_text("{}")
    assert engine.status(job) is JobStatus.DONE


def test_engine_flags_reach_only_their_engine(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "--caffe-bin" in help_text and "with --engine caffe" in help_text
    assert cli.main(["train", str(tmp_path), "--caffe-bin", "/bin/true"]) == 1
    assert "--caffe-bin is an option of --engine caffe, not torch" in capsys.readouterr().err
    assert cli.main(["train", str(tmp_path), "--threads", "0"]) == 1
    assert "--threads must be at least 1" in capsys.readouterr().err


def test_engines_and_job_spec_import_without_torch():
    code = (
        "import sys; import upcall.engines, upcall.job.spec, upcall.engines.loop, "
        "upcall.engines.caffe.engine, upcall.engines.torch.options, upcall.workflows.train; "
        "from upcall.engines import get_engine; get_engine('caffe'); "
        "import os; assert 'OMP_WAIT_POLICY' not in os.environ; print('torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "False", done.stderr


FAKE_CAFFE = """#!/bin/sh
# stands in for `caffe train`: records glog's settings, then logs as glog would without a prefix
env | grep ^GLOG_ | sort > "{out}"
echo "Iteration 0 (0 iter/s, 0s/2 iters), loss = 0.5"
echo "Iteration 0, lr = 0.01"
exit 0
"""


def test_caffe_sets_glog_for_its_child_and_fails_loudly_on_an_unreadable_log(
    dataset,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    env_file = tmp_path / "glog.txt"
    fake = tmp_path / "caffe"
    fake.write_text(FAKE_CAFFE.format(out=env_file))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    job = make_job(tmp_path / "job", dataset, max_iter=6)
    with (job / "solver.prototxt").open("a") as f:
        f.write("test_initialization: false\n")  # no pycaffe for the initial weights
    monkeypatch.setenv("GLOG_log_prefix", "0")
    monkeypatch.setenv("GLOG_minloglevel", "2")
    with pytest.raises(UpcallError, match=r"caffe_output.log: caffe train printed no glog line"):
        get_engine("caffe", caffe_bin=fake).train(job)
    glog = dict(line.split("=", 1) for line in env_file.read_text().split())
    assert glog["GLOG_log_prefix"] == "1" and glog["GLOG_minloglevel"] == "0"
    assert glog["GLOG_logtostderr"] == "1"
    assert not (job / "summary.json").exists()
