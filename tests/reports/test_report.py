"""Tests for upcall.reports.report: the comparison table and plot from job directories."""

from __future__ import annotations

import argparse
import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from upcall import cli
from upcall.errors import UpcallError
from upcall.job.writer import JobWriter
from upcall.reports import report
from upcall.reports.report import make_report

NAMES = ["not-whale", "whale"]


def fake_job(root, name, *, lr, accs, rng, dataset=None, untrained_loss=None):
    job = root / name
    job.mkdir(parents=True)
    (job / "solver.prototxt").write_text(f'net: "train_val.prototxt"\nbase_lr: {lr}\n')
    config = {"network": name.split("-")[0], "base_lr": lr}
    (job / "config.json").write_text(json.dumps({**config, "dataset": dataset and str(dataset)}))
    w = JobWriter(job, class_names=NAMES)
    if untrained_loss is not None:  # an untrained net's first test, far above the rest
        labels = np.arange(20) % 2
        w.test(iter=0, epoch=0.0, val_loss=untrained_loss, scores=np.c_[labels * 0 + 0.5,
               labels * 0 + 0.5], labels=labels)  # fmt: skip
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


def test_a_job_not_started_is_listed_as_such_not_failed(tmp_path, rng, capsys):
    fake_job(tmp_path, "whalenet-lr0.01", lr=0.01, accs=[0.9], rng=rng)
    (tmp_path / "pending").mkdir()
    (tmp_path / "pending" / "solver.prototxt").write_text("base_lr: 0.1\n")
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "out"), "--no-html"]) == 0
    captured = capsys.readouterr()
    assert "pending: not started (not in the table)" in captured.out
    assert captured.err == ""  # nothing failed
    assert (tmp_path / "out" / "report.csv").read_text().count("\n") == 2

    # a finished job that cannot be read is a failure: reported, the rest compared, exit 1
    broken = fake_job(tmp_path, "broken-lr0.1", lr=0.1, accs=[0.9], rng=rng)
    (broken / "metrics.jsonl").write_text("not json\n")
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "out"), "--no-html"]) == 1
    captured = capsys.readouterr()
    assert "1 of 2 jobs failed" in captured.err and "pending: not started" in captured.out
    assert (tmp_path / "out" / "report.csv").read_text().count("\n") == 2


def test_jobs_of_two_datasets_get_unique_names_and_separate_answers(tmp_path, rng, capsys):
    for run, lists in (("runA", "listsA"), ("runB", "listsB")):
        dataset = tmp_path / run / "ds"
        dataset.mkdir(parents=True)
        manifest = {"image": {"height": 129, "width": 30, "channels": 1}, "size": "native",
                    "lists_dir": str(tmp_path / lists)}  # fmt: skip
        (dataset / "dataset.json").write_text(json.dumps(manifest))
        accs = [0.9] if run == "runA" else [0.6]
        fake_job(tmp_path / run / "jobs", "whalenet-lr0.01", lr=0.01, accs=accs, rng=rng,
                 dataset=dataset)  # fmt: skip
    argv = ["report", str(tmp_path / "runA" / "jobs"), str(tmp_path / "runB" / "jobs")]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 0
    table = list(csv.DictReader(open(tmp_path / "out" / "report.csv")))
    assert [(r["job"], r["dataset"]) for r in table] == [
        ("runA/jobs/whalenet-lr0.01", "runA/ds"),
        ("runB/jobs/whalenet-lr0.01", "runB/ds"),
    ]
    page = (tmp_path / "out" / "report.html").read_text()
    sections = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, re.S))
    assert {"the-1", "the-2", "best-1", "best-2"} <= set(sections)
    for i, (mine, other) in enumerate((("runA", "runB"), ("runB", "runA")), 1):
        answers = sections[f"the-{i}"]
        assert f"jobs validated on {tmp_path / ('lists' + mine[-1])}" in answers
        assert f"{mine}/jobs/whalenet-lr0.01" in answers and other not in answers
    # each validation set has its best row
    assert page.count('<tr class="best">') == 2


def test_loss_axis_off_scale_points_cut_and_marked_in_the_comparison(tmp_path, rng, monkeypatch):
    saved = {}
    monkeypatch.setattr(report, "save_png", lambda fig, path, **kw: saved.setdefault(path, fig))
    for lr, loss in ((0.01, 68.0), (0.001, 20.0)):
        fake_job(tmp_path / "jobs", f"whalenet-lr{lr}", lr=lr, accs=[0.6, 0.9], rng=rng,
                 untrained_loss=loss)  # fmt: skip
    assert cli.main(["report", str(tmp_path / "jobs"), "--no-html"]) == 0
    fig = saved[tmp_path / "jobs" / "comparison.png"]
    ax_loss = fig.axes[1]
    top = ax_loss.get_ylim()[1]
    assert top == pytest.approx(1.1 * 0.5)  # the trained tests' scale, not 68
    for line in ax_loss.get_lines():
        y = np.asarray(line.get_ydata(), float)
        assert not (y[np.isfinite(y)] > top).any()  # no stroke down from off the plot
    marks = [ln for ln in ax_loss.get_lines() if ln.get_marker() == "^"]
    assert sorted(ln.get_xydata().tolist()[0][1] for ln in marks) == [top, top]
    assert "val loss up to 68 at epoch 0: off scale" in ax_loss.get_title()
    assert not ax_loss.texts  # the note is in the title, where no line can cross it


def test_cli_report_and_empty_directory(tmp_path, rng, capsys):
    job = fake_job(tmp_path, "whalenet-lr0.01", lr=0.01, accs=[0.9], rng=rng)
    parser = argparse.ArgumentParser()
    report.configure(parser)
    assert report.run(parser.parse_args([str(job)])) == 0
    assert (tmp_path / "report.md").exists()  # a job given directly reports beside it
    (tmp_path / "empty").mkdir()
    with pytest.raises(UpcallError, match="holds no job directories"):
        make_report([tmp_path / "empty"], out=tmp_path)
