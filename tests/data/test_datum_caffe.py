"""Real Caffe 1.0 reads the LMDBs and mean files we write (issue 3 §4).

`caffe train` learns from our Data records through a transform that subtracts our mean, and
pycaffe's own Data layer decodes our records (raw and PNG) to exactly the pixels we wrote.
The datasets come from our own builder (`upcall lmdb`), so these check the real writer.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from upcall.data import datum as lmdb_io
from upcall.data.dataset import DatasetSettings, build_dataset
from upcall.proto import caffe_pb2, read_binary

HEIGHT, WIDTH = 129, 30  # the tutorial's native spectrogram: 129 frequency rows × 30 time steps
N_IMAGES = 8


def write_dataset(root: Path, images: np.ndarray, labels: np.ndarray, *, encoding: str) -> Path:
    """Spectrogram-sized PNGs, DIGITS lists, then our dataset builder (`upcall lmdb --size native`)."""
    lists = root / "lists"
    lists.mkdir(parents=True)
    lines = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        png = root / "png" / f"train{i}.png"
        png.parent.mkdir(exist_ok=True)
        Image.fromarray(image[0]).save(png)
        lines.append(f"{png} {label}\n")
    (lists / "train.txt").write_text("".join(lines))
    (lists / "val.txt").write_text("".join(lines[:2]))
    (lists / "labels.txt").write_text("not-whale\nwhale\n")
    settings = DatasetSettings(size=None, encoding=encoding, workers=1)
    build_dataset(lists, out=root / "dataset", settings=settings)
    return root / "dataset"


@pytest.fixture(params=["png", "none"])
def dataset(request, tmp_path, rng):
    images = rng.integers(0, 256, (N_IMAGES, 1, HEIGHT, WIDTH), dtype=np.uint8)
    images[:, 0, 0, 0] = [0, 255, 1, 254, 2, 253, 3, 252]  # the extremes survive decoding
    labels = np.array([0, 1] * (N_IMAGES // 2))
    root = write_dataset(tmp_path / request.param, images, labels, encoding=request.param)
    return root, images, labels


def data_layer(source: Path, *, batch_size: int, mean_file: Path | None = None) -> str:
    transform = (
        f"transform_param {{ mean_file: '{mean_file}' scale: 0.00390625 }}" if mean_file else ""
    )
    return f"""
layer {{ name: 'data' type: 'Data' top: 'data' top: 'label' {transform}
  data_param {{ source: '{source}' backend: LMDB batch_size: {batch_size} }} }}"""


TINY_NET = """
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
  convolution_param { num_output: 4 kernel_size: 5 stride: 4 weight_filler { type: 'xavier' } } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'conv1' top: 'ip1'
  inner_product_param { num_output: 2 weight_filler { type: 'xavier' } } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip1' bottom: 'label' top: 'loss' }
"""

SOLVER = """net: "train_val.prototxt"
base_lr: 0.01
momentum: 0.9
lr_policy: "fixed"
display: 1
max_iter: 4
snapshot_prefix: "snapshot"
solver_mode: CPU
random_seed: 1
"""


def test_caffe_train_learns_from_our_lmdb_and_mean(caffe, dataset, tmp_path):
    root, _, _ = dataset
    job = tmp_path / "job"
    job.mkdir()
    net = data_layer(root / "train_db", batch_size=4, mean_file=root / "mean.binaryproto")
    (job / "train_val.prototxt").write_text(f"name: 'tiny'{net}{TINY_NET}")
    (job / "solver.prototxt").write_text(SOLVER)

    log = caffe.run_tool("caffe", "train", "--solver=solver.prototxt", cwd=job, binds=[root]).stderr

    assert f"Top shape: 4 1 {HEIGHT} {WIDTH} ({4 * HEIGHT * WIDTH})" in log  # our records' shape
    assert "Optimization Done." in log
    losses = {int(i): float(v) for i, v in re.findall(r"Iteration (\d+)[^\n]*, loss = (\S+)", log)}
    assert sorted(losses) == [0, 1, 2, 3, 4]
    assert all(math.isfinite(v) and v > 0 for v in losses.values()), losses
    model = read_binary(job / "snapshot_iter_4.caffemodel", caffe_pb2.NetParameter())
    shapes = {
        layer.name: [list(b.shape.dim) for b in layer.blobs] for layer in model.layer if layer.blobs
    }
    conv_out = (HEIGHT - 5) // 4 + 1, (WIDTH - 5) // 4 + 1
    assert shapes == {
        "conv1": [[4, 1, 5, 5], [4]],
        "ip1": [[2, 4 * conv_out[0] * conv_out[1]], [2]],
    }
    assert (job / "snapshot_iter_4.solverstate").is_file()


PYCAFFE_READ = """
import json
import caffe
import numpy as np
from caffe.proto import caffe_pb2

net = caffe.Net({proto!r}, caffe.TEST)
net.forward()
blob = caffe_pb2.BlobProto()
blob.ParseFromString(open({mean!r}, 'rb').read())
np.save({out!r} + '/data.npy', net.blobs['data'].data)
np.save({out!r} + '/label.npy', net.blobs['label'].data)
np.save({out!r} + '/mean.npy', caffe.io.blobproto_to_array(blob))
print(json.dumps('ok'))
"""


def test_pycaffe_decodes_our_records_and_mean_exactly(caffe, dataset, tmp_path):
    root, images, labels = dataset
    out = tmp_path / "out"
    out.mkdir()
    (out / "read.prototxt").write_text(
        f"name: 'read'{data_layer(root / 'train_db', batch_size=N_IMAGES)}"
    )
    script = PYCAFFE_READ.format(
        proto=str(out / "read.prototxt"), mean=str(root / "mean.binaryproto"), out=str(out)
    )

    assert caffe.run_pycaffe(script, binds=[root, out]) == "ok"

    data = np.load(out / "data.npy")  # float32 (N, C, H, W), records in key order (shuffled)
    assert data.shape == (N_IMAGES, 1, HEIGHT, WIDTH)
    assert np.array_equal(data, np.round(data))
    # Every record is exactly one of our images, under its own label, each image once.
    got = zip(data.astype(np.uint8), np.load(out / "label.npy"), strict=True)
    wrote = zip(images, labels, strict=True)
    assert sorted((im.tobytes(), int(lab)) for im, lab in got) == sorted(
        (im.tobytes(), int(lab)) for im, lab in wrote
    )
    mean = np.load(out / "mean.npy")
    assert mean.shape == (1, 1, HEIGHT, WIDTH)
    np.testing.assert_array_equal(mean[0], np.around(images.mean(axis=0)))  # DIGITS rounds the mean
    np.testing.assert_array_equal(mean[0], lmdb_io.read_mean(root / "mean.binaryproto"))
