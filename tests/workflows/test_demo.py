"""Tests for upcall demo: the whole workflow, tiny, end to end, and a rerun that skips every step."""

from __future__ import annotations

import argparse
import json
import re

import pytest
from PIL import Image

from upcall.errors import UpcallError
from upcall.workflows import demo


def run(argv):
    parser = argparse.ArgumentParser()
    demo.configure(parser)
    return demo.run(parser.parse_args(argv))


def test_tiny_demo_end_to_end_then_rerun_skips(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [str(out), "--n-train", "100", "--n-test", "30", "--epochs", "1"]
    assert run([*argv, "--threads", "1"]) == 0
    job = out / "jobs" / "whalenet-lr0.01"
    summary = json.loads((job / "summary.json").read_text())
    assert summary["engine"] == "torch" and summary["network"] == "whalenet"
    assert summary["epochs"] >= 1.0 and summary["final"]["val_auc"] is not None
    for path in (out / "data" / "train" / "train1.png", job / "curves.png", out / "comparison.png"):
        with Image.open(path) as im:
            assert im.format == "PNG"
    assert (out / "dataset" / "dataset.json").exists() and (out / "report.csv").exists()
    page = (out / "report.html").read_text()  # the page `upcall report` writes
    assert '<td class="name">whalenet-lr0.01</td>' in page and "whale recall" in page
    printed = capsys.readouterr().out
    assert f"report:         {out / 'report.html'}" in printed
    assert f"curves:         {job / 'curves.png'}" in printed and "validation AUC:" in printed
    assert re.search(r"held-out test AUC: [01]\.\d{4} on 30 clips never used", printed)
    modified = (job / "summary.json").stat().st_mtime_ns
    assert run(argv) == 0
    assert (
        "6/8 training whalenet for 1 epochs (torch engine) (already done)"
        in capsys.readouterr().out
    )
    assert (job / "summary.json").stat().st_mtime_ns == modified
    # other settings over a finished demo: refused, naming the folder, nothing retrained
    with pytest.raises(
        UpcallError, match=re.escape(f"{out}: made by a demo with other settings (epochs 1")
    ):
        run([str(out), "--n-train", "100", "--n-test", "30", "--epochs", "2"])
    assert (job / "summary.json").stat().st_mtime_ns == modified


def test_result_line_with_an_undefined_auc():
    from upcall.job.records import Summary, TestRecord

    final = TestRecord(iter=4, epoch=1.0, val_loss=0.5, val_accuracy=0.75, val_auc=None)
    summary = Summary("torch", "n", 4, 1.0, 3.0, None, "cpu", 1, None, (), final, None)
    assert demo.result_line(summary) == (
        "validation AUC: n/a (accuracy 0.7500) after 1.00 epochs in 3 s"
    )


def test_demo_rejects_tiny_settings(tmp_path):
    with pytest.raises(UpcallError, match="--n-train must be at least 20"):
        run([str(tmp_path), "--n-train", "5"])
