"""Tests for upcall classify: PNG and audio inputs through deploy.prototxt and a snapshot."""

from __future__ import annotations

import argparse
import csv

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from test_train import images_for, make_job

from upcall.engines import get_engine
from upcall.errors import BatchFailed, UpcallError
from upcall.results import classify as classify_cmd
from upcall.results.classify import Classifier, classify


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    job = make_job(tmp_path_factory.mktemp("classify"), max_iter=6)
    get_engine("torch").train(job, threads=1)
    return job


def test_png_probabilities_match_the_test_net(trained, tmp_path, rng):
    labels = np.array([0, 1, 1])
    images = images_for(labels, rng)
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"clip{i}.png")
        Image.fromarray(img[0]).save(paths[-1])
    rows = classify(trained, paths)
    assert [r["input"] for r in rows] == [str(p) for p in paths]
    probs = np.array([[r["not-whale"], r["whale"]] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert [r["label"] for r in rows] == [["not-whale", "whale"][int(np.argmax(p))] for p in probs]
    # the same numbers as the classifier computes from the uint8 arrays directly
    direct = Classifier(trained).probabilities(images)
    np.testing.assert_allclose(probs, direct, rtol=1e-5)


def test_probabilities_are_one_softmax_of_the_scores(trained, rng):
    # The deploy net already ends in a Softmax (named "softmax", as DIGITS names it): the
    # classifier must not apply a second one.
    import torch

    clf = Classifier(trained)
    images = images_for(np.array([0, 1, 1, 0]), rng)
    softmax = next(lay for lay in clf.net_param.layer if lay.type == "Softmax")
    with torch.no_grad():
        x = clf.transform.apply(torch.from_numpy(images), train=False)
        scores = clf.net({clf.input: x})[softmax.bottom[0]].flatten(1)
    np.testing.assert_allclose(
        clf.probabilities(images), torch.softmax(scores, 1).double().numpy(), rtol=1e-5
    )


def test_audio_input_becomes_a_spectrogram(trained, tmp_path, rng):
    from upcall.data.spectrogram import compute

    samples = (rng.standard_normal(4000) * 3000).astype(np.int16)
    sf.write(tmp_path / "clip.wav", samples, 2000, subtype="PCM_16")
    (row,) = classify(trained, [tmp_path / "clip.wav"])
    want = Classifier(trained).probabilities(compute(samples, mode="tutorial")[None, None])
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


def test_snapshot_choice(trained):
    assert Classifier(trained, snapshot=6).weights.name == "snapshot_iter_6.caffemodel"
    with pytest.raises(UpcallError, match=r"no snapshot at iteration 3; have \[6\]"):
        Classifier(trained, snapshot=3)


def deploy_net(text: str):
    from google.protobuf import text_format

    from upcall.proto import caffe_pb2

    return text_format.Parse(text, caffe_pb2.NetParameter())


def test_output_is_the_last_softmax_else_the_only_output(tmp_path):
    from upcall.results.classify import _output_blob

    fc = 'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" }'
    prob = 'layer { name: "sm" type: "Softmax" bottom: "fc" top: "p" }'
    # the Softmax is found by type, whatever the blob is called or sorts as
    assert _output_blob(deploy_net(fc + prob), ["p", "z_other"], tmp_path) == ("p", True)
    assert _output_blob(deploy_net(fc), ["fc"], tmp_path) == ("fc", False)
    with pytest.raises(UpcallError, match=r"deploy.prototxt: no Softmax layer and 2 outputs"):
        _output_blob(deploy_net(fc), ["fc", "fc2"], tmp_path)
