"""Tests for upcall detect and upcall evaluate: streaming, Raven outputs, resume, bad files, and
the matching rule of evaluate on hand-made tables."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from upcall.audio import stream
from upcall.audio.raven import Selection, read_table
from upcall.cli import main
from upcall.detect import events
from upcall.detect.evaluate import evaluate, load, recording_key
from upcall.detect.run import DetectSettings, detect, detect_file
from upcall.detect.score import Scorer
from upcall.errors import BatchFailed


@pytest.fixture(scope="session")
def job(tiny_job):
    return tiny_job  # conftest: shared with the export and other detection tests


@pytest.fixture(scope="session")
def recording(easy_recording):
    return easy_recording


def settings(job, **kw):
    return DetectSettings(str(job), "w", kw.get("threshold", 0.5), 0.5, 0, 1)


def test_windows_do_not_depend_on_the_block_size(rng):
    x = rng.standard_normal(20_000)
    want = np.lib.stride_tricks.sliding_window_view(x, 4000)[::700]
    for size in (999, 4000, 20_000):
        chunks = (x[i : i + size] for i in range(0, len(x), size))
        got = np.concatenate([w.samples for w in stream.windows(chunks, step=700, batch=7)])
        assert np.array_equal(got, want)


def test_streaming_gives_identical_scores_for_any_block_size(job, recording):
    scorer = Scorer(job)
    s = settings(job)
    _, _, a = detect_file(scorer, recording, s, block_s=600.0)
    _, _, b = detect_file(scorer, recording, s, block_s=7.3)
    assert len(a) == (120 * 2000 - 4000) // 1000 + 1
    assert np.array_equal(a, b)


def test_resampled_and_multichannel_input(job, recording, tmp_path):
    x, rate = sf.read(recording)
    assert rate == 2000
    from scipy.signal import resample_poly

    y = resample_poly(x, 4, 1)
    sf.write(tmp_path / "st.flac", np.stack([np.zeros_like(y), y], axis=1), 8000)
    scorer = Scorer(job)
    _, _, want = detect_file(scorer, recording, settings(job))
    s = DetectSettings(str(job), "w", 0.5, 0.5, 1, 1)
    _, _, got = detect_file(scorer, tmp_path / "st.flac", s, block_s=13.0)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 0.05  # resampled twice, not the same bits


def test_pipeline_steps():
    assert events.runs(np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)) == [
        events.Run(1, 2),
        events.Run(4, 4),
        events.Run(7, 7),
    ]
    tl = events.Timeline(
        np.array([0.1, 0.9, 0.8, 0.2, 0.7, 0.1, 0.1, 0.1, 0.1, 0.6]),
        np.tile([0.0, 1.0, 4.0, 1.0, 0.0], (10, 1)),
        np.array([50.0, 100.0, 150.0, 200.0, 250.0]),
        0.5,
        2.0,
    )
    found = events.detect(tl, threshold=0.5)
    assert found == [
        # runs 1-2 and 4 overlap in time: merged; the peak: the best window's centre
        events.Detection(0.5, 4.0, 100.0, 200.0, 0.9, peak_s=1.5),
        events.Detection(4.5, 6.5, 100.0, 200.0, 0.6, peak_s=5.5),
    ]
    assert np.allclose(events.smooth(np.array([0.0, 3.0, 0.0]), width=3), [1.5, 1.0, 1.5])


def test_detect_writes_raven_tables_resumes_and_reports_bad_files(job, recording, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "rec.wav").write_bytes(recording.read_bytes())
    (folder / "bad.wav").write_bytes(b"not audio")
    sf.write(folder / "empty.wav", np.zeros(0), 2000)
    out = tmp_path / "out"
    with pytest.raises(BatchFailed, match="2 of 3 recordings failed"):
        main_detect(job, folder, out, "--threshold", "0.0", "--scores")
    table = out / "sub" / "rec.wav.detections.txt"
    rows = read_table(table)
    assert rows and all(r.score is not None and r.peak_s is not None for r in rows)
    # every box has positive duration and bandwidth, in the up-call band
    assert all(r.begin_s < r.end_s and 40 <= r.low_hz < r.high_hz <= 260 for r in rows)
    assert (table.read_text().splitlines()[0].split("\t"))[:8] == [
        "Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
        "High Freq (Hz)", "Delta Time (s)",
    ]  # fmt: skip
    combined = read_table(out / "detections.txt")
    assert [r.begin_s for r in combined] == [r.begin_s for r in rows]
    assert combined[0].begin_path == str((folder / "sub" / "rec.wav").resolve())
    assert (out / "detections.csv").read_text().count("\n") == len(rows) + 1
    assert (out / "sub" / "rec.wav.scores.csv").read_text().count("\n") == 237 + 1
    # rerun: the finished recording is skipped (its table untouched), bad files reported again
    mtime = table.stat().st_mtime_ns
    with pytest.raises(BatchFailed, match=r"2 of 3 recordings failed.*the other 1 were done"):
        main_detect(job, folder, out, "--threshold", "0.0", "--scores")
    assert table.stat().st_mtime_ns == mtime
    # other settings: the table is made again with them (its record no longer matches)
    with pytest.raises(BatchFailed):
        main_detect(job, folder, out, "--threshold", "0.3")
    assert table.stat().st_mtime_ns != mtime
    assert all(r.score >= 0.3 for r in read_table(table))
    assert DetectSettings.require(out).threshold == 0.3


def main_detect(job, *args):
    from upcall.detect.run import detect as run_detect

    flags = list(args[2:])
    kw = {"threshold": float(flags[flags.index("--threshold") + 1])}
    run_detect(job, [args[0]], args[1], scores="--scores" in flags, **kw).finish()


def sel(begin, end, score=None):
    return Selection(begin, end, 50.0, 250.0, "upcall", score=score)


def test_evaluate_matching_on_hand_made_tables():
    truth = {"a": [sel(10, 11), sel(20, 21), sel(30, 31)], "b": [sel(5, 6)]}
    found = {
        "a": [
            sel(9.5, 11.5, 0.9),  # hit
            sel(10.0, 12.0, 0.8),  # second on the same call: false
            sel(21.5, 23.0, 0.7),  # within 1 s tolerance of 20–21: hit
            sel(40, 42, 0.6),  # false
        ],
        "b": [sel(4.0, 6.0, 0.95)],  # hit
    }
    result, _ = evaluate(truth, found, tolerance=1.0, threshold=0.65, target_precision=0.9)
    # at 0.65: 4 detections, 3 hits, 4 truths
    assert (result.precision, result.recall) == (0.75, 0.75)
    assert result.f1 == pytest.approx(0.75)
    # curve by score: 0.95 hit, 0.9 hit, 0.8 miss, 0.7 hit, 0.6 miss
    assert result.average_precision == pytest.approx(0.25 * 1 + 0.25 * 1 + 0.25 * 0.75)
    assert result.best_f1 == pytest.approx(0.75)
    assert result.best_f1_threshold == 0.7
    assert (result.threshold_at_precision, result.recall_at_precision) == (0.9, 0.5)
    strict, _ = evaluate(truth, found, tolerance=0.0, threshold=0.0)
    assert (strict.precision, strict.recall) == (0.4, 0.5)  # 21.5–23 misses 20–21 exactly


def test_recording_keys():
    assert recording_key("x/rec.wav.selections.txt") == "x/rec"  # the path under the root
    assert recording_key("/a/rec.wav") == "/a/rec"
    assert recording_key("rec.flac.detections.txt") == "rec"


def test_evaluate_end_to_end_on_a_synthetic_recording(job, recording, tmp_path, capsys):
    out = tmp_path / "det"
    detect(job, [recording], out, threshold=0.0).finish()
    truth_table = recording.parent / "rec.wav.selections.txt"
    assert load([out], kind="detections").keys() == load([truth_table]).keys() == {"rec"}
    assert main(["evaluate", str(truth_table), str(out), "--out", str(tmp_path / "ev")]) == 0
    printed = capsys.readouterr().out
    assert "average_precision" in printed and "best_f1" in printed
    assert (tmp_path / "ev" / "pr_curve.png").stat().st_size > 1000
    from upcall.detect.evaluate import Evaluation

    ev = Evaluation.require(tmp_path / "ev")
    assert ev.truth == len(read_table(truth_table)) > 0
    assert 0.0 <= ev.recall <= 1.0


def test_workers_give_the_same_tables(job, recording, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.wav", "b.wav"):
        (folder / name).write_bytes(recording.read_bytes())
    detect(job, [folder], tmp_path / "one", threshold=0.0).finish()
    detect(job, [folder], tmp_path / "two", threshold=0.0, workers=2).finish()
    for name in ("a.wav", "b.wav", "detections"):
        table = f"{name}.detections.txt" if name != "detections" else "detections.txt"
        assert (tmp_path / "one" / table).read_text() == (tmp_path / "two" / table).read_text()


def test_a_long_file_shows_its_progress_as_it_is_scored(job, tmp_path, monkeypatch, capsys):
    from upcall.audio.recording import RecordingSettings, write_recording
    from upcall.detect import work

    path = tmp_path / "long.wav"  # 5 minutes: two batches of 512 windows
    write_recording(path, RecordingSettings(minutes=5.0, seed=1, difficulty="easy"))
    monkeypatch.setenv("UPCALL_PROGRESS", "lines:0")
    monkeypatch.setattr(work, "LONG_S", 60.0)
    detect_file(Scorer(job), path, settings(job), show=True)
    lines = capsys.readouterr().err.splitlines()
    # the first batch: 512 windows 0.5 s apart, the last ending at 257.5 s
    assert lines[0].startswith("long.wav: 86% (258/300 audio seconds), audio 0.07 h, speed ")
    assert "× real time" in lines[0]
    assert lines[-1].startswith("long.wav: 300/300 audio seconds done in ")


def test_timings_and_backend_torch_leave_the_settings_digest_as_before():
    """detect.json's stages and note are no settings, and backend "torch" (ONNX Runtime for an
    exported .onnx model) was the only one before it was recorded: tables of earlier runs are
    kept on a rerun with those settings."""
    import hashlib
    import json

    from upcall.detect.made import settings_digest

    s = DetectSettings("m", "w", 0.5, 0.5, 0, 1, "fully-convolutional", "abc")
    old = {k: v for k, v in s.to_json().items() if k not in ("backend", "note", "stages")}
    before = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    from dataclasses import replace

    timed = replace(s, note="n", stages={"network": 1.0})
    assert settings_digest(s) == settings_digest(timed) == before and timed == s
    assert settings_digest(replace(s, backend="onnx")) != before
    # an exported .onnx model ran on ONNX Runtime before too: its old tables are kept
    x = replace(s, model="/m/model.onnx", weights="/m/model.onnx")
    assert settings_digest(replace(x, backend="onnx")) == settings_digest(x)
