"""Tests for upcall export: the ONNX model (checked with onnxruntime against the torch engine),
its metadata, classify on the .onnx with and without torch, and the Caffe folder (checked with
real Caffe)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.engines.test_train import images_for, make_job
from tests.inference.test_classify import make_resized_job, probabilities, spectrogram_inputs
from tests.network.test_zoo import _prepared
from tests.test_layering import block_torch
from upcall.cli import main
from upcall.data.resize import resize
from upcall.engines import get_engine
from upcall.export.info import deploy_info
from upcall.inference import load_model
from upcall.inference.classify import classify
from upcall.inference.onnx.metadata import DeployInfo
from upcall.job.deploy import Deploy, Preprocess, read_deploy
from upcall.proto import caffe_pb2

ATOL = 1e-5  # float32 on both sides, summed in different orders
SPREAD = 40.0  # network inputs: uint8 pixels less the mean spread about this much


@pytest.fixture(scope="session")
def trained(tiny_job):
    return tiny_job  # conftest: shared with the detection tests


@pytest.fixture(scope="module")
def model(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", str(trained), "--format", "onnx", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def resized(tmp_path_factory):
    """256×256 images, a full-size mean image and a 227 crop: the transform in the metadata."""
    job = make_resized_job(tmp_path_factory.mktemp("export256"), max_iter=2)
    get_engine("torch", threads=1).train(job)
    return job


def stored_images(job, n, rng):
    """n random uint8 images of the job's stored size (before the crop)."""
    spec = deploy_info(load_model(job)).input
    return rng.integers(0, 256, (n, 1, spec["height"], spec["width"]), dtype=np.uint8)


def test_onnx_gives_the_torch_probabilities(trained, model, rng):
    images = stored_images(trained, 128, rng)
    want = load_model(trained).predictor.probabilities(images)
    got = load_model(model).predictor.probabilities(images)  # a .onnx path: onnxruntime
    diff = np.abs(got - want).max()
    print(f"tiny: max |torch - onnxruntime| = {diff:.3g}")
    assert diff <= ATOL
    assert np.ptp(want[:, 1]) > 1e-3  # the inputs do not all score alike


def test_default_path_and_a_cropped_mean_image(resized, rng, capsys):
    assert main(["export", str(resized), "--format", "onnx"]) == 0
    out = resized / "export" / "snapshot_iter_2.onnx"
    assert capsys.readouterr().out == f"written: {out}\n"
    predictor = load_model(out).predictor
    assert predictor.deploy.preprocess.mean.shape == (1, 256, 256)
    assert predictor.deploy.preprocess.crop_size == 227
    # the training images' kind (random uint8 noise saturates this net): each class, squashed
    native = images_for(np.arange(100) % 2, rng)
    images = np.stack([resize(im[0], height=256, width=256)[None] for im in native])
    want = load_model(resized).predictor.probabilities(images)
    got = predictor.probabilities(images)
    diff = np.abs(got - want).max()
    print(f"tiny256: max |torch - onnxruntime| = {diff:.3g}")
    assert diff <= ATOL
    assert np.ptp(want[:, 1]) > 1e-3  # the inputs do not all score alike


def calibrated_deploy(name, tmp_path, rng):
    """A registered network's deploy net with random weights and BatchNorm statistics taken
    from one batch (so the outputs are not saturated), saved as a caffemodel."""
    import torch

    from upcall.engines.torch.caffemodel import save_caffemodel
    from upcall.engines.torch.layers import BatchNorm
    from upcall.engines.torch.net import CaffeNet

    _, net = _prepared(name)
    shape = tuple(net.layer[0].input_param.shape[0].dim[1:])
    torch.manual_seed(0)
    cnet = CaffeNet(net, phase=caffe_pb2.TEST, input_shapes={"data": (1, *shape)})
    norms = [m for m in cnet.modules() if isinstance(m, BatchNorm)]
    x = torch.from_numpy(SPREAD * rng.standard_normal((16, *shape)).astype(np.float32))
    with torch.no_grad():
        for m in norms:
            m.global_stats = False
        cnet({"data": x})
    weights = tmp_path / f"{name}_iter_1.caffemodel"
    save_caffemodel(cnet, weights)
    return Deploy(
        job=tmp_path,
        prototxt=tmp_path / "deploy.prototxt",
        net=net,
        weights=weights,
        input="data",
        input_shape=shape,
        output="softmax",
        is_prob=True,
        class_names=("not-whale", "whale"),
        preprocess=Preprocess(mean=None, crop_size=0, scale=1.0),
    )


@pytest.mark.parametrize("name", ["whalenet", "whalenet-small", "alexnet"])
def test_registered_networks_export_exactly(name, tmp_path, rng):
    from upcall.export.onnx import onnx_bytes
    from upcall.inference.torch.predict import TorchPredictor

    deploy = calibrated_deploy(name, tmp_path, rng)
    session = ort.InferenceSession(onnx_bytes(deploy), providers=["CPUExecutionProvider"])
    x = SPREAD * rng.standard_normal((100, *deploy.input_shape)).astype(np.float32)
    want = TorchPredictor(deploy).predict(x)
    got = session.run(["softmax"], {"data": x})[0].reshape(want.shape)
    diff = np.abs(got - want).max()
    print(f"{name}: max |torch - onnxruntime| = {diff:.3g}")
    assert diff <= ATOL
    assert np.ptp(want[:, 1]) > 1e-3


def test_metadata_round_trip(trained, model):
    m = onnx.load(str(model))
    info = DeployInfo.from_props({p.key: p.value for p in m.metadata_props}, source=str(model))
    want = deploy_info(load_model(trained))
    assert info == want
    assert info.class_names == ["not-whale", "whale"]
    assert info.source["snapshot"] == 6 and info.source["network"] == "tiny"
    assert info.spectrograms["mode"] == "tutorial"
    assert (info.input["height"], info.input["width"]) == (129, 30)
    pre, job_pre = info.preprocess(), read_deploy(trained).preprocess
    assert (pre.crop_size, pre.scale) == (job_pre.crop_size, job_pre.scale)
    np.testing.assert_array_equal(pre.mean, job_pre.mean)  # exact, through JSON
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N"  # a dynamic batch axis
    assert [d.dim_value for d in dims[1:]] == info.input_shape


def test_classify_takes_the_onnx_model(trained, model, tmp_path, rng):
    paths = spectrogram_inputs(tmp_path, rng)
    want, got = classify(trained, paths), classify(model, paths)
    assert [r["label"] for r in got] == [r["label"] for r in want]
    np.testing.assert_allclose(probabilities(got), probabilities(want), rtol=0, atol=ATOL)


def test_classify_on_onnx_needs_no_torch(trained, model, tmp_path, rng):
    paths = spectrogram_inputs(tmp_path, rng)
    env = {**__import__("os").environ, **block_torch(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "upcall", "classify", str(model), *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    want = classify(trained, paths)
    assert done.stdout.splitlines() == [
        f"{r['input']}\t{r['label']}\tnot-whale={r['not-whale']:.4f}\twhale={r['whale']:.4f}"
        for r in want
    ]


def test_caffe_folder_gives_the_probabilities_in_real_caffe(trained, caffe, tmp_path, rng):
    from upcall.inference.caffe import PycaffePredictor
    from upcall.inference.torch.predict import TorchPredictor

    out = tmp_path / "caffe"
    assert main(["export", str(trained), "--format", "caffe", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".upcall-made",  # a later export may replace it
        "deploy.prototxt",
        "export.json",
        "labels.txt",
        "mean.binaryproto",
        "snapshot_iter_6.caffemodel",
    ]
    assert (out / "labels.txt").read_text() == "not-whale\nwhale\n"
    deploy = load_model(out).deploy  # export.json beside deploy.prototxt: a Caffe export
    images = stored_images(trained, 100, rng)
    want = load_model(trained).predictor.probabilities(images)
    got = PycaffePredictor(deploy).probabilities(images)
    diff = np.abs(got - want).max()
    print(f"tiny: max |torch - real Caffe on the export| = {diff:.3g}")
    assert diff <= ATOL
    np.testing.assert_array_equal(TorchPredictor(deploy).probabilities(images), want)


def test_untrained_job_is_a_one_line_error(tmp_path, capsys):
    job = make_job(tmp_path, max_iter=6)
    assert main(["export", str(job), "--format", "onnx"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has it been trained?" in err


def test_unsupported_layer_is_a_one_line_error(trained, tmp_path, capsys):
    job = tmp_path / "job"
    shutil.copytree(trained, job)
    text = (job / "deploy.prototxt").read_text()
    softmax = text.index('layer { name: "prob"')
    power = 'layer { name: "cube" type: "Power" bottom: "fc2" top: "fc2" }\n'
    (job / "deploy.prototxt").write_text(text[:softmax] + power + text[softmax:])
    assert main(["export", str(job), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "layer 'cube' has type 'Power', which upcall cannot export to ONNX" in err
    assert not (tmp_path / "m.onnx").exists()


def test_an_out_that_exists_or_is_not_onnx_is_refused_up_front(tmp_path, capsys):
    job = make_job(tmp_path, max_iter=6)  # never trained: the --out check comes before all else
    taken = tmp_path / "taken.onnx"
    taken.write_bytes(b"mine")
    cases = [
        ("onnx", taken, "already exists (a file); remove it or choose another --out"),
        ("onnx", tmp_path / "model.pt", "an ONNX model's file name must end in .onnx"),
        ("onnx", tmp_path / "folder.onnx", "already exists (a folder)"),
        ("caffe", taken, "already exists (a file)"),
        ("caffe", tmp_path / "jobs", "holds"),  # the job's own parent: an input
    ]
    (tmp_path / "folder.onnx").mkdir()
    for format, out, problem in cases:
        assert main(["export", str(job), "--format", format, "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"error: {out}: {problem}" in err[0], err
    assert taken.read_bytes() == b"mine" and not (tmp_path / "model.pt").exists()


def test_the_readme_names_the_default_path_export_writes():
    """The README's workflow table gives the path the command writes (checked by
    test_default_path_and_a_cropped_mean_image), not the model.onnx it never wrote."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "`JOBS/whalenet-lr0.01/export/snapshot_iter_N.onnx`" in readme
    assert "| `model.onnx`" not in readme
