"""``--engine digits`` end to end against ``upcall digits serve`` (make_app, on a free port):
a tiny job trained there comes back as a job folder that ``report`` and ``classify`` read."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from tests.engines.test_engines import classified, schema_fields
from upcall import cli
from upcall.digits.client import DigitsClient
from upcall.engines import get_engine
from upcall.engines.digits.record import DigitsRecord
from upcall.metrics import evaluate
from upcall.network.phase import filter_net
from upcall.proto import caffe_pb2

ROOT = Path(__file__).resolve().parents[3]
pytest.importorskip("flask")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from upcall.audio.synth import SynthSettings, synthesize
    from upcall.data.dataset import DatasetSettings, build_dataset
    from upcall.data.lists import make_lists
    from upcall.data.listsfolder import ListSettings
    from upcall.data.render import ensure

    root = tmp_path_factory.mktemp("digits-engine")
    synthesize(root / "data", SynthSettings(n_train=40, seed=5), workers=1)
    ensure(root / "data", workers=1)
    make_lists(root / "data", out=root / "lists", settings=ListSettings(seed=5))
    build_dataset(root / "lists", out=root / "ds", settings=DatasetSettings(size=None, workers=1))
    return root


@pytest.fixture(scope="module")
def server(dataset, tmp_path_factory):
    from werkzeug.serving import make_server

    from upcall.digits_server.app import make_app

    # the data's folder is the server's --data-root, as when it is started there
    app = make_app(tmp_path_factory.mktemp("digits-jobs"), engine="torch", data_roots=[dataset])
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    app.extensions["upcall_digits"].shutdown()


def make_job(dataset: Path, out: Path) -> Path:
    argv = ["nets", "--dataset", str(dataset / "ds"), "--networks", "whalenet-small"]
    assert cli.main([*argv, "--lr", "0.01", "--epochs", "1", "--seed", "1", "--out", str(out)]) == 0
    return out / "whalenet-small-lr0.01"


def test_custom_network_follows_digits_rules(dataset, tmp_path):
    from upcall.digits.fields import custom_network
    from upcall.job.spec import load_job

    net = caffe_pb2.NetParameter()
    from google.protobuf import text_format

    text_format.Merge(custom_network(load_job(make_job(dataset, tmp_path))), net)
    for layer in net.layer:
        if layer.type == "Data":
            assert not layer.data_param.source and not layer.data_param.HasField("backend")
            assert not layer.transform_param.mean_file
    deploy = filter_net(net, phase=caffe_pb2.TEST, stages=["deploy"])
    assert [x.type for x in deploy.layer if x.type in ("Softmax", "SoftmaxWithLoss", "Data")] == [
        "Softmax"
    ]
    fc = [x for x in net.layer if x.type == "InnerProduct"][-1]
    assert fc.inner_product_param.num_output == 2


def test_train_report_classify_through_digits(dataset, server, tmp_path, capsys):
    job = make_job(dataset, tmp_path / "jobs")
    url = ["--engine", "digits", "--digits-url", server]
    assert cli.main(["train", str(job), *url]) == 0
    record = DigitsRecord.require(job)
    assert record.model_id and record.dataset_id and record.status == "Done"
    records = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} == {"train", "test"}
    assert json.loads((job / "summary.json").read_text())["engine"] == "digits"
    assert (job / "digits" / "deploy.prototxt").is_file()
    tests = [r for r in records if r["kind"] == "test"]
    # DIGITS's figures (Caffe's wrapped test pass) only as what they are; ours, each validation
    # clip once, from each fetched snapshot (iteration 0 has none: DIGITS keeps no weights of it)
    assert tests and all(r["caffe_logged"]["accuracy"] is not None for r in tests)
    assert tests[0]["iter"] == 0 and tests[0]["val_accuracy"] is None
    pngs, scores, labels = classified(job, dataset, tmp_path)
    ours = evaluate(scores, labels, class_names=["not-whale", "whale"])
    final = tests[-1]
    assert final["clips"] == len(pngs)
    assert (final["val_auc"], final["val_accuracy"], final["recall"]) == (
        ours["val_auc"],
        ours["val_accuracy"],
        ours["recall"],
    )
    # the same records and summary fields as a job the torch engine trained here
    local = make_job(dataset, tmp_path / "local")
    get_engine("torch", threads=1).train(local)
    assert schema_fields(job) == schema_fields(local)
    # A create whose answer was lost (no id recorded), then a resumed sweep: the job is found by
    # name on the server, its results fetched again, and nothing is submitted twice.
    DigitsRecord(url=record.url, model_name=record.model_name).write(job)
    (job / "summary.json").unlink()
    sweep = ["sweep", "--dataset", str(dataset / "ds"), "--networks", "whalenet-small"]
    sweep += ["--lr", "0.01", "--epochs", "1", "--seed", "1", "--out", str(job.parent), *url]
    assert cli.main(sweep) == 0
    assert DigitsRecord.require(job).model_id == record.model_id
    assert (job / "summary.json").is_file()
    models = DigitsClient(server).index()["models"]
    assert [m["id"] for m in models] == [record.model_id]
    capsys.readouterr()
    assert cli.main(["report", str(job.parent)]) == 0
    assert "whalenet-small-lr0.01" in capsys.readouterr().out
    png = next((dataset / "data" / "train").glob("*.png"))
    assert cli.main(["classify", str(job), str(png)]) == 0
    assert re.search(r"whale", capsys.readouterr().out)


def test_cli_submits_request_files_classifies_aborts_deletes(dataset, server, tmp_path, capsys):
    lists = dataset / "lists"
    (tmp_path / "ds.toml").write_text(
        'dataset_name = "whale_native"\nmethod = "textfile"\n'
        f'textfile_train_images = "@{lists / "train.txt"}"\ntextfile_use_val = true\n'
        f'textfile_val_images = "@{lists / "val.txt"}"\n'
        f'textfile_labels_file = "@{lists / "labels.txt"}"\n'
        "resize_channels = 1\nresize_width = 30\nresize_height = 129\n"
    )
    (tmp_path / "model.toml").write_text(
        'model_name = "wn"\ndataset = "whale_native"\nmethod = "custom"\nframework = "caffe"\n'
        f'custom_network = "<{ROOT / "digits_jobs" / "whalenet.prototxt"}"\n'
        "train_epochs = 1\nlearning_rate = [0.01, 0.001]\nrandom_seed = 1\nbatch_size = 16\n"
    )
    url = ["--digits-url", server]
    assert cli.main(["digits", "submit", str(tmp_path / "ds.toml"), "--wait", *url]) == 0
    assert cli.main(["digits", "submit", str(tmp_path / "model.toml"), "--wait", *url]) == 0
    out = capsys.readouterr().out
    ids = re.findall(r"^(\d{8}-\d{6}-[0-9a-f]{4})  Done\s*$", out, re.M)
    assert len(ids) == 3  # the dataset, then one model per learning rate
    assert "wn learning_rate:0.001" in out
    png = next((dataset / "data" / "train").glob("*.png"))
    assert cli.main(["digits", "classify", ids[1], str(png), *url]) == 0
    assert re.search(r": (not-whale|whale) \d+\.\d\d%, ", capsys.readouterr().out)
    assert cli.main(["digits", "classify", ids[1], str(png), "--server-paths", *url]) == 0
    assert str(png) in capsys.readouterr().out
    assert cli.main(["digits", "abort", ids[1], *url]) == 1  # done: DIGITS answers 403
    assert "HTTP 403" in capsys.readouterr().err
    assert cli.main(["digits", "delete", ids[1], *url]) == 0
    assert cli.main(["digits", "status", ids[1], *url]) == 1
    assert "Job not found." in capsys.readouterr().err


def test_job_and_dataset_as_digits_fields(dataset, tmp_path):
    from upcall.digits.fields import dataset_fields, model_fields
    from upcall.job.spec import load_job

    spec = load_job(make_job(dataset, tmp_path))
    fields = model_fields(spec, name="m", dataset_id="20260101-000000-0001", gpu=None)
    expected = {
        "dataset": "20260101-000000-0001",
        "model_name": "m",
        "method": "custom",
        "framework": "caffe",
        "train_epochs": 1,
        "learning_rate": 0.01,
        "solver_type": "SGD",
        "lr_policy": "step",
        "random_seed": 1,
        "use_mean": "image",
        "select_gpu": "next",
    }
    assert {k: fields[k] for k in expected} == expected
    assert "batch_size" not in fields  # the custom net's own batch sizes stand
    local, files = dataset_fields(dataset / "ds", name="d", local=True)
    assert files == {} and local["textfile_local_train_images"] == str(
        dataset / "lists" / "train.txt"
    )
    assert (local["resize_width"], local["resize_height"], local["resize_channels"]) == (30, 129, 1)
    assert local["textfile_use_val"] is True and local["textfile_use_local_files"] is True
    uploads, files = dataset_fields(dataset / "ds", name="d")
    assert sorted(files) == ["textfile_labels_file", "textfile_train_images", "textfile_val_images"]
    assert uploads["textfile_use_local_files"] is False  # left out of the form: false


def test_run_sweep_script_with_the_digits_engine(dataset, server, tmp_path):
    """The tutorial's sweep door, scripts/run_sweep.py, trains through a DIGITS server."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    argv = [sys.executable, str(root / "scripts" / "run_sweep.py"), "--dataset", str(dataset / "ds")]
    argv += ["--networks", "whalenet-small", "--lr", "0.02", "--epochs", "1", "--seed", "2"]
    argv += ["--out", str(tmp_path / "jobs"), "--engine", "digits", "--digits-url", server]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr
    job = tmp_path / "jobs" / "whalenet-small-lr0.02"
    assert json.loads((job / "summary.json").read_text())["engine"] == "digits"
    assert DigitsRecord.require(job).status == "Done"
