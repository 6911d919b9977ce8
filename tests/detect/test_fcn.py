"""Fully convolutional detection (one pass of the trunk over a block's spectrogram) against
per-window scoring, on a WhaleNet trained briefly on ``fine`` spectrograms of easy clips; the
fall-back for a per-image mode; the step rounding recorded in detect.json."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.detect.test_run import job  # noqa: F401  (a tutorial-mode job: falls back to per-window)
from upcall.audio import stream
from upcall.audio.raven import read_table
from upcall.detect.run import DetectSettings, detect, detect_file
from upcall.detect.score import Scorer, band_power, span_band_power

# A window's FCN score differs from its score alone only where the trunk sees past the window:
# the convolutions' zero padding and the last, partial pooling cells at the two edges become
# neighbouring audio, and the mean image is one mean per row. A call half inside a window at
# its edge scores higher with its context (differences up to ~0.8), and this briefly trained
# net's background scores move by ~0.1 (measured here: median 0.136, correlation 0.85).
MEDIAN_ATOL = 0.2  # median |FCN - per-window| over a recording
MIN_CORR = 0.75


def upcall(*args):
    done = subprocess.run([sys.executable, "-m", "upcall", *map(str, args)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, f"upcall {args[0]}: {done.stderr[-2000:]}"


@pytest.fixture(scope="module")
def fine_job(tmp_path_factory):
    """WhaleNet on 65×59 fine spectrograms of 400 easy clips, 4 epochs (val AUC ≈ 0.98)."""
    w = tmp_path_factory.mktemp("fine")
    upcall(
        "synth", w / "data", "--n-train", 400, "--seed", 1, "--workers", 1, "--difficulty", "easy"
    )
    upcall("spectrograms", w / "data", "--mode", "fine", "--workers", 1)
    upcall("lists", w / "data", "--out", w / "lists", "--seed", 1)
    upcall("lmdb", w / "lists", "--out", w / "ds", "--size", "native", "--workers", 1)
    upcall("nets", "--dataset", w / "ds", "--networks", "whalenet", "--lr", 0.01, "--epochs", 4,
           "--batch-size", 16, "--seed", 1, "--out", w / "jobs")  # fmt: skip
    trained = w / "jobs" / "whalenet-lr0.01"
    upcall("train", trained, "--engine", "torch", "--threads", 1)
    return trained


def scores(model, rec, scoring):
    s = DetectSettings(str(model), "w", 0.5, 0.512, 0, 1, scoring)
    return detect_file(Scorer(model), rec, s, block_s=37.0)[2]  # blocks shorter than a span


def test_fcn_scores_are_close_to_per_window_scores(fine_job, easy_recording):
    one = scores(fine_job, easy_recording, "per-window")
    fcn = scores(fine_job, easy_recording, "fully-convolutional")
    assert fcn.shape == one.shape == ((120 * 2000 - 4000) // 1024 + 1,)
    diff = np.abs(fcn - one)
    corr = np.corrcoef(fcn, one)[0, 1]
    print(
        f"|fcn - per-window|: median {np.median(diff):.3f}, max {diff.max():.3f}; corr {corr:.3f}"
    )
    assert np.median(diff) <= MEDIAN_ATOL and corr >= MIN_CORR
    assert np.ptp(one) > 0.5  # the recording's calls score high, the rest low
    # the same windows whatever the block size (spans start at multiples of the batch)
    again = detect_file(Scorer(fine_job), easy_recording,
                        DetectSettings(str(fine_job), "w", 0.5, 0.512, 0, 1, "fully-convolutional"),
                        block_s=600.0)[2]  # fmt: skip
    assert np.array_equal(again, fcn)


def test_fcn_detections_match_per_window_detections(fine_job, easy_recording, tmp_path, capsys):
    detect(fine_job, [easy_recording], tmp_path / "fcn", step_s=0.5).finish()
    assert "step 0.5 s rounded to 0.512 s" in capsys.readouterr().err
    settings = DetectSettings.require(tmp_path / "fcn")
    assert (settings.scoring, settings.step_s) == ("fully-convolutional", 0.512)
    detect(fine_job, [easy_recording], tmp_path / "one", step_s=0.512, per_window=True).finish()
    assert DetectSettings.require(tmp_path / "one").scoring == "per-window"
    fcn = read_table(tmp_path / "fcn" / "rec.wav.detections.txt")
    one = read_table(tmp_path / "one" / "rec.wav.detections.txt")
    truth = read_table(easy_recording.parent / "rec.wav.selections.txt")
    print(f"{len(truth)} calls; per-window found {len(one)}, fully convolutional {len(fcn)}")

    def overlaps(a, rows):
        return any(a.begin_s < b.end_s and b.begin_s < a.end_s for b in rows)

    # every per-window detection is found again, and so is every call per-window scoring finds;
    # with ≈0.5 s of context past each window the FCN scores of the background run higher, so
    # at the same threshold it adds detections (measured here: 5 against 12)
    assert len(one) >= 1 and all(overlaps(b, fcn) for b in one)
    assert all(overlaps(t, fcn) for t in truth if overlaps(t, one))
    assert len(fcn) <= 3 * len(one)


def test_per_image_mode_falls_back_to_per_window(job, tmp_path, capsys):  # noqa: F811
    choice = Scorer(job).choose(1000)
    assert choice.scoring == "per-window" and choice.step == 1000
    assert "tutorial spectrogram mode scales each image as a whole" in choice.note


def test_band_power_of_a_span_equals_per_window_band_power(rng):
    x = rng.standard_normal(30_000)
    for step in (1024, 1000):
        (span,) = list(stream.spans(iter([x]), step=step, batch=10_000))
        view = np.lib.stride_tricks.sliding_window_view(span.samples, 4000)[::step][: span.count]
        np.testing.assert_allclose(span_band_power(span, step), band_power(view), rtol=1e-9)


def test_onnx_export_scores_fully_convolutionally_as_the_job(fine_job, easy_recording, tmp_path):
    """The export of an FCN-capable job takes the same pass (its graph cut at the last pooling):
    the same detections through `upcall detect` as the job folder, not per-window ones."""
    model = tmp_path / "model.onnx"
    upcall("export", fine_job, "--format", "onnx", "--out", model)
    outs = {}
    for name, source in (("job", fine_job), ("onnx", model)):
        done = subprocess.run(
            [sys.executable, "-m", "upcall", "detect", str(source), str(easy_recording),
             "--out", str(tmp_path / name), "--threshold", "0.3", "--scores"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "fully convolutional scoring" in done.stderr
        outs[name] = tmp_path / name
    job_s, onnx_s = (DetectSettings.require(outs[n]) for n in ("job", "onnx"))
    assert job_s.scoring == onnx_s.scoring == "fully-convolutional"
    assert job_s.step_s == onnx_s.step_s == 0.512

    def scores(out):
        return np.loadtxt(out / "rec.wav.scores.csv", delimiter=",", skiprows=1)[:, 1]

    assert np.abs(scores(outs["job"]) - scores(outs["onnx"])).max() <= 1e-5
    rows = [read_table(outs[n] / "rec.wav.detections.txt") for n in ("job", "onnx")]
    assert rows[0] and [(r.begin_s, r.end_s) for r in rows[0]] == [
        (r.begin_s, r.end_s) for r in rows[1]
    ]


def test_a_job_detects_through_its_cached_onnx_export(fine_job, easy_recording, tmp_path):
    """`upcall detect JOB` exports the net once (JOB/.cache), then runs it on ONNX Runtime with
    neither torch nor the onnx package (a fresh interpreter where they cannot load), gives the
    tables of the first run, and records the backend and each stage's seconds; `--backend
    torch` still runs the torch engine's pass, with scores within 1e-5."""
    import json
    import os

    from tests.test_layering import block_torch

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def run(name, *flags, blocked=None):
        done = subprocess.run(
            [sys.executable, "-m", "upcall", "detect", str(fine_job), str(easy_recording),
             "--out", str(tmp_path / name), "--threshold", "0.3", "--scores", *flags],
            capture_output=True, text=True, env={**env, **(blocked or {})},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return tmp_path / name

    first = run("first")
    (cached,) = (fine_job / ".cache").glob("detect-*.onnx")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "onnx.py").write_text("raise ImportError('onnx is not installed here')\n")
    again = run("again", blocked=block_torch(blocker))
    for f in ("rec.wav.detections.txt", "rec.wav.scores.csv"):
        assert (first / f).read_bytes() == (again / f).read_bytes()
    settings = json.loads((again / "detect.json").read_text())
    assert settings["backend"] == "onnx" and str(cached) in settings["note"]
    assert {"read", "spectrogram", "network", "events", "boxes", "table"} <= set(settings["stages"])
    torch_out = run("torch", "--backend", "torch")
    assert DetectSettings.require(torch_out).backend == "torch"
    assert DetectSettings.require(torch_out).scoring == "fully-convolutional"

    def scores(out):
        return np.loadtxt(out / "rec.wav.scores.csv", delimiter=",", skiprows=1)[:, 1]

    assert np.abs(scores(first) - scores(torch_out)).max() <= 1e-5


def test_one_spectrogram_gives_the_band_power_of_two(rng):
    """The fully convolutional pass takes the band power from the fine spectrogram's columns:
    the same numbers as the span's own hop-128 spectrogram, bit for bit."""
    import threading

    from upcall.audio.stream import Span
    from upcall.data.spectrogram import compute_batch
    from upcall.detect.score import Prepared, Stages, scored

    class Fine:  # what prepare() needs of a Scorer on a fine-mode job
        spec = type("Spec", (), {"spectrogram_mode": "fine"})()
        sliding = type("Sliding", (), {"stride": 8})()

    x = rng.normal(size=(63 * 1024 + 4000)) * 0.1
    span = Span(5, 64, x)
    prepared = Scorer.prepare(Fine(), span, 1024)
    assert np.array_equal(prepared.band_power, span_band_power(span, 1024))
    fine = compute_batch(x[None], mode="fine")
    assert np.array_equal(prepared.image, fine[0])

    # the reading thread: errors reach the scoring thread, and it ends with the iteration
    class Echo:
        def prepare(self, span, step):
            return Prepared(span, None, None)

        def finish(self, prepared, step):
            assert threading.current_thread() is threading.main_thread()
            return prepared.span.start

    def spans():
        yield span
        raise ValueError("bad block")

    stages = Stages()
    out = scored(Echo(), spans(), 1024, stages)
    assert next(out) == 5
    with pytest.raises(ValueError, match="bad block"):
        next(out)
    assert stages["read"] >= 0 and "spectrogram" in stages


def test_the_lean_trunk_computes_the_same_maps_in_fewer_nodes(fine_job, tmp_path):
    """Batch norm, scale and the per-channel adds folded into the convolutions: no Add or
    BatchNormalization left in WhaleNet's trunk, and the same map to float32 rounding."""
    import onnx
    import onnxruntime as ort

    from upcall.inference import load_model
    from upcall.inference.onnx.fcn import _cut

    model = tmp_path / "model.onnx"
    upcall("export", fine_job, "--format", "onnx", "--out", model)
    predictor = load_model(model).predictor
    lean, _, meta = _cut(predictor)
    ops = [n.op_type for n in onnx.load_from_string(lean).graph.node]
    assert "Conv" in ops and not {"Add", "BatchNormalization", "Mul"} & set(ops)
    plain = _extract_plain_trunk(model, meta["pool_input"])
    x = np.random.default_rng(0).uniform(-60, 60, (1, 1, 65, 500)).astype(np.float32)
    maps = [
        ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
        for m in (plain, lean)
    ]
    assert maps[0].shape == maps[1].shape
    np.testing.assert_allclose(maps[1], maps[0], rtol=1e-5, atol=1e-4)


def _extract_plain_trunk(model, pool_input):
    """The export's nodes up to ``pool_input``, width left free, nothing folded."""
    import onnx

    from upcall.inference.onnx.fcn import _extract, _free_width

    full = onnx.shape_inference.infer_shapes(onnx.load(str(model)))
    return _free_width(_extract(full, ["data"], [pool_input]), "data").SerializeToString()


def test_a_file_holding_nan_is_one_line_and_the_batch_goes_on(fine_job, easy_recording, tmp_path):
    """The one-spectrogram path (run in the reading thread) refuses NaN samples as before: one
    line naming the file, the good recording still detected, exit status 1."""
    import shutil

    import soundfile as sf

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(easy_recording, folder / "good.wav")
    bad = np.zeros(2000 * 30, np.float32)
    bad[1000] = np.nan
    sf.write(folder / "bad.wav", bad, 2000, subtype="FLOAT")
    done = subprocess.run(
        [sys.executable, "-m", "upcall", "detect", str(fine_job), str(folder), "--out",
         str(tmp_path / "out")], capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "bad.wav" in line and "NaN" in line]
    assert lines, done.stderr[-2000:]
    assert (tmp_path / "out" / "good.wav.detections.txt").is_file()
    assert not (tmp_path / "out" / "bad.wav.detections.txt").exists()
