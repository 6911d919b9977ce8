"""Tests for upcall.classical: `upcall baseline` end to end on real synthetic clips, the job
folder's contracts, determinism, report and classify on the job, bad inputs."""

from __future__ import annotations

import csv
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from upcall import cli
from upcall.audio.synth import SynthSettings, synthesize
from upcall.classical.baseline import BaselineSettings, train_baseline
from upcall.classical.features import FeatureSettings, clip_features, feature_names
from upcall.classical.model import ClassicalModel
from upcall.classical.templates import BankSettings
from upcall.data.lists import make_lists
from upcall.data.listsfolder import ListSettings
from upcall.errors import UpcallError
from upcall.inference import load_model
from upcall.inference.classify import classify
from upcall.job.config import JobConfig
from upcall.job.records import Summary, TestRecord, TrainRecord, read_metrics
from upcall.reports.report import make_report

# small enough for a test, large enough that the ranking of candidates means something
SMALL = BaselineSettings(seed=5, bank=BankSettings(size=6, candidates=16, scoring_clips=150))


def scores(job: Path) -> list[dict]:
    with open(job / "val_scores.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def easy(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("easy") / "data"
    synthesize(data, SynthSettings(n_train=600, n_test=0, seed=3, difficulty="easy"))
    return data


@pytest.fixture(scope="module")
def job(easy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jobs") / "baseline"
    train_baseline(easy, out=out, settings=SMALL)  # no lists yet: it makes DATA/lists
    return out


def test_the_job_folder_holds_every_contract_file(job, easy):
    config = JobConfig.require(job)
    assert config.network == "baseline" and config.seed == 5
    assert config.network_source["kind"] == "classical"
    assert config.network_source["data_dir"] == str(easy.resolve())
    assert len(config.network_source["templates"]) == 6
    records = read_metrics(job)
    assert [type(r) for r in records] == [TrainRecord, TestRecord]
    test = records[-1]
    assert test.val_auc is not None and test.val_loss is not None
    assert set(test.recall) == {"not-whale", "whale"}
    summary = Summary.require(job)
    assert (summary.engine, summary.network) == ("classical", "baseline")
    assert summary.final == test and summary.best.val_auc == test.val_auc
    bank = np.load(job / "templates.npy")
    assert bank.shape == (6, 2, *FeatureSettings().template_shape) and bank.dtype == np.float32
    model = pickle.loads((job / "model.pkl").read_bytes())
    assert model.n_features_in_ == len(feature_names(6, FeatureSettings()))
    for name in ("curves.png", "train.log"):
        assert (job / name).stat().st_size > 0
    assert not [p for p in job.parent.iterdir() if p.name.startswith(".")]  # no temporaries


def test_validation_auc_is_far_above_chance_on_easy_data(job, easy):
    rows = scores(job)
    val = (easy / "lists" / "val.txt").read_text().splitlines()
    assert len(rows) == len(val) == 60
    assert {r["label"] for r in rows} == {"0", "1"}
    assert read_metrics(job)[-1].val_auc > 0.85


def test_the_same_seed_gives_the_same_scores(job, easy, tmp_path):
    again = train_baseline(easy, out=tmp_path / "again", settings=SMALL)
    assert scores(tmp_path / "again") == scores(job)
    assert again.final == Summary.require(job).final
    assert np.array_equal(
        np.load(tmp_path / "again" / "templates.npy"), np.load(job / "templates.npy")
    )


def test_report_lists_it_beside_other_jobs(job, tmp_path, capsys):
    rows = make_report([job], out=tmp_path)
    assert [(r.network, r.engine) for r in rows] == [("baseline", "classical")]
    assert rows[0].final_auc == read_metrics(job)[-1].val_auc
    assert "baseline" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "comparison.png").exists()


def test_classify_gives_the_validation_score_of_a_clip(job, easy, capsys):
    wanted = scores(job)[:5]
    rows = classify(job, [easy / r["clip"] for r in wanted])
    assert [r["whale"] for r in rows] == [float(r["score"]) for r in wanted]
    assert all(r["label"] in ("not-whale", "whale") for r in rows)
    assert cli.main(["classify", str(job), str(easy / wanted[0]["clip"])]) == 0
    assert f"whale={float(wanted[0]['score']):.4f}" in capsys.readouterr().out


def test_features_of_a_clip_do_not_depend_on_its_neighbours(job, easy):
    model = ClassicalModel.load(job)
    from upcall.audio.clip import read_clip

    samples = read_clip(easy / "train" / "train1.aiff")
    one = clip_features(samples, model.bank, model.settings)
    assert np.array_equal(one, clip_features(samples.copy(), model.bank, model.settings))


def test_a_png_input_is_a_one_line_error(job, easy, capsys):
    png = easy / "train" / "train1.png"  # made by `upcall lists`
    assert png.exists()
    assert cli.main(["classify", str(job), str(png)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classifies audio clips" in err[0] and str(png) in err[0]


def test_the_network_interface_refuses_it_clearly(job):
    model = load_model(job)
    assert (model.kind, model.input_spec, model.positive_class) == ("classical", None, "whale")
    with pytest.raises(UpcallError, match="classifies audio clips, not spectrogram images"):
        model.probabilities(np.zeros((1, 1, 4, 4), np.uint8))
    with pytest.raises(UpcallError, match="baseline cannot detect"):
        model.check_windows()
    with pytest.raises(UpcallError, match="snapshots"):
        classify(job, [job], snapshot=1)


def test_cli_on_lists_elsewhere_reports_a_bad_clip_and_skips_it(tmp_path, capsys):
    data, root, lists = tmp_path / "data", tmp_path / "pngs", tmp_path / "lists"
    synthesize(data, SynthSettings(n_train=200, n_test=0, seed=4))  # the default difficulty
    make_lists(data, out=lists, settings=ListSettings(spectrogram_root=root))
    png, _ = (lists / "val.txt").read_text().splitlines()[0].rsplit(" ", 1)
    bad = data / Path(png).relative_to(root).with_suffix(".aiff")
    bad.write_bytes(bad.read_bytes()[:300])  # cut short after the lists were made
    out = tmp_path / "job"
    argv = ["baseline", str(data), "--out", str(out), "--lists", str(lists), "--templates", "4"]
    assert cli.main(argv) == 1  # BatchFailed: the job is written, the bad clip named
    err = capsys.readouterr().err
    assert err.count(f"{bad}:") == 1 and "1 of 200 clips failed" in err
    assert len(scores(out)) == 19 and bad.name not in {Path(r["clip"]).name for r in scores(out)}
    assert Summary.require(out).engine == "classical"
    assert cli.main(argv) == 1 and "--force" in capsys.readouterr().err  # not overwritten


def test_a_model_from_another_scikit_learn_is_a_one_line_error(job, tmp_path):
    import shutil

    copy = tmp_path / "baseline"
    shutil.copytree(job, copy)
    (copy / "model.pkl").write_bytes(b"csklearn.no_such_module\nGone\n.")  # pickle: a lost class
    with pytest.raises(UpcallError) as e:
        ClassicalModel.load(copy)
    message = str(e.value)
    assert "\n" not in message and "model.pkl" in message and "scikit-learn" in message
    assert JobConfig.read(copy).network_source["sklearn"] in message


def test_a_job_of_the_older_features_is_a_one_line_error_naming_the_rerun(job, tmp_path):
    import json
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(job, copy)
    config = json.loads((copy / "config.json").read_text())
    del config["network_source"]["features"]["version"]  # as the first version wrote it
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(UpcallError) as e:
        ClassicalModel.load(copy)
    message = str(e.value)
    assert "\n" not in message and "version 1" in message and "upcall baseline" in message


def test_template_correlation_is_skimages_match_template(easy):
    """One matrix product for all templates gives match_template's maxima and positions,
    including its zero where a window is flat (a constant patch of the image)."""
    from skimage.feature import match_template

    from upcall.audio.clip import read_clip
    from upcall.classical.features import enhance, log_power, match, one_thread

    s = FeatureSettings()
    clips = sorted((easy / "train").glob("*.aiff"))[:24]
    images = [enhance(log_power(read_clip(p)), s) for p in clips]
    h, w = s.template_shape
    bank = np.stack(
        [
            im[0][r : r + h, c : c + w]
            for im, r, c in zip(images[:8], range(8), range(0, 32, 4), strict=True)
        ]
    )
    flat = images[8][0].copy()
    flat[:, :30] = 1.5  # every window in the left half is flat: no correlation defined there
    for image in [flat] + [im for pair in images[9:] for im in pair]:
        with one_thread():
            got = match(image, bank)
        for k, template in enumerate(bank):
            ncc = match_template(image, template)
            r, c = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
            assert (got[k, 1], got[k, 2]) == (r, c)
            assert abs(got[k, 0] - ncc[r, c]) <= 1e-5


def test_the_command_writes_progress_lines_to_a_log(easy, tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, UPCALL_PROGRESS="lines:0")
    out = tmp_path / "baseline"
    cmd = [sys.executable, "-m", "upcall", "baseline", str(easy), "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--templates", "4"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    # each step a line per few percent, then its total: the candidates ranked on the training
    # clips left (540 less 48), the features of all 600
    for step, n in (("templates", 492), ("features", 600)):
        assert re.search(rf"^{step}: \d+% \(\d+/{n} clips\), .* ETA ", done.stderr, re.M)
        assert f"\n{step}: {n}/{n} clips done in " in done.stderr, done.stderr


def test_clips_at_8khz_with_resample(tmp_path, capsys):
    import soundfile
    from scipy.signal import resample_poly

    source, data = tmp_path / "source", tmp_path / "data"
    synthesize(source, SynthSettings(n_train=60, n_test=0, seed=4, difficulty="easy"))
    (data / "train").mkdir(parents=True)
    (data / "train.csv").write_text((source / "train.csv").read_text())
    for clip in (source / "train").glob("*.aiff"):
        samples, rate = soundfile.read(clip)
        soundfile.write(data / "train" / clip.name, resample_poly(samples, 4, 1), 4 * rate)
    argv = ["baseline", str(data), "--out", str(tmp_path / "job"), "--templates", "2"]
    assert cli.main(argv) == 1
    assert "sample rate 8000 Hz, expected 2000 Hz (--resample" in capsys.readouterr().err
    assert cli.main([*argv, "--resample"]) == 0
    read = JobConfig.read(tmp_path / "job").network_source["read"]
    assert read == {"resample": True, "mixdown": False, "fit": "strict"}
