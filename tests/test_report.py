"""Tests for upcall.results.report: the comparison table and plot from job directories."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest
from PIL import Image

from upcall.errors import BatchFailed, UpcallError
from upcall.results import report
from upcall.results.jobdir import JobWriter
from upcall.results.report import make_report

NAMES = ["not-whale", "whale"]


def fake_job(root, name, *, lr, accs, rng):
    job = root / name
    job.mkdir(parents=True)
    (job / "solver.prototxt").write_text(f'net: "train_val.prototxt"\nbase_lr: {lr}\n')
    (job / "config.json").write_text(json.dumps({"network": name.split("-")[0], "base_lr": lr}))
    w = JobWriter(job, class_names=NAMES)
    for i, acc in enumerate(accs, 1):
        w.train(iter=10 * i, epoch=float(i), lr=lr, loss=1.0 / i)
        labels = np.arange(20) % 2
        correct = np.arange(20) < round(acc * 20)
        p = np.where(correct, labels, 1 - labels) * 0.8 + 0.1
        w.test(iter=10 * i, epoch=float(i), val_loss=0.5 / i, scores=np.c_[1 - p, p], labels=labels)
    w.finish(
        engine="torch",
        network=name.split("-")[0],
        iterations=10 * len(accs),
        epochs=float(len(accs)),
        wall_seconds=12.5,
        train_images_per_second=800.0,
        device="cpu",
        threads=1,
        resumed_from=None,
        snapshots=(),
    )
    return job


def test_report_table_csv_markdown_and_plot(tmp_path, rng, capsys):
    fake_job(tmp_path / "jobs", "whalenet-lr0.01", lr=0.01, accs=[0.6, 0.9, 0.8], rng=rng)
    fake_job(tmp_path / "jobs", "alexnet-lr0.001", lr=0.001, accs=[0.5, 0.7], rng=rng)
    rows = make_report([tmp_path / "jobs"], out=tmp_path / "out")
    assert [r.job for r in rows] == ["alexnet-lr0.001", "whalenet-lr0.01"]
    w = rows[1]
    assert (w.network, w.base_lr, w.epochs) == ("whalenet", 0.01, 3.0)
    assert (w.final_accuracy, w.best_accuracy) == (0.8, 0.9)
    assert (w.final_loss, w.best_loss) == (pytest.approx(0.5 / 3), 0.5 / 3)
    table = list(csv.DictReader(open(tmp_path / "out" / "report.csv")))
    assert table[1]["best_accuracy"] == "0.9" and table[0]["images_per_second"] == "800.0"
    md = (tmp_path / "out" / "report.md").read_text().splitlines()
    assert md[0].startswith("| job | network |") and len(md) == 4
    with Image.open(tmp_path / "out" / "comparison.png") as im:
        assert im.format == "PNG"
    assert "whalenet-lr0.01" in capsys.readouterr().out


def test_untrained_job_is_reported_and_the_rest_still_compared(tmp_path, rng):
    fake_job(tmp_path, "whalenet-lr0.01", lr=0.01, accs=[0.9], rng=rng)
    (tmp_path / "pending").mkdir()
    (tmp_path / "pending" / "solver.prototxt").write_text("base_lr: 0.1\n")
    with pytest.raises(BatchFailed, match="1 of 2 jobs failed"):
        make_report([tmp_path], out=tmp_path / "out")
    assert (tmp_path / "out" / "report.csv").read_text().count("\n") == 2


def test_cli_report_and_empty_directory(tmp_path, rng, capsys):
    job = fake_job(tmp_path, "whalenet-lr0.01", lr=0.01, accs=[0.9], rng=rng)
    parser = argparse.ArgumentParser()
    report.configure(parser)
    assert report.run(parser.parse_args([str(job)])) == 0
    assert (tmp_path / "report.md").exists()  # a job given directly reports beside it
    (tmp_path / "empty").mkdir()
    with pytest.raises(UpcallError, match="holds no job directories"):
        make_report([tmp_path / "empty"], out=tmp_path)
