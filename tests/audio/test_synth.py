"""``upcall synth``: format, layout, labels, leakage, determinism, resume and bad input."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import soundfile as sf

from upcall import cli
from upcall.audio import synth
from upcall.audio.synth import SynthSettings, synthesize
from upcall.errors import UpcallError

N_TRAIN, N_TEST = 2000, 30


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    return synthesize(out, SynthSettings(n_train=N_TRAIN, n_test=N_TEST, seed=7), workers=2)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _files(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_clip_format_soundfile_and_aifc(data):
    for name in ("train1.aiff", f"train{N_TRAIN}.aiff", "test3.aiff"):
        path = data / ("test" if name.startswith("test") else "train") / name
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate, info.frames, info.channels) == (
            "AIFF",
            "PCM_16",
            2000,
            4000,
            1,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # aifc: deprecated in 3.11
            aifc = pytest.importorskip("aifc")  # removed from the stdlib in 3.13

            with aifc.open(str(path)) as f:
                params = f.getparams()
                raw = f.readframes(params.nframes)
        assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (
            1,
            2,
            2000,
            4000,
        )
        samples, _ = sf.read(path, dtype="int16")
        np.testing.assert_array_equal(np.frombuffer(raw, ">i2"), samples)


def test_layout_and_csvs(data):
    rows = _rows(data / "train.csv")
    assert rows[0] == ["clip_name", "label"]
    assert [r[0] for r in rows[1:]] == [f"train{i}.aiff" for i in range(1, N_TRAIN + 1)]
    assert {r[1] for r in rows[1:]} == {"0", "1"}
    assert sorted(p.name for p in (data / "train").iterdir()) == sorted(r[0] for r in rows[1:])
    truth = _rows(data / "test_truth.csv")
    assert [r[0] for r in truth[1:]] == [f"test{i}.aiff" for i in range(1, N_TEST + 1)]
    assert sorted(p.name for p in (data / "test").iterdir()) == sorted(r[0] for r in truth[1:])
    # test labels live only in test_truth.csv
    assert not any(r[0].startswith("test") for r in rows)
    assert sorted(p.name for p in data.iterdir()) == [
        ".upcall-made",  # the mark that lets a later --force rewrite it
        "synth.json",
        "test",
        "test_truth.csv",
        "train",
        "train.csv",
    ]
    assert json.loads((data / "synth.json").read_text())["seed"] == 7


def test_positive_rate_is_exact(data):
    labels = [int(r[1]) for r in _rows(data / "train.csv")[1:]]
    assert sum(labels) == round(N_TRAIN * 0.234)


def test_levels_span_the_range_and_are_label_independent(data):
    rows = _rows(data / "train.csv")[1:301]
    peaks = np.array([np.abs(sf.read(data / "train" / r[0])[0]).max() for r in rows])
    labels = np.array([int(r[1]) for r in rows])
    assert 0.0095 < peaks.min() < 0.03 and 0.6 < peaks.max() <= 1.0
    # log-uniform peaks: the class medians differ by chance alone (a few tenths of a decade)
    assert (
        abs(np.median(np.log10(peaks[labels == 1])) - np.median(np.log10(peaks[labels == 0]))) < 0.3
    )


def _leak_auc(features, labels):
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.tree import DecisionTreeClassifier

    model = DecisionTreeClassifier(max_depth=4, min_samples_leaf=50, random_state=0)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")[:, 1]
    return roc_auc_score(labels, scores)


def test_no_label_leakage_in_size_name_or_order(data):
    rows = _rows(data / "train.csv")[1:]
    labels = np.array([int(r[1]) for r in rows])
    sizes = np.array([(data / "train" / r[0]).stat().st_size for r in rows])
    numbers = np.array([int(r[0][len("train") : -len(".aiff")]) for r in rows])
    features = np.column_stack([sizes, numbers, np.arange(len(rows))])
    assert len(set(sizes)) == 1
    # Under no leakage the AUC's standard deviation is sqrt((n1+n0+1)/(12·n1·n0)) = 0.015 for
    # 468 vs 1532 clips; 0.065 is over 4 of them (cross-validation adds a little spread).
    assert abs(_leak_auc(features, labels) - 0.5) < 0.065
    # The check has teeth: names that follow the label are caught.
    leaky = np.column_stack([sizes, np.argsort(np.argsort(labels, kind="stable")), numbers])
    assert _leak_auc(leaky, labels) > 0.95


def test_in_memory_clips_equal_written_files(data):
    labels = [int(r[1]) for r in _rows(data / "train.csv")[1:6]]
    clips = synth.make_clips(7, labels)
    for i, clip in enumerate(clips, start=1):
        np.testing.assert_array_equal(
            sf.read(data / "train" / f"train{i}.aiff", dtype="int16")[0], clip
        )


def test_deterministic_and_independent_of_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CHUNK", 8)  # several chunks, so two workers really split them
    settings = SynthSettings(n_train=40, n_test=5, seed=3)
    one = synthesize(tmp_path / "one", settings, workers=1)
    two = synthesize(tmp_path / "two", settings, workers=2)
    for part in ("train", "test"):
        assert _files(one / part) == _files(two / part)
    assert (one / "train.csv").read_bytes() == (two / "train.csv").read_bytes()
    other = synthesize(tmp_path / "other", SynthSettings(n_train=40, n_test=5, seed=4), workers=1)
    differ = [
        name
        for name, b in _files(one / "train").items()
        if b != (other / "train" / name).read_bytes()
    ]
    assert len(differ) == 40


def test_resume_skips_finished_clips(tmp_path):
    settings = SynthSettings(n_train=20, seed=1)
    out = synthesize(tmp_path / "d", settings, workers=1)
    before = _files(out / "train")
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    for name in ("train2.aiff", "train17.aiff"):  # as if interrupted before these were written
        (out / "train" / name).unlink()
    (out / "train.csv").unlink()
    (out / "train" / "train5.aiff").write_bytes(b"kept: a finished clip is not rewritten")
    synthesize(out, settings, workers=1)
    after = _files(out / "train")
    assert after["train5.aiff"] == b"kept: a finished clip is not rewritten"
    del before["train5.aiff"], after["train5.aiff"]
    assert after == before
    assert (out / "train.csv").exists()
    unchanged = [n for n, t in mtimes.items() if (out / "train" / n).stat().st_mtime_ns == t]
    assert len(unchanged) == 17  # all but the two re-made and the one overwritten above


def test_other_settings_refused_unless_forced(tmp_path):
    out = synthesize(tmp_path / "d", SynthSettings(n_train=12, n_test=2, seed=1), workers=1)
    with pytest.raises(UpcallError, match=r"synth\.json.*seed"):
        synthesize(out, SynthSettings(n_train=12, n_test=2, seed=2), workers=1)
    (out / "train" / ".train3.aiff.999.tmp.aiff").write_bytes(b"left by a killed run")
    synthesize(out, SynthSettings(n_train=5, seed=2), workers=1, force=True)
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        f"train{i}.aiff" for i in range(1, 6)
    ]
    assert list((out / "test").iterdir()) == [] and not (out / "test_truth.csv").exists()
    assert json.loads((out / "synth.json").read_text())["seed"] == 2


def test_difficulty_is_recorded_and_another_refused(tmp_path, capsys):
    assert cli.main(["synth", str(tmp_path / "d"), "--n-train", "6", "--difficulty", "easy"]) == 0
    out = tmp_path / "d"
    saved = json.loads((out / "synth.json").read_text())
    assert saved["difficulty"] == "easy" and saved["generator_version"] == 2
    labels = synth.labels_for(0, "train", 6, 0.234)
    easy = synth.make_clips(0, labels, difficulty="easy")
    for i in range(6):
        np.testing.assert_array_equal(
            sf.read(out / "train" / f"train{i + 1}.aiff", dtype="int16")[0], easy[i]
        )
    assert (easy != synth.make_clips(0, labels)).any(axis=1).all()  # hard is the default
    with pytest.raises(UpcallError, match=r"synth\.json.*'difficulty': \('easy', 'hard'\)"):
        synthesize(out, SynthSettings(n_train=6), workers=1)
    # data of generator 1 (no difficulty then) is refused too, not resumed with other clips
    (out / "synth.json").write_text(json.dumps({**saved, "generator_version": 1}))
    with pytest.raises(UpcallError, match="generator_version"):
        synthesize(out, SynthSettings(n_train=6, difficulty="easy"), workers=1)


def test_no_test_split_makes_no_test_dir(tmp_path):
    out = synthesize(tmp_path / "d", SynthSettings(n_train=3), workers=1)
    names = ["synth.json", "train", "train.csv"]
    assert sorted(p.name for p in out.iterdir()) == [".upcall-made", *names]


def test_foreign_non_empty_directory_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UpcallError, match="not empty"):
        synthesize(tmp_path, SynthSettings(n_train=3), workers=1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SynthSettings(n_train=0), "--n-train"),
        (SynthSettings(n_train=5, n_test=-1), "--n-test"),
        (SynthSettings(n_train=5, positive_rate=0.0), "--positive-rate"),
        (SynthSettings(n_train=5, positive_rate=1.5), "--positive-rate"),
        (SynthSettings(n_train=5, seed=-1), "--seed"),
        (SynthSettings(n_train=5, difficulty="medium"), "--difficulty must be one of easy, hard"),
    ],
)
def test_bad_settings(tmp_path, settings, message):
    with pytest.raises(UpcallError, match=message):
        synthesize(tmp_path / "d", settings, workers=1)
    assert not (tmp_path / "d").exists()


def test_cli(tmp_path, capsys):
    assert (
        cli.main(["synth", str(tmp_path / "d"), "--n-train", "4", "--seed", "2", "--workers", "1"])
        == 0
    )
    assert len(list((tmp_path / "d" / "train").iterdir())) == 4
    assert cli.main(["synth", str(tmp_path / "e"), "--n-train", "4", "--positive-rate", "2"]) == 1
    assert "--positive-rate must be between 0 and 1, got 2.0" in capsys.readouterr().err


def test_forced_run_cut_short_leaves_no_old_clips_for_a_resume(tmp_path, monkeypatch):
    out = synthesize(tmp_path / "d", SynthSettings(n_train=12, seed=1), workers=1)
    new = SynthSettings(n_train=12, seed=2)
    real, calls = synth._write_clips, []

    def dies_after_one_chunk(items, **kwargs):
        calls.append(len(items))
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(items, **kwargs)

    monkeypatch.setattr(synth, "CHUNK", 4)
    monkeypatch.setattr(synth, "_write_clips", dies_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        synthesize(out, new, workers=1, force=True)
    assert len(list((out / "train").glob("*.aiff"))) == 4  # the old clips went first
    monkeypatch.setattr(synth, "_write_clips", real)
    synthesize(out, new, workers=1)  # a resume, without --force
    labels = synth.labels_for(2, "train", 12, new.positive_rate)
    expected = synth.make_clips(2, labels)
    for i in range(12):
        samples, _ = sf.read(out / "train" / f"train{i + 1}.aiff", dtype="int16")
        np.testing.assert_array_equal(samples, expected[i])


def test_out_is_a_file(tmp_path):
    (tmp_path / "d").write_text("not a directory")
    with pytest.raises(UpcallError, match=r"^\S+/d: is a file, not a directory"):
        synthesize(tmp_path / "d", SynthSettings(n_train=3), workers=1)


def test_zero_workers_refused_before_any_work(tmp_path):
    with pytest.raises(UpcallError, match=r"^--workers must be at least 1, got 0$"):
        synthesize(tmp_path / "d", SynthSettings(n_train=3), workers=0)
    assert not (tmp_path / "d").exists()


def test_unversioned_synth_json_resumes_and_a_newer_one_is_refused(tmp_path):
    settings = SynthSettings(n_train=6, seed=1)
    out = synthesize(tmp_path / "d", settings, workers=1)
    saved = json.loads((out / "synth.json").read_text())
    assert saved["format"] == 1 and saved["seed"] == 1 and SynthSettings.read(out) == settings
    del saved["format"]  # as written before files carried a format
    (out / "synth.json").write_text(json.dumps(saved))
    (out / "train" / "train3.aiff").unlink()
    synthesize(out, settings, workers=1)  # a resume: same settings
    assert (out / "train" / "train3.aiff").is_file()
    (out / "synth.json").write_text(json.dumps({**saved, "format": 2}))
    with pytest.raises(UpcallError) as e:
        synthesize(out, settings, workers=1)
    assert str(e.value).startswith(f"{out / 'synth.json'}: synth.json format 2 is not one")
    assert "\n" not in str(e.value)
