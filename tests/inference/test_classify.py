"""Tests for upcall classify and the Predictor: PNG and audio inputs through deploy.prototxt and a
snapshot, run by the torch engine and by real Caffe (pycaffe) on the same files."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.engines.test_train import DATA, LAYERS, SOLVER, images_for, make_job, write_db
from upcall.data.datum import write_mean
from upcall.data.resize import resize
from upcall.engines import get_engine
from upcall.errors import BatchFailed, UpcallError
from upcall.inference import classify as classify_cmd
from upcall.inference import load_model
from upcall.inference.classify import classify
from upcall.job.deploy import deploy_inputs, net_outputs, output_blob
from upcall.proto import caffe_pb2

SIZE, BIG_CROP = 256, 227  # the tutorial's resized dataset and AlexNet's crop
TEST = caffe_pb2.TEST


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    job = make_job(tmp_path_factory.mktemp("classify"), max_iter=6)
    get_engine("torch", threads=1).train(job)
    return job


def make_resized_job(root, *, max_iter=6):
    """make_job's dataset squashed to 256×256 (as `upcall lmdb --size 256x256` makes it),
    with a 227 crop; the same tiny net."""
    rng = np.random.default_rng(1)
    ds, job = root / "dataset", root / "jobs" / "tiny256-lr0.05"
    ds.mkdir(parents=True)
    job.mkdir(parents=True)

    def squashed(labels):
        native = images_for(labels, rng)
        return np.stack([resize(im[0], height=SIZE, width=SIZE)[None] for im in native])

    train_labels, val_labels = np.arange(40) % 2, np.arange(16) % 2
    train = squashed(train_labels)
    write_db(ds / "train_db", train, train_labels)
    write_db(ds / "val_db", squashed(val_labels), val_labels)
    write_mean(ds / "mean.binaryproto", train.mean(axis=0).round())
    (ds / "labels.txt").write_text("not-whale\nwhale\n")
    info = {
        "image": {"height": SIZE, "width": SIZE, "channels": 1},
        "size": f"{SIZE}x{SIZE}",
        "resize_mode": "squash",
        "seed": 0,
        "spectrograms": {"mode": "tutorial"},
    }
    (ds / "dataset.json").write_text(json.dumps(info))
    data = "".join(
        DATA.format(
            phase=p,
            crop=BIG_CROP,
            mirror=str(p == "TRAIN").lower(),
            mean=ds / "mean.binaryproto",
            source=ds / f"{s}_db",
        )
        for p, s in (("TRAIN", "train"), ("TEST", "val"))
    )
    loss = (
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }\n'
    )
    (job / "train_val.prototxt").write_text('name: "tiny256"\n' + data + LAYERS + loss)
    deploy_in = (
        'layer { name: "data" type: "Input" top: "data" '
        f"input_param {{ shape {{ dim: 1 dim: 1 dim: {BIG_CROP} dim: {BIG_CROP} }} }} }}\n"
    )
    softmax = 'layer { name: "softmax" type: "Softmax" bottom: "fc2" top: "softmax" }\n'
    (job / "deploy.prototxt").write_text('name: "tiny256"\n' + deploy_in + LAYERS + softmax)
    (job / "solver.prototxt").write_text(SOLVER.format(max_iter=max_iter))
    config = {"network": "tiny256", "dataset": str(ds), "dataset_info": info, "seed": 7}
    (job / "config.json").write_text(json.dumps(config))
    return job


@pytest.fixture(scope="module")
def resized(tmp_path_factory):
    job = make_resized_job(tmp_path_factory.mktemp("classify256"))
    get_engine("torch", threads=1).train(job)
    return job


def spectrogram_inputs(folder, rng):
    """Three 129×30 PNGs (two classes) and one audio clip, as a user would pass them."""
    paths = []
    for i, img in enumerate(images_for(np.array([0, 1, 1]), rng)):
        paths.append(folder / f"clip{i}.png")
        Image.fromarray(img[0]).save(paths[-1])
    paths.append(folder / "clip.wav")
    sf.write(paths[-1], (rng.standard_normal(4000) * 3000).astype(np.int16), 2000)
    return paths


def probabilities(rows):
    return np.array([[r["not-whale"], r["whale"]] for r in rows])


@pytest.mark.parametrize("job_fixture", ["trained", "resized"])
def test_pycaffe_gives_the_torch_probabilities(job_fixture, request, caffe, tmp_path, rng):
    # The same deploy.prototxt and caffemodel run by the torch engine and by real Caffe. Both
    # compute in float32 (convolutions summed in different orders), so the probabilities agree
    # to float32 rounding: ~1e-7 measured, asserted within 1e-5.
    job = request.getfixturevalue(job_fixture)
    paths = spectrogram_inputs(tmp_path, rng)
    torch_rows = classify(job, paths)
    caffe_rows = classify(job, paths, backend="caffe")
    assert [r["input"] for r in caffe_rows] == [str(p) for p in paths]
    assert [r["label"] for r in caffe_rows] == [r["label"] for r in torch_rows]
    got, want = probabilities(caffe_rows), probabilities(torch_rows)
    print(f"{job_fixture}: max |torch - pycaffe| = {np.abs(got - want).max():.3g}")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert np.ptp(want[:, 1]) > 1e-3  # the inputs do not all score alike: a real comparison


def test_pycaffe_predicts_a_large_batch_in_one_process(resized, caffe, rng):
    # more than one backend batch (64), straight through predict() on prepared float input
    torch_model = load_model(resized).predictor
    caffe_model = load_model(resized, backend="caffe").predictor
    images = np.stack(
        [resize(im[0], height=SIZE, width=SIZE)[None] for im in images_for(np.arange(70) % 2, rng)]
    )
    x = torch_model.deploy.preprocess.apply(images)
    assert x.shape == (70, 1, BIG_CROP, BIG_CROP) and x.dtype == np.float32
    np.testing.assert_allclose(caffe_model.predict(x), torch_model.predict(x), atol=1e-5)


def test_cli_backend_flag(trained, caffe, tmp_path, rng, capsys):
    paths = spectrogram_inputs(tmp_path, rng)
    parser = argparse.ArgumentParser()
    classify_cmd.configure(parser)
    args = [str(trained), str(tmp_path), "--csv", str(tmp_path / "out.csv")]
    assert parser.parse_args(args).backend == "torch"
    assert classify_cmd.run(parser.parse_args([*args, "--backend", "caffe"])) == 0
    out = capsys.readouterr().out
    assert out.count("\tnot-whale=") == len(paths)
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert sorted(r["input"] for r in rows) == sorted(str(p) for p in paths)


def test_the_numpy_transform_is_the_torch_engines(trained, rng):
    import torch

    from upcall.engines.torch.data import Transform
    from upcall.job.spec import load_job

    transform = Transform.of(load_job(trained).test_data)
    images = images_for(np.array([0, 1, 1, 0]), rng)
    want = transform.apply(torch.from_numpy(images), train=False).numpy()
    got = load_model(trained).predictor.deploy.preprocess.apply(images)
    assert got.shape == (4, 1, 28, 28) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_png_probabilities_match_the_test_net(trained, tmp_path, rng):
    labels = np.array([0, 1, 1])
    images = images_for(labels, rng)
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"clip{i}.png")
        Image.fromarray(img[0]).save(paths[-1])
    rows = classify(trained, paths)
    assert [r["input"] for r in rows] == [str(p) for p in paths]
    probs = probabilities(rows)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert [r["label"] for r in rows] == [["not-whale", "whale"][int(np.argmax(p))] for p in probs]
    # the same numbers as the predictor computes from the uint8 arrays directly
    direct = load_model(trained).predictor.probabilities(images)
    np.testing.assert_allclose(probs, direct, rtol=1e-5)


def test_probabilities_are_one_softmax_of_the_scores(trained, rng):
    # The deploy net already ends in a Softmax (named "prob" here): the predictor must not apply
    # a second one.
    import torch

    model = load_model(trained).predictor
    images = images_for(np.array([0, 1, 1, 0]), rng)
    softmax = next(lay for lay in model.deploy.net.layer if lay.type == "Softmax")
    with torch.no_grad():
        x = torch.from_numpy(model.deploy.preprocess.apply(images))
        scores = model.net({model.deploy.input: x})[softmax.bottom[0]].flatten(1)
    np.testing.assert_allclose(
        model.probabilities(images), torch.softmax(scores, 1).double().numpy(), rtol=1e-5
    )


def test_audio_input_becomes_a_spectrogram(trained, tmp_path, rng):
    from upcall.data.spectrogram import compute

    samples = (rng.standard_normal(4000) * 3000).astype(np.int16)
    sf.write(tmp_path / "clip.wav", samples, 2000, subtype="PCM_16")
    (row,) = classify(trained, [tmp_path / "clip.wav"])
    want = load_model(trained).predictor.probabilities(compute(samples, mode="tutorial")[None, None])
    np.testing.assert_allclose([row["not-whale"], row["whale"]], want[0], rtol=1e-5)


def test_bad_inputs_are_reported_and_the_rest_classified(trained, tmp_path, rng, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(images_for(np.array([1]), rng)[0, 0]).save(good)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    parser = argparse.ArgumentParser()
    classify_cmd.configure(parser)
    args = parser.parse_args(
        [
            str(trained),
            str(good),
            str(tmp_path / "broken.png"),
            str(tmp_path / "small.png"),
            "--csv",
            str(tmp_path / "out.csv"),
        ]
    )
    with pytest.raises(BatchFailed, match="2 of 3 inputs failed"):
        classify_cmd.run(args)
    err = capsys.readouterr().err
    assert "broken.png: cannot read image" in err
    assert "small.png: image is 10x10, the job was trained on 30x129" in err
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [r["input"] for r in rows] == [str(good)] and set(rows[0]) == {
        "input",
        "label",
        "not-whale",
        "whale",
    }


def test_snapshot_and_backend_choice(trained):
    assert load_model(trained, snapshot=6).predictor.weights.name == "snapshot_iter_6.caffemodel"
    with pytest.raises(UpcallError, match=r"no snapshot at iteration 3; have \[6\]"):
        load_model(trained, snapshot=3)
    with pytest.raises(UpcallError, match="unknown backend 'onnx'; known: caffe, torch"):
        load_model(trained, backend="onnx")


def test_predict_takes_the_deploy_input_size_only(trained):
    model = load_model(trained).predictor
    assert model.deploy.input_shape == (1, 28, 28) and not model.fully_convolutional
    assert model.predict(np.zeros((0, 1, 28, 28), np.float32)).shape == (0, 2)
    with pytest.raises(UpcallError, match=r"takes 28x28 input, got 60x28 \(the torch backend"):
        model.predict(np.zeros((2, 1, 28, 60), np.float32))
    with pytest.raises(UpcallError, match=r"takes \(N, 1, H, W\) input"):
        model.predict(np.zeros((2, 3, 28, 28), np.float32))


def deploy_net(text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, caffe_pb2.NetParameter())


def deploy_layers(text: str):
    return list(deploy_net(text).layer)


def test_output_is_the_last_softmax_else_the_only_output(tmp_path):
    data = 'layer { name: "data" type: "Input" top: "data" }'
    fc = 'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" }'
    fc2 = 'layer { name: "fc2" type: "InnerProduct" bottom: "data" top: "fc2" }'
    prob = 'layer { name: "sm" type: "Softmax" bottom: "fc" top: "p" }'
    relu = 'layer { name: "r" type: "ReLU" bottom: "fc" top: "fc" }'  # in place: still an output
    assert net_outputs(["data"], deploy_layers(data + fc + relu + fc2)) == ["fc", "fc2"]
    # the Softmax is found by type, whatever the blob is called or sorts as
    assert output_blob(deploy_layers(fc + prob), ["p", "z_other"], tmp_path) == ("p", True)
    assert output_blob(deploy_layers(fc), ["fc"], tmp_path) == ("fc", False)
    with pytest.raises(UpcallError, match=r"no Softmax layer and 2 outputs \(fc, fc2\)"):
        output_blob(deploy_layers(fc + fc2), ["fc", "fc2"], tmp_path)


def test_raw_scores_get_one_softmax_over_the_classes():
    from upcall.job.deploy import softmax_classes

    scores = np.array([[1.0, 3.0], [0.0, 0.0]])[:, :, None, None]  # (N, K, 1, 1) like Caffe's
    want = np.array([[1 / (1 + np.e**2), 1 / (1 + np.e**-2)], [0.5, 0.5]])
    np.testing.assert_allclose(softmax_classes(scores, done=False), want, rtol=1e-12)
    maps = np.zeros((1, 2, 3, 5))  # a score map keeps its positions: (N, K, h, w)
    assert softmax_classes(maps, done=False).shape == (1, 2, 3, 5)


def test_deploy_inputs_from_input_layers_or_legacy_fields(tmp_path):
    from upcall.network.phase import filter_net

    legacy = deploy_net('input: "x" input_shape { dim: 1 dim: 1 dim: 5 dim: 6 }')
    assert deploy_inputs(filter_net(legacy, phase=TEST).layer, tmp_path) == {"x": (1, 5, 6)}
    layer = deploy_net(
        'layer { name: "d" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }'
    )
    with pytest.raises(UpcallError, match=r"input 'data' has shape \[2, 3\], not N×C×H×W"):
        deploy_inputs(filter_net(layer, phase=TEST).layer, tmp_path)
    with pytest.raises(UpcallError, match="no Input layer"):
        deploy_inputs([], tmp_path)


def without_torch(tmp_path) -> dict:
    """The environment with ``import torch`` failing (a shadowing module), as test_layering."""
    (tmp_path / "torch.py").write_text("raise ImportError('torch is not installed here')\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_the_interface_imports_without_torch(tmp_path):
    code = "import upcall.inference.predict, upcall.inference.caffe, upcall.inference.classify"
    code += "; import upcall.inference.sources, upcall.inference.foreign"
    done = subprocess.run(
        [sys.executable, "-c", code], env=without_torch(tmp_path), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_classify_with_pycaffe_needs_no_torch(trained, caffe, tmp_path, rng):
    paths = spectrogram_inputs(tmp_path, rng)
    command = [sys.executable, "-m", "upcall", "classify", str(trained), *map(str, paths)]
    done = subprocess.run(
        [*command, "--backend", "caffe"],
        env=without_torch(tmp_path),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    want = classify(trained, paths)
    assert done.stdout.splitlines() == [
        f"{r['input']}\t{r['label']}\tnot-whale={r['not-whale']:.4f}\twhale={r['whale']:.4f}"
        for r in want
    ]
