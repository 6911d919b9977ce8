"""Tests for `upcall fit DATA --add-verified VERIFIED --recordings DIR` (--from, --init-weights):
retraining with a review's verdicts, on real clips, recordings and tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.workflows.test_fit import fit, listed, recipe_file
from upcall.audio import raven
from upcall.audio.clipscsv import read_clips_csv
from upcall.audio.synth import SynthSettings, synthesize
from upcall.job.records import read_summary


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    """DATA (Kaggle layout), recordings, and a review of detections on them as `upcall review`
    leaves it: VERIFIED/<rel>.selections.txt with Score, Verified and Note. The detections are
    the truth's sounds: up-calls marked yes, the other sounds no, the first up-call unsure."""
    from tests.recordings import annotated_recordings

    root = tmp_path_factory.mktemp("verified")
    data = synthesize(root / "data", SynthSettings(n_train=200, seed=1))
    survey = annotated_recordings(root / "survey")
    counts = {"yes": 0, "no": 0, "unsure": 0}
    for a in survey.recorded:
        rows, calls = [], 0
        for b in a.boxes:
            verdict = "yes" if b.label == "upcall" else "no"
            calls += verdict == "yes"
            verdict = "unsure" if calls == 1 and verdict == "yes" else verdict
            counts[verdict] += 1
            extra = (("Verified", verdict), ("Note", "checked"))
            rows.append(raven.Selection(b.begin_s, b.end_s, b.low_hz, b.high_hz, "upcall",
                                        score=0.9, extra=extra))  # fmt: skip
        raven.write_table(root / "verified" / f"{a.spec.rel}.selections.txt", rows, scores=True)
    return data, survey.recordings, root / "verified", counts


def test_add_verified_keeps_data_split_then_compares_and_fine_tunes(review, tmp_path, capsys):
    data, recordings, verified, counts = review
    recipe = recipe_file(tmp_path)
    run = tmp_path / "run"
    assert fit(data, run, recipe) == 0
    capsys.readouterr()
    run2 = tmp_path / "run2"
    more = ["--add-verified", str(verified), "--recordings", str(recordings)]
    assert fit(data, run2, recipe, *more, "--from", str(run)) == 0
    printed = capsys.readouterr().out
    origins = read_clips_csv(run2 / "verified-clips" / "clips.csv")
    hard = [o for o in origins if o.kind == "hard-negative"]
    # a no row each (but one overlapping a call, whose window cannot keep the guard from it)
    assert counts["no"] - 3 <= len(hard) <= counts["no"] and {o.label for o in hard} == {0}
    assert f"and {len(hard)} hard negatives at the detections a reviewer marked no" in printed
    # yes rows: a positive each; the unsure row: no clip
    assert sum(o.kind == "positive" for o in origins) == counts["yes"] and counts["unsure"] >= 1
    # DATA's clips validate as in the run on DATA alone; no verified recording on both sides
    before, after = listed(run / "lists"), listed(run2 / "lists")
    stems = {Path(o.clip_name).stem: o.rel for o in origins}
    own_val = [png for png, _ in after["val.txt"] if Path(png).stem not in stems]
    assert own_val == [png for png, _ in before["val.txt"]]
    sides = {
        name: {stems[Path(png).stem] for png, _ in rows if Path(png).stem in stems}
        for name, rows in after.items()
    }
    assert sides["train.txt"] and not sides["train.txt"] & sides["val.txt"]
    # --from: both models scored on the same validation clips
    table = json.loads((run2 / "comparison.json").read_text())["figures"]
    assert (
        table["all"]["before"]["clips"] == table["all"]["after"]["clips"] == len(after["val.txt"])
    )
    run_auc = read_summary(run / "jobs" / "whalenet-lr0.01").final.val_auc
    assert table["DATA"]["before"]["auc"] == pytest.approx(run_auc, abs=1e-6)  # RUN's own figure
    assert re.search(r"all \(\d+\) +auc +(n/a|[01]\.\d{4}) +(n/a|[01]\.\d{4})", printed)
    # a rerun does nothing again
    assert fit(data, run2, recipe, *more) == 0
    assert re.search(r"5/5 training.*\(already done\)", capsys.readouterr().out)
    # --init-weights: RUN's latest snapshot, recorded in config.json; a rerun without is refused
    run3 = tmp_path / "run3"
    assert fit(data, run3, recipe, *more, "--init-weights", str(run)) == 0
    job = run3 / "jobs" / "whalenet-lr0.01"
    weights = sorted((run / "jobs" / "whalenet-lr0.01").glob("*.caffemodel"))[-1]
    assert json.loads((job / "config.json").read_text())["init_weights"] == str(weights)
    capsys.readouterr()
    assert fit(data, run3, recipe, *more) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "verified.json: " in err[0] and "init_weights" in err[0]


def test_from_without_add_verified_is_one_line(review, tmp_path, capsys):
    data = review[0]
    assert fit(data, tmp_path / "out", recipe_file(tmp_path), "--from", str(tmp_path)) == 1
    assert capsys.readouterr().err.strip() == (
        "upcall fit: error: --from and --init-weights go with --add-verified"
    )
