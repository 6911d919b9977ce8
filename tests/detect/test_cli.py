"""`upcall detect` through the command: output names per input path, redoing what changed (new
weights, a replaced recording, --scores), --smoothing bounds, recordings it refuses (low rate,
truncated, a path a Raven table cannot hold), the baseline job, and the worker count."""

from __future__ import annotations

import shutil

import numpy as np
import soundfile as sf

from tests.detect.test_run import job, recording  # noqa: F401  (fixtures)
from upcall.audio.raven import read_table
from upcall.cli import main
from upcall.detect.made import Made
from upcall.detect.run import DetectSettings


def detect(capsys, *args):
    """(exit status, stderr) of `upcall detect ARGS`."""
    code = main(["detect", *map(str, args)])
    return code, capsys.readouterr().err


def one_line_error(err: str, *words: str) -> None:
    lines = [x for x in err.splitlines() if x.startswith("upcall detect: error: ")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), err
    assert "Traceback" not in err


def test_same_names_in_two_folders_stay_apart(job, recording, tmp_path, capsys):  # noqa: F811
    for site, seconds in (("site1", 120), ("site2", 30)):
        (tmp_path / site).mkdir()
        x, rate = sf.read(recording)
        sf.write(tmp_path / site / "rec.wav", x[: seconds * rate], rate)
    out = tmp_path / "out"
    code, _ = detect(capsys, job, tmp_path / "site1" / "rec.wav", tmp_path / "site2" / "rec.wav",
                     "--out", out, "--threshold", "0")  # fmt: skip
    assert code == 0
    one, two = (read_table(out / s / "rec.wav.detections.txt") for s in ("site1", "site2"))
    assert max(r.end_s for r in two) <= 30 < max(r.end_s for r in one)
    combined = read_table(out / "detections.txt")
    paths = [r.begin_path for r in combined]
    assert paths.count(str((tmp_path / "site1" / "rec.wav").resolve())) == len(one)
    assert paths.count(str((tmp_path / "site2" / "rec.wav").resolve())) == len(two)
    # two folders given: the same mirrored names
    code, _ = detect(capsys, job, tmp_path / "site1", tmp_path / "site2", "--out", tmp_path / "o2",
                     "--threshold", "0")  # fmt: skip
    assert code == 0
    assert (tmp_path / "o2" / "site2" / "rec.wav.detections.txt").read_text() == (
        out / "site2" / "rec.wav.detections.txt"
    ).read_text()


def _new_weights(source, tmp_path):
    """A copy of the job ``source`` whose snapshot has other weights under the same file name."""
    from upcall.proto import caffe_pb2, read_binary

    copy = tmp_path / "job"
    shutil.copytree(source, copy)
    model = copy / "snapshot_iter_6.caffemodel"
    net = read_binary(model, caffe_pb2.NetParameter())
    layer = next(x for x in net.layer if len(x.blobs))
    blob = layer.blobs[-1]  # a bias: scores move, the net stays valid
    for i in range(len(blob.data)):
        blob.data[i] += 0.5 * (-1) ** i
    model.write_bytes(net.SerializeToString())
    return copy


def test_a_rerun_redoes_what_changed(job, recording, tmp_path, capsys):  # noqa: F811
    rec = tmp_path / "in" / "rec.wav"
    rec.parent.mkdir()
    shutil.copy(recording, rec)
    model = _new_weights(job, tmp_path)
    shutil.copy(job / "snapshot_iter_6.caffemodel", model / "snapshot_iter_6.caffemodel")
    out = tmp_path / "out"
    table, scores = out / "rec.wav.detections.txt", out / "rec.wav.scores.csv"
    args = (model, rec, "--out", out, "--threshold", "0")
    assert detect(capsys, *args)[0] == 0
    first, made = table.read_text(), Made.require(out / "rec.wav.made.json")
    assert made.recording.size == rec.stat().st_size and not made.scores
    # unchanged: kept
    code, err = detect(capsys, *args)
    assert code == 0 and "1 recording(s) already done" in err
    # --scores asks for more than the table has: made again, with scores
    assert not scores.exists()
    code, err = detect(capsys, *args, "--scores")
    assert code == 0 and "already done" not in err
    assert scores.read_text().count("\n") == 237 + 1
    # new weights under the same snapshot name (train --restart): made again, other scores
    before = scores.read_text()
    shutil.copy(_new_weights(job, tmp_path / "w").joinpath("snapshot_iter_6.caffemodel"),
                model / "snapshot_iter_6.caffemodel")  # fmt: skip
    code, err = detect(capsys, *args, "--scores")
    assert code == 0 and "already done" not in err and "another model" in err
    assert scores.read_text() != before
    assert DetectSettings.require(out).model_sha256 != ""
    # the recording replaced by another (same name, same length): made again
    x, rate = sf.read(rec)
    sf.write(rec, np.roll(x, len(x) // 2), rate)
    table_before = table.read_text()
    code, err = detect(capsys, *args, "--scores")
    assert code == 0 and "already done" not in err
    assert table.read_text() != table_before
    assert first  # the first run's table was not empty either
    assert read_table(out / "detections.txt")
    # replaced by a broken file: reported, and its old table is not in the combined one
    rec.write_bytes(b"not audio any more")
    code, err = detect(capsys, *args, "--scores")
    assert code == 1 and "not readable audio" in err
    assert read_table(out / "detections.txt") == []
    # a good recording again, made without --scores: the old scores do not stay beside it
    sf.write(rec, x, rate)
    code, err = detect(capsys, *args)
    assert code == 0 and "already done" not in err and not scores.exists()


def test_smoothing_stays_inside_the_recording_and_must_be_positive(job, recording, tmp_path,  # noqa: F811
                                                                   capsys):  # fmt: skip
    x, rate = sf.read(recording)
    short = tmp_path / "ten.wav"
    sf.write(short, x[: 10 * rate], rate)
    code, _ = detect(capsys, job, short, "--out", tmp_path / "o", "--threshold", "0",
                     "--smoothing", "35")  # fmt: skip
    assert code == 0
    rows = read_table(tmp_path / "o" / "ten.wav.detections.txt")
    assert rows and max(r.end_s for r in rows) <= 10.0
    for bad in ("0", "-3"):
        code, err = detect(capsys, job, short, "--out", tmp_path / "o", "--smoothing", bad)
        assert code == 1
        one_line_error(err, "--smoothing", bad)


def test_low_rate_truncated_and_unwritable_paths_are_reported(job, recording, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "in"
    folder.mkdir()
    x, rate = sf.read(recording)
    sf.write(folder / "good.wav", x[: 20 * rate], rate)
    sf.write(folder / "low.wav", np.zeros(1000), 100)  # 10 s at 100 Hz
    for suffix in ("wav", "aiff"):
        sf.write(folder / f"cut.{suffix}", x[: 20 * rate], rate, subtype="PCM_16")
        data = (folder / f"cut.{suffix}").read_bytes()
        (folder / f"cut.{suffix}").write_bytes(data[: len(data) // 2])
    shutil.copy(folder / "good.wav", folder / "tab\there.wav")
    shutil.copy(folder / "good.wav", folder / "new\nline.wav")
    code, err = detect(capsys, job, folder, "--out", tmp_path / "out", "--threshold", "0")
    assert code == 1, err
    assert "Traceback" not in err and "ValueError" not in err
    lines = err.splitlines()
    assert any("low.wav: sample rate 100 Hz is below 1000 Hz" in x for x in lines)
    assert sum("truncated file" in x and "cut." in x for x in lines) == 2
    assert sum("tab or newline" in x for x in lines) == 2
    assert lines[-1] == (
        "upcall detect: error: 5 of 6 recordings failed (listed above); the other 1 were done"
    )
    combined = read_table(tmp_path / "out" / "detections.txt")
    assert combined and {r.begin_path for r in combined} == {str((folder / "good.wav").resolve())}


def test_the_baseline_job_cannot_detect(job, recording, tmp_path, capsys):  # noqa: F811
    from dataclasses import replace

    from upcall.job.config import JobConfig

    baseline = tmp_path / "baseline"
    shutil.copytree(job, baseline)
    config = JobConfig.require(baseline)
    replace(config, network_source={"kind": "classical"}).write(baseline)
    code, err = detect(capsys, baseline, recording, "--out", tmp_path / "out")
    assert code == 1
    one_line_error(err, str(baseline), "baseline cannot detect")


def test_workers_never_outnumber_the_files(job, recording, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "in"
    folder.mkdir()
    x, rate = sf.read(recording)
    for name in ("a.wav", "b.wav"):
        sf.write(folder / name, x[: 20 * rate], rate)
    code, err = detect(capsys, job, folder, "--out", tmp_path / "out", "--workers", "64")
    assert code == 0
    started = [x for x in err.splitlines() if "worker processes" in x]
    assert started and started[0].startswith("2 worker processes"), err
    code, err = detect(capsys, job, folder, "--out", tmp_path / "o1", "--workers", "0")
    one_line_error(err, "--workers")


def test_an_empty_table_is_still_a_detection_table(job, recording, tmp_path, capsys):  # noqa: F811
    from upcall.audio.raven import Selection, read, write_table

    sf.write(tmp_path / "quiet.wav", np.zeros(20 * 2000), 2000)
    out = tmp_path / "out"
    code, _ = detect(capsys, job, tmp_path / "quiet.wav", "--out", out, "--threshold", "1")
    assert code == 0
    table = out / "quiet.wav.detections.txt"
    assert read_table(table) == [] and read(table).kind == "detections"
    assert read(out / "detections.txt").kind == "detections"
    truth = tmp_path / "quiet.wav.selections.txt"
    write_table(truth, [Selection(5.0, 6.0, 50.0, 250.0, "upcall")])
    # the empty table is the detector's answer (nothing found), not truth given as detections
    assert main(["evaluate", str(truth), str(table)]) == 0
    assert "recall: 0.0000" in capsys.readouterr().out
