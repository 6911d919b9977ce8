"""``upcall report`` → report.html: a real tiny sweep, scored per clip, loaded in headless Chromium."""

from __future__ import annotations

import base64
import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.chromium import run_chromium
from upcall import cli
from upcall.errors import BatchReport
from upcall.reports.entries import Entry, questions
from upcall.reports.scores import ValScores, at_threshold, majority_accuracy, val_names
from upcall.workflows.sweep import write_jobs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two trained WhaleNet-small jobs, the classical baseline, and one job not yet trained."""
    from upcall.audio.synth import SynthSettings, synthesize
    from upcall.classical.baseline import BaselineSettings, train_baseline
    from upcall.classical.templates import BankSettings
    from upcall.data.dataset import DatasetSettings, build_dataset
    from upcall.data.lists import make_lists
    from upcall.data.listsfolder import ListSettings
    from upcall.data.render import ensure

    root = tmp_path_factory.mktemp("report_html")
    synthesize(root / "data", SynthSettings(n_train=120, seed=3), workers=1)
    ensure(root / "data", workers=1)
    make_lists(root / "data", out=root / "lists", settings=ListSettings(seed=3))
    build_dataset(root / "lists", out=root / "ds", settings=DatasetSettings(size=None, workers=1))
    jobs = root / "jobs"
    argv = ["sweep", "--dataset", str(root / "ds"), "--networks", "whalenet-small",
            "--lr", "0.001,0.01", "--epochs", "3", "--threads", "1", "--out", str(jobs)]  # fmt: skip
    assert cli.main(argv) == 0
    small = BaselineSettings(seed=5, bank=BankSettings(size=4, candidates=8, scoring_clips=30))
    train_baseline(root / "data", out=jobs / "baseline", lists=root / "lists", settings=small,
                   workers=1)  # fmt: skip
    return root


def test_report_html_in_chromium(sweep, tmp_path, capsys):
    jobs = sweep / "jobs"
    assert cli.main(["report", str(jobs)]) == 0
    page = (jobs / "report.html").read_text()
    assert 'http-equiv="refresh"' not in page  # every job finished
    assert page.count("<tr") == 1 + 3  # header, two networks, the baseline
    assert "whalenet-small: learning rate" in page
    assert "always answering not-whale scores" in page
    assert page.count("data:image/png;base64,") == 7  # see templates/report.html
    shot = tmp_path / "report.png"
    run = run_chromium(jobs / "report.html", tmp_path, screenshot=shot, size=(1200, 3000))
    assert run.console == [], run.console
    images = re.findall(r'data-loaded="(\d+)x(\d+)"', run.dom)
    assert len(images) == page.count("<img") and all(int(w) > 0 for w, _ in images)
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("L"))
    assert pixels.shape == (3000, 1200) and pixels.std() > 10  # not a blank page


def test_unfinished_job_refreshes_the_page(sweep, tmp_path, capsys):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "done").symlink_to(sweep / "jobs" / "whalenet-small-lr0.01", target_is_directory=True)
    write_jobs(sweep / "ds", networks=["whalenet-small"], lrs=[0.05], out=jobs,
               report=BatchReport("jobs"), epochs=1)  # fmt: skip
    # a job not started is no failure: the same words on stdout and on the page, exit 0
    assert cli.main(["report", str(jobs), "--threshold", "0.3"]) == 0
    captured = capsys.readouterr()
    assert "whalenet-small-lr0.05: not started (not in the table)" in captured.out
    assert "failed" not in captured.out + captured.err
    page = (jobs / "report.html").read_text()
    assert '<meta http-equiv="refresh" content="30">' in page
    assert re.search(
        r'<tr class="pending"><td class="name">whalenet-small-lr0.05</td>'
        r'<td class="name">whalenet-small</td><td class="name">not started</td>',
        page,
    )
    assert "whale recall ≥ 0.3" in page


def test_the_baseline_has_no_epochs_or_learning_rate(sweep, tmp_path, monkeypatch):
    from upcall.reports import report

    saved = {}
    monkeypatch.setattr(report, "save_png", lambda fig, path, **kw: saved.setdefault(path, fig))
    jobs = sweep / "jobs"
    assert cli.main(["report", str(jobs), "--out", str(tmp_path)]) == 0
    rows = {r["job"]: r for r in csv.DictReader(open(tmp_path / "report.csv"))}
    assert (rows["baseline"]["base_lr"], rows["baseline"]["epochs"]) == ("", "")
    assert rows["whalenet-small-lr0.01"]["base_lr"] == "0.01"
    ax_auc, ax_loss = saved[tmp_path / "comparison.png"].axes
    # not a dot at "epoch 1": a horizontal line across the AUC panel, nothing on the loss one
    (line,) = [ln for ln in ax_auc.get_lines() if ln.get_label().startswith("baseline")]
    assert line.get_label() == "baseline (no epochs)" and list(line.get_xdata()) == [0, 1]
    assert not [ln for ln in ax_loss.get_lines() if ln.get_label().startswith("baseline")]
    page = (tmp_path / "report.html").read_text()
    row = re.search(r'<tr[^>]*><td class="name">baseline</td>(.*?)</tr>', page).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[3:5] == ["–", "–"]  # base lr, epochs


def test_a_model_that_never_calls_a_whale_is_not_praised(sweep, tmp_path):
    from upcall.proto import array_to_blob, blob_to_array, caffe_pb2, read_binary

    jobs = tmp_path / "jobs"
    job = jobs / "whalenet-small-lr0.01"
    shutil.copytree(sweep / "jobs" / "whalenet-small-lr0.01", job)
    # its classifier's bias pushed 60 logits toward not-whale: it calls every clip not-whale
    snapshot = max(job.glob("snapshot_iter_*.caffemodel"), key=lambda p: int(p.stem[14:]))
    net = read_binary(snapshot, caffe_pb2.NetParameter())
    fc = [layer for layer in net.layer if layer.type == "InnerProduct"][-1]
    bias = blob_to_array(fc.blobs[1], where="bias")
    fc.blobs[1].CopyFrom(array_to_blob(bias + np.array([30, -30], np.float32)))
    snapshot.write_bytes(net.SerializeToString())
    assert cli.main(["report", str(jobs)]) == 0
    page = (jobs / "report.html").read_text()
    assert "0.0 % (never calls a whale)" in page  # the table's whale recall
    answers = re.search(r'<section id="the">(.*?)</section>', page, re.S).group(1)
    assert "never calls a whale at 0.5: its accuracy of" in answers
    assert "is the class balance, not skill" in answers
    assert "points against that" not in answers
    assert "1 of 1 scored jobs do no better than the majority answer" in answers


def test_search_folder_trials_and_figures(sweep, tmp_path):
    folder = tmp_path / "search"
    (folder / "trials").mkdir(parents=True)
    (folder / "figures").mkdir()
    (folder / "trials" / "t0").symlink_to(sweep / "jobs" / "whalenet-small-lr0.001")
    Image.new("RGB", (40, 30), "red").save(folder / "figures" / "importance.png")
    assert cli.main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert '<section id="search">' in page and "<h3>importance</h3>" in page
    assert "t0" in page


def test_val_names_replay_the_lmdb_shuffle(sweep):
    from upcall.data.datum import iter_db

    records = list(iter_db(sweep / "ds" / "val_db"))
    labels = np.array([label for _, _, label in records])
    names = val_names(sweep / "ds", [k for k, _, _ in records], labels)
    listed = dict(
        line.rsplit(" ", 1)
        for line in (sweep / "lists" / "val.txt").read_text().split("\n")
        if line
    )
    assert all(int(listed[n]) == lab for n, lab in zip(names, labels, strict=True))
    # a record's image is its PNG's image (native size: stored as is)
    first = np.asarray(Image.open(names[0]))
    assert np.array_equal(records[0][1][0], first)


def test_threshold_figures_and_majority():
    val = ValScores(
        labels=np.array([0, 0, 0, 1, 1]),
        scores=np.array([0.1, 0.6, 0.2, 0.9, 0.4]),
        class_names=("not-whale", "whale"),
        names=tuple("abcde"),
    )
    at = at_threshold(val, 0.5)
    assert at.confusion.tolist() == [[2, 1], [1, 1]]
    assert (at.recall, at.precision) == (0.5, 0.5)
    assert at_threshold(val, 0.95).precision is None  # nothing called a whale
    assert majority_accuracy(val.labels) == 0.6


def test_questions_without_finished_jobs():
    pending = Entry(Path("j"), "running", "alexnet", None)
    answers = dict(questions([pending], 0.5))
    assert answers["Which learning rate is best for each network?"] == [
        "no network job has finished"
    ]


def test_names_are_escaped_and_unfinished_jobs_are_grey_rows():
    from upcall.reports.html import render

    odd = '<img src=x onerror="alert(1)">'
    entries = [Entry(Path("jobs") / odd, "running", "alexnet", f"/data/{odd}", note="a & b")]
    page = render(entries, title=f"report of {odd}", threshold=0.25)
    assert "<img" not in page and 'onerror="' not in page
    escaped = "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"
    assert f"<title>report of {escaped}</title>" in page and f"<h3>/data/{escaped}</h3>" in page
    assert f'<tr class="pending"><td class="name">{escaped}</td>' in page
    assert f'<p class="note">{escaped}: a &amp; b</p>' in page
    assert '<meta http-equiv="refresh" content="30">' in page and "whale recall ≥ 0.25" in page
    assert "1 of 1 jobs not finished" in page


def test_watch_returns_once_every_job_has_finished(sweep, tmp_path, capsys):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "a").symlink_to(sweep / "jobs" / "whalenet-small-lr0.01", target_is_directory=True)
    assert cli.main(["report", str(jobs), "--watch", "0.01", "--no-html"]) == 1  # a usage error
    assert "--watch needs" in capsys.readouterr().err
    assert cli.main(["report", str(jobs), "--watch", "0.01"]) == 0
    assert (jobs / "report.html").exists()


def test_a_presence_section_from_upcall_presence(tmp_path, capsys):
    from datetime import UTC, datetime

    from upcall.audio.raven import Selection, write_table
    from upcall.reports.html import render
    from upcall.survey.effort import RecordingEffort, write_effort

    det = tmp_path / "det"
    start = datetime(2024, 3, 1, 22, 30, tzinfo=UTC)
    write_effort(det, [RecordingEffort("a.wav", "/r/a.wav", start, "GUANO", 7200.0),
                       RecordingEffort("b.wav", "/r/b.wav", None, "unknown", 60.0)])  # fmt: skip
    calls = [Selection(t, t + 1, 50.0, 250.0, "upcall", score=0.9) for t in (10, 1900, 5000)]
    write_table(det / "a.wav.detections.txt", calls, scores=True)
    write_table(det / "b.wav.detections.txt", calls[:1], scores=True)
    assert cli.main(["presence", str(det), "--out", str(tmp_path / "p")]) == 0
    page = render([Entry(Path("j"), "running", "alexnet", None)], title="t", threshold=0.5,
                  presence_dirs=[tmp_path / "p"])  # fmt: skip
    section = page[page.index('<section id="presence">') :]
    assert "<li>3 detections from detect folder" in section
    assert "2.00 h of audio; 2 of 3 recorded hours and 1 of 2 recorded days" in section
    assert "not placed on the clock (start unknown): 1 detections in b.wav" in section
    src = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="diel plot', section)
    assert src is not None
    assert base64.b64decode(src.group(1)) == (tmp_path / "p" / "diel.png").read_bytes()
    assert "grey: hours without recording" in section
    code = cli.main(["report", str(tmp_path), "--presence", str(tmp_path / "det")])
    assert code == 1 and "no presence.json" in capsys.readouterr().err
