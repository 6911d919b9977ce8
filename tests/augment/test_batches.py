"""Online augmentation: the numpy transform, the job it writes, the torch engine and real Caffe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from tests.engines.test_train import SOLVER, caffemodel_blobs, make_job
from upcall.augment.batches import OnlineAugment, batch_rng
from upcall.augment.caffe_layer import FIRST_BATCH
from upcall.engines import get_engine
from upcall.errors import UpcallError
from upcall.job.config import JobConfig
from upcall.job.datasetinfo import tutorial_dataset
from upcall.job.nets import make_job as make_nets_job
from upcall.job.records import read_metrics
from upcall.job.solver import SolverSettings
from upcall.network import augment_layer as augment_net
from upcall.proto import caffe_pb2, read_text, to_text

ALL = OnlineAugment(shift=4, freq=2, tmask=6, fmask=8, mix=0.5, p=0.5, seed=3)


def ramp_batch(n: int = 16, h: int = 20, w: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Images whose cell (row r, column t) holds 100·(r+1) + t + 1: every cell says where it was."""
    rows = 100 * (np.arange(h)[:, None] + 1)
    cols = np.arange(w)[None, :] + 1
    images = np.broadcast_to((rows + cols).astype(np.float32), (n, 1, h, w)).copy()
    return images, np.arange(n) % 2


# ---- the transform ------------------------------------------------------------------------


def test_spec_parses_and_round_trips_through_param_str():
    a = augment_net.parse_augment("shift=4, freq=2,tmask=6,fmask=8,mix=0.5", seed=9)
    assert a == OnlineAugment(shift=4, freq=2, tmask=6, fmask=8, mix=0.5, seed=9)
    assert OnlineAugment.from_param_str(a.param_str()) == a
    assert augment_net.parse_augment("none") is None
    assert augment_net.parse_augment("shift=0,p=0.9") is None  # nothing switched on
    for bad, why in (
        ("shift=-1", "whole number"),
        ("mix=2", "from 0 to 1"),
        ("flip=1", "NAME=VALUE"),
        ("shift=x", "not a number"),
    ):
        with pytest.raises(UpcallError, match=rf"--augment '{bad}': .*{why}"):
            augment_net.parse_augment(bad)


def test_shapes_dtype_and_labels_kept():
    images, labels = ramp_batch()
    before = labels.copy()
    out = ALL.apply(images, labels, batch_rng(0, 0))
    assert out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_array_equal(labels, before)
    with pytest.raises(ValueError, match="below the image width"):
        OnlineAugment(shift=12).apply(images, labels, batch_rng(0, 0))


def test_time_is_never_mirrored():
    """Shifts and masks only: each row keeps its cells in time order, contiguous, from one row."""
    images, labels = ramp_batch()
    settings = OnlineAugment(shift=4, freq=2, tmask=6, fmask=8, p=0.7)
    changed = 0
    for index in range(30):
        out = settings.apply(images, labels, batch_rng(1, index))
        changed += int((out != images).any(axis=(1, 2, 3)).sum())
        for row in out.reshape(-1, out.shape[-1]):
            kept = row[row != 0]
            cols = kept % 100
            assert len(set(kept // 100)) <= 1  # one source row: frequency moves whole rows
            assert np.all(np.diff(cols) > 0)  # time order kept: never reversed
            assert np.all(cols[1:] - cols[:-1] >= 1)
    assert changed > 100  # the transforms did fire


def shifted(image: np.ndarray, k: int) -> np.ndarray:
    """Reference: columns moved ``k`` later in time (earlier if negative), vacated cells 0."""
    out = np.zeros_like(image)
    if k >= 0:
        out[..., k:] = image[..., : image.shape[-1] - k]
    else:
        out[..., :k] = image[..., -k:]
    return out


def test_time_shift_moves_columns_and_fills_with_zero():
    images, labels = ramp_batch(n=64)
    out = OnlineAugment(shift=3, p=1.0).apply(images, labels, batch_rng(2, 0))
    found = set()
    for src, dst in zip(images, out, strict=True):
        matches = [k for k in range(-3, 4) if np.array_equal(dst, shifted(src, k))]
        assert len(matches) == 1
        found.add(matches[0])
    assert found == set(range(-3, 4))


def test_mixing_adds_negatives_only():
    n = 12
    labels = np.array([1] * (n - 4) + [0] * 4)
    images = np.where(labels == 0, 1.0, 0.0)[:, None, None, None] * np.ones((n, 1, 6, 5))
    mixer = OnlineAugment(mix=1.0, p=1.0)
    for index in range(10):
        out = mixer.apply(images, labels, batch_rng(4, index))
        # positives became w·(a negative) with w in [0, 1]: never another positive (0)
        pos = out[labels == 1]
        assert np.all(pos > 0) and np.all(pos <= 1)
        assert np.all(out[labels == 0] == 1)  # a negative mixed with a negative stays 1
    lone = np.array([1, 1, 0])  # one negative: it is never mixed with itself
    imgs = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 1, 6, 5))
    out = mixer.apply(imgs, lone, batch_rng(0, 0))
    np.testing.assert_array_equal(out[2], imgs[2])
    only_positives = mixer.apply(imgs, np.ones(3), batch_rng(0, 0))
    np.testing.assert_array_equal(only_positives, imgs)


def test_draws_depend_on_seed_and_batch_index_only():
    images, labels = ramp_batch()
    a = ALL.apply(images, labels, batch_rng(5, 7))
    np.testing.assert_array_equal(a, ALL.apply(images, labels, batch_rng(5, 7)))
    assert not np.array_equal(a, ALL.apply(images, labels, batch_rng(5, 8)))
    assert not np.array_equal(a, ALL.apply(images, labels, batch_rng(6, 7)))


# ---- the job `upcall nets --augment` writes ------------------------------------------------


def test_nets_declares_a_train_only_python_layer(tmp_path):
    ds = tutorial_dataset("native", str(tmp_path / "ds"))
    plain = make_nets_job("whalenet", ds, SolverSettings())
    job = make_nets_job("whalenet", ds, SolverSettings(), augment=ALL)
    net = caffe_pb2.NetParameter()
    text_format.Parse(job.prototxts["train_val.prototxt"], net)
    layer = next(lp for lp in net.layer if lp.type == "Python")
    train_data = next(i for i, lp in enumerate(net.layer) if lp.name == "train-data")
    assert list(net.layer).index(layer) == train_data + 1
    assert (list(layer.bottom), list(layer.top)) == (["data", "label"], ["data"])
    assert layer.python_param.module == "upcall_augment_layer"
    assert OnlineAugment.from_param_str(layer.python_param.param_str) == ALL
    assert [r.phase for r in layer.include] == [caffe_pb2.TRAIN]
    del net.layer[list(net.layer).index(layer)]
    assert to_text(net) == plain.prototxts["train_val.prototxt"]  # nothing else changed
    assert job.prototxts["deploy.prototxt"] == plain.prototxts["deploy.prototxt"]
    assert "Python" not in plain.prototxts["train_val.prototxt"] and not plain.files
    assert job.config.augment == ALL.to_dict() and plain.config.augment is None
    src = Path(augment_net.__file__).parents[1]
    assert job.files["upcall_augment.py"] == (src / "augment" / "batches.py").read_bytes()
    assert (
        job.files["upcall_augment_layer.py"]
        == (src / "augment" / "caffe_layer.py").read_bytes()
    )


def augmented_job(root: Path, *, max_iter: int = 12, augment: OnlineAugment = ALL) -> Path:
    """test_train's tiny job with the augmentation layer and its modules, as `nets` adds them."""
    job = make_job(root, max_iter=max_iter)
    path = job / "train_val.prototxt"
    net = augment_net.add_layer(read_text(path, caffe_pb2.NetParameter()), augment, where="t")
    path.write_text(to_text(net))
    for name, data in augment_net.job_files().items():
        (job / name).write_bytes(data)
    config = json.loads((job / "config.json").read_text())
    (job / "config.json").write_text(json.dumps({**config, "augment": augment.to_dict()}))
    return job


def test_torch_engine_trains_with_augmentation_and_resumes_exactly(tmp_path):
    straight = augmented_job(tmp_path / "a")
    get_engine("torch", threads=1).train(straight)
    halves = augmented_job(tmp_path / "b")
    (halves / "solver.prototxt").write_text(SOLVER.format(max_iter=6))
    get_engine("torch", threads=1).train(halves)
    (halves / "solver.prototxt").write_text(SOLVER.format(max_iter=12))
    get_engine("torch", threads=1).train(halves, resume=True)
    a = caffemodel_blobs(straight / "snapshot_iter_12.caffemodel")
    b = caffemodel_blobs(halves / "snapshot_iter_12.caffemodel")
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y)
    assert read_metrics(halves) == read_metrics(straight)
    assert JobConfig.read(straight).augment == ALL.to_dict()
    # the augmentation changed training: the same job without it ends elsewhere
    plain = make_job(tmp_path / "c")
    get_engine("torch", threads=1).train(plain)
    c = caffemodel_blobs(plain / "snapshot_iter_12.caffemodel")
    assert not np.array_equal(a["fc2"][0], c["fc2"][0])


def test_torch_engine_refuses_an_unknown_python_layer(tmp_path):
    job = augmented_job(tmp_path, max_iter=2)
    path = job / "train_val.prototxt"
    path.write_text(path.read_text().replace("OnlineAugmentLayer", "MyLayer"))
    with pytest.raises(UpcallError, match=r"Python layer upcall_augment_layer.MyLayer is not one"):
        get_engine("torch", threads=1).train(job)


def test_digits_engine_refuses_the_python_layer(tmp_path):
    from upcall.digits.fields import custom_network
    from upcall.job.spec import load_job

    job = augmented_job(tmp_path, max_iter=2)
    with pytest.raises(UpcallError, match=r"'augment' is a Python layer .* --engine torch"):
        custom_network(load_job(job))


# ---- real Caffe -----------------------------------------------------------------------------

_CAFFE_FORWARD = """
import json, sys
import numpy as np
import caffe
p = json.loads(PARAMS)
caffe.set_mode_cpu()
net = caffe.Net(p["net"], caffe.TRAIN)
x = np.load(p["inputs"])
out = []
for i in range(p["batches"]):
    net.blobs["data"].data[...] = x["images"]
    net.blobs["label"].data[...] = x["labels"]
    net.forward()
    out.append(net.blobs["data"].data.copy())
np.save(p["out"], np.stack(out))
print(json.dumps({"ok": True}))
"""


def test_caffe_layer_gives_the_torch_layers_images(caffe, tmp_path):
    """pycaffe's caffe.Net runs the job's copy of the layer: batch for batch the same floats
    as the torch engine's layer (the same numpy code, host numpy against the root's 1.19)."""
    import torch

    from upcall.engines.torch.pylayers import OnlineAugmentLayer

    images, labels = ramp_batch(n=8, h=24, w=16)
    images = images - 700  # mean-subtracted: negative values too
    n, c, h, w = images.shape
    net = caffe_pb2.NetParameter(name="augment")
    for top, dims in (("data", [n, c, h, w]), ("label", [n])):
        lp = net.layer.add(name=top, type="Input", top=[top])
        lp.input_param.shape.add(dim=dims)
    stub = net.layer.add(name="stub", type="Data", top=["data", "label"])
    stub.include.add(phase=caffe_pb2.TRAIN)
    net = augment_net.add_layer(net, ALL, where="test")
    del net.layer[2]  # the stub: the Input layers feed the augmentation layer
    (tmp_path / "net.prototxt").write_text(to_text(net))
    for name, data in augment_net.job_files().items():
        (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "inputs.npz", images=images, labels=labels.astype(np.float32))
    params = {
        "net": str(tmp_path / "net.prototxt"),
        "inputs": str(tmp_path / "inputs.npz"),
        "out": str(tmp_path / "out.npy"),
        "batches": 3,
    }
    caffe.run_pycaffe(
        _CAFFE_FORWARD.replace("PARAMS", repr(json.dumps(params))),
        binds=[tmp_path],
        cwd=tmp_path,
        # as the caffe engine resumes at iteration 5: the layer starts at batch 5
        env={**caffe.python_env(tmp_path), FIRST_BATCH: "5"},
    )
    by_caffe = np.load(tmp_path / "out.npy")
    lp = next(x for x in net.layer if x.type == "Python")
    layer = OnlineAugmentLayer(lp, [(n, c, h, w), (n,)], None)
    layer.batches = 5
    for i in range(3):
        mine = layer(torch.from_numpy(images), torch.from_numpy(labels)).numpy()
        np.testing.assert_array_equal(by_caffe[i], mine)
    assert not np.array_equal(by_caffe[0], by_caffe[1])


def test_real_caffe_trains_the_job_with_its_python_layer(caffe, tmp_path):
    job = augmented_job(tmp_path, max_iter=6)
    summary = get_engine("caffe", threads=1).train(job)
    assert summary.iterations == 6
    log = (job / "caffe_output.log").read_text()
    assert "Creating layer augment" in log and "Optimization Done" in log
    assert (job / "snapshot_iter_6.caffemodel").is_file()
    (job / "solver.prototxt").write_text(SOLVER.format(max_iter=8))
    assert get_engine("caffe", threads=1).train(job, resume=True).iterations == 8
