"""load_model on every kind of model path, with real files: a trained job, its ONNX and Caffe
exports, a DIGITS download.tar.gz laid out as DIGITS lays it out, and a folder of
deploy.prototxt + caffemodel + mean + labels. Each gives the job's probabilities; bad archives
and folders are one-line errors."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile

import numpy as np
import pytest

from tests.inference.test_classify import probabilities, spectrogram_inputs
from upcall.cli import main
from upcall.errors import UpcallError
from upcall.inference import load_model
from upcall.inference.classify import classify
from upcall.inference.labels import positive_index

ATOL = 1e-5  # float32 nets, summed in different orders by different backends
# DIGITS's download (digits/model/views.py): these files, flat, at the archive's top level
DIGITS_FILES = ("solver.prototxt", "train_val.prototxt", "deploy.prototxt", "original.prototxt")


def stored(model, n, rng):
    """n random uint8 images of the model's stored size."""
    spec = model.input_spec
    return rng.integers(0, 256, (n, 1, spec.height, spec.width), dtype=np.uint8)


def digits_files(job) -> dict[str, bytes]:
    """A DIGITS download's members, made from a job's files."""
    dataset = job.parent.parent / "dataset"
    files = {n: (job / ("train_val.prototxt" if n == "original.prototxt" else n)).read_bytes()
             for n in DIGITS_FILES}  # fmt: skip
    files["labels.txt"] = (dataset / "labels.txt").read_bytes()
    files["mean.binaryproto"] = (dataset / "mean.binaryproto").read_bytes()
    files["snapshot_iter_6.caffemodel"] = (job / "snapshot_iter_6.caffemodel").read_bytes()
    info = {"image dimensions": [129, 30, 1], "image resize mode": "squash", "framework": "caffe"}
    files["info.json"] = json.dumps(info, indent=2).encode()
    return files


def write_tar(path, members: dict[str, bytes], *, link: str | None = None):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo("evil")
            info.type, info.linkname = tarfile.SYMTYPE, link
            t.addfile(info)
    return path


@pytest.fixture(scope="module")
def download(tiny_job, tmp_path_factory):
    return write_tar(tmp_path_factory.mktemp("digits") / "download.tar.gz", digits_files(tiny_job))


@pytest.fixture(scope="module")
def deploy_folder(tiny_job, tmp_path_factory):
    """deploy.prototxt, the caffemodel, mean and labels: no train_val, solver or info.json."""
    folder = tmp_path_factory.mktemp("caffe") / "model"
    folder.mkdir()
    files = digits_files(tiny_job)
    for name in ("deploy.prototxt", "labels.txt", "mean.binaryproto"):
        (folder / name).write_bytes(files[name])
    (folder / "whales.caffemodel").write_bytes(files["snapshot_iter_6.caffemodel"])
    return folder


def test_a_job_is_one_model(tiny_job, tmp_path, rng):
    model = load_model(tiny_job)
    assert (model.kind, model.backend, model.class_names) == ("job", "torch", ("not-whale", "whale"))
    assert (model.positive_class, model.positive_index) == ("whale", 1)
    spec = model.input_spec
    assert (spec.height, spec.width, spec.native, spec.spectrogram_mode) == (129, 30, True, "tutorial")
    paths = spectrogram_inputs(tmp_path, rng)[:3]  # the PNGs
    from upcall.inference.inputs import prepare

    got = model.probabilities(np.stack([prepare(p, spec) for p in paths]))
    np.testing.assert_allclose(got, probabilities(classify(tiny_job, paths)), atol=ATOL)


def test_exports_give_the_jobs_probabilities(tiny_job, tmp_path, rng):
    job = load_model(tiny_job)
    onnx, caffe = tmp_path / "m.onnx", tmp_path / "caffe"
    assert main(["export", str(tiny_job), "--format", "onnx", "--out", str(onnx)]) == 0
    assert main(["export", str(tiny_job), "--format", "caffe", "--out", str(caffe)]) == 0
    images = stored(job, 50, rng)
    want = job.probabilities(images)
    for path, kind, backend in ((onnx, "onnx", "onnx"), (caffe, "caffe-export", "torch")):
        model = load_model(path)
        assert (model.kind, model.backend, model.input_spec) == (kind, backend, job.input_spec)
        assert model.class_names == job.class_names and model.positive_class == "whale"
        np.testing.assert_allclose(model.probabilities(images), want, atol=ATOL)
    with pytest.raises(UpcallError, match="holds one snapshot"):
        load_model(onnx, snapshot=6)


def test_a_digits_download_gives_the_jobs_probabilities(tiny_job, download, tmp_path, rng):
    job, model = load_model(tiny_job), load_model(download)
    assert (model.kind, model.path, model.class_names) == ("digits", download, job.class_names)
    spec = model.input_spec  # the tutorial's spectrograms at the mean image's size
    assert (spec.height, spec.width, spec.resize_mode, spec.spectrogram_mode) == (
        129, 30, "squash", "tutorial"
    )  # fmt: skip
    assert model.deploy.preprocess.crop_size == job.deploy.preprocess.crop_size == 28
    images = stored(job, 50, rng)
    np.testing.assert_allclose(model.probabilities(images), job.probabilities(images), atol=ATOL)
    samples = rng.normal(0, 1000, (5, 4000))  # window audio, as detection scores it
    np.testing.assert_allclose(model.score(samples), job.score(samples), atol=ATOL)
    # `upcall classify` takes the archive as it takes a job
    paths = spectrogram_inputs(tmp_path, rng)
    want = probabilities(classify(tiny_job, paths))
    np.testing.assert_allclose(probabilities(classify(download, paths)), want, atol=ATOL)
    # what detect.json records names the archive, not the temporary folder: the same every run
    weights, digest = model.fingerprint()
    assert (weights, digest) == load_model(download).fingerprint()
    assert weights == f"{download} (snapshot_iter_6.caffemodel)"


def test_a_digits_zip_and_a_folder_of_one_folder(tiny_job, tmp_path, rng):
    files = digits_files(tiny_job)
    with zipfile.ZipFile(tmp_path / "download.zip", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    nested = write_tar(tmp_path / "nested.tgz", {f"job1/{n}": d for n, d in files.items()})
    images = stored(load_model(tiny_job), 20, rng)
    want = load_model(tiny_job).probabilities(images)
    unpacked = tmp_path / "unpacked"  # as a user unpacks it: solver.prototxt and all
    unpacked.mkdir()
    for name, data in files.items():
        (unpacked / name).write_bytes(data)
    for path in (tmp_path / "download.zip", nested, unpacked):
        model = load_model(path)
        assert model.kind == "digits"
        np.testing.assert_allclose(model.probabilities(images), want, atol=ATOL)


def test_a_deploy_folder_gives_the_jobs_probabilities(tiny_job, deploy_folder, tmp_path, rng):
    from dataclasses import replace

    from upcall.inference.torch.predict import TorchPredictor

    job, model = load_model(tiny_job), load_model(deploy_folder)
    assert model.kind == "caffe-folder" and model.deploy.weights.name == "whales.caffemodel"
    pre = model.deploy.preprocess  # the mean is 129×30 and the net takes 28×28: a centre crop
    assert (pre.crop_size, pre.scale) == (28, 1.0)  # no train_val.prototxt: Caffe's defaults
    np.testing.assert_array_equal(pre.mean, job.deploy.preprocess.mean)
    images = stored(job, 50, rng)
    unscaled = replace(job.deploy, preprocess=replace(job.deploy.preprocess, scale=1.0))
    want = TorchPredictor(unscaled).probabilities(images)
    np.testing.assert_allclose(model.probabilities(images), want, atol=ATOL)
    # with the job's train_val.prototxt beside it, its TEST transform (the scale) is used
    folder = tmp_path / "with-train-val"
    shutil.copytree(deploy_folder, folder)
    shutil.copy(tiny_job / "train_val.prototxt", folder)
    got = load_model(folder).probabilities(images)
    np.testing.assert_allclose(got, job.probabilities(images), atol=ATOL)


def test_real_caffe_runs_a_deploy_folder(tiny_job, deploy_folder, caffe, rng):
    images = stored(load_model(tiny_job), 30, rng)
    want = load_model(deploy_folder).probabilities(images)
    got = load_model(deploy_folder, backend="caffe").probabilities(images)
    np.testing.assert_allclose(got, want, atol=ATOL)


def one_line(capsys, argv, *needles):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert all(n in err[0] for n in needles), err[0]


def test_bad_archives_are_one_line_errors(tiny_job, tmp_path, rng, capsys):
    png = spectrogram_inputs(tmp_path, rng)[0]
    files = digits_files(tiny_job)
    evil = write_tar(tmp_path / "evil.tar.gz", {**files, "../../escaped.txt": b"x"})
    one_line(capsys, ["classify", str(evil), str(png)], str(evil), "'../../escaped.txt'", "outside")
    assert not (tmp_path / "escaped.txt").exists()
    linked = write_tar(tmp_path / "link.tar.gz", files, link="/etc/passwd")
    one_line(capsys, ["classify", str(linked), str(png)], str(linked), "'evil'", "link")
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    one_line(capsys, ["classify", str(tmp_path / "junk.tar.gz"), str(png)], "junk.tar.gz")
    empty = write_tar(tmp_path / "empty.tar", {"readme.txt": b"hi"})
    one_line(capsys, ["classify", str(empty), str(png)], str(empty), "no deploy.prototxt")


def test_bad_folders_are_one_line_errors(deploy_folder, tmp_path, rng, capsys):
    png = spectrogram_inputs(tmp_path, rng)[0]
    folder = tmp_path / "model"
    shutil.copytree(deploy_folder, folder)
    (folder / "labels.txt").write_text("noise\nwhale\nship\n")
    one_line(capsys, ["classify", str(folder), str(png)], "labels.txt", "3 class names", "2 classes")
    (folder / "labels.txt").write_text("noise\nwhale\n")
    shutil.copy(folder / "whales.caffemodel", folder / "other.caffemodel")
    one_line(capsys, ["classify", str(folder), str(png)], str(folder), "2 .caffemodel files")
    for model in folder.glob("*.caffemodel"):
        model.unlink()
    one_line(capsys, ["classify", str(folder), str(png)], str(folder), "no .caffemodel")
    (folder / "deploy.prototxt").unlink()
    one_line(capsys, ["classify", str(folder), str(png)], str(folder), "not a model")
    (folder / "labels.txt").unlink()


def test_the_positive_class_rule():
    assert positive_index(("not-whale", "whale")) == 1
    assert positive_index(("Whale", "not_whale")) == 0  # rule 1: the name, in any case
    assert positive_index(("no call", "upcall")) == 1  # rule 2: the other of a negative
    assert positive_index(("noise", "upcall")) == 1
    assert positive_index(("upcall", "background")) == 0
    assert positive_index(("notupcall", "upcall")) == 1
    assert positive_index(("cat", "dog")) == 1  # rule 3: the last class
    assert positive_index(("noise", "other")) == 1  # two negatives: no telling, the last
    assert positive_index(("a", "b", "c")) == 2


def test_the_digits_engines_scores_are_the_torch_backends(tiny_job, rng):
    """The DIGITS engine scores fetched snapshots below inference (engines.torch.deploy): the
    very numbers the torch backend gives."""
    from upcall.engines.torch.deploy import deploy_probabilities

    model = load_model(tiny_job, snapshot=6)
    images = stored(model, 70, rng)  # more than one batch of 64
    got = deploy_probabilities(tiny_job, images, snapshot=6)
    np.testing.assert_array_equal(got, model.probabilities(images))
