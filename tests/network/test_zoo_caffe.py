"""The generated nets, run by real Caffe 1.0: a few training iterations, and pycaffe's shapes."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import lmdb
import numpy as np
import pytest

from upcall.data.datum import array_to_datum, write_mean
from upcall.job import nets
from upcall.job.datasetinfo import load_dataset
from upcall.network.shapes import infer_shapes
from upcall.network.zoo import NETWORKS
from upcall.proto import caffe_pb2, read_text, to_text

TRAIN_IMAGES, VAL_IMAGES = 4, 2


def _write_db(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            txn.put(b"%08d_%d" % (i, label), array_to_datum(image, int(label)))
    env.close()


def _dataset(folder: Path, rng: np.random.Generator, *, height: int, width: int) -> Path:
    """A real dataset folder (ARCHITECTURE.md §4) with PNG-encoded Datums, as `upcall lmdb` makes."""
    folder.mkdir()
    n = TRAIN_IMAGES + VAL_IMAGES
    images = rng.integers(0, 256, size=(n, 1, height, width), dtype=np.uint8)
    labels = np.arange(n) % 2
    _write_db(folder / "train_db", images[:TRAIN_IMAGES], labels[:TRAIN_IMAGES])
    _write_db(folder / "val_db", images[TRAIN_IMAGES:], labels[TRAIN_IMAGES:])
    write_mean(folder / "mean.binaryproto", np.around(images[:TRAIN_IMAGES].mean(0)))
    (folder / "labels.txt").write_text("not-whale\nwhale\n")
    size = "native" if (height, width) == (129, 30) else f"{width}x{height}"
    info = {
        "image": {"height": height, "width": width, "channels": 1},
        "size": size,
        "counts": {"train": TRAIN_IMAGES, "val": VAL_IMAGES},
        "labels": ["not-whale", "whale"],
    }
    (folder / "dataset.json").write_text(json.dumps(info))
    return folder


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, caffe) -> dict[str, Path]:
    """One job per registered network, batch 2, one epoch of 2 iterations, no snapshots."""
    root = tmp_path_factory.mktemp("caffe_nets")
    rng = np.random.default_rng(0)
    datasets = {
        "native": _dataset(root / "native", rng, height=129, width=30),
        "big": _dataset(root / "big", rng, height=227, width=227),
    }
    out = {}
    for name, network in NETWORKS.items():
        data = load_dataset(datasets["native" if network.native_only else "big"])
        job = nets.make_job(name, data, nets.SolverSettings(epochs=1, seed=1), batch_size=2)
        folder = nets.write_job(job, root / "jobs")
        solver = read_text(folder / "solver.prototxt", caffe_pb2.SolverParameter())
        assert (solver.max_iter, list(solver.test_iter), solver.test_interval) == (2, [1], 2)
        # Keep CPU time small: no test pass at iteration 0, no multi-MB snapshots.
        solver.test_initialization = False
        solver.snapshot = 0
        solver.snapshot_after_train = False
        (folder / "solver.prototxt").write_text(to_text(solver))
        out[name] = folder
    return out


@pytest.mark.parametrize("name", list(NETWORKS))
def test_caffe_trains_the_generated_train_val(caffe, jobs, name):
    folder = jobs[name]
    result = caffe.run_tool(
        "caffe",
        "train",
        "--solver=solver.prototxt",
        cwd=folder,
        binds=(folder.parent.parent,),
        timeout=300,
    )
    log = result.stderr
    assert "Optimization Done." in log
    losses = [float(v) for v in re.findall(r"Train net output #\d+: loss = (\S+)", log)]
    assert losses and all(math.isfinite(v) for v in losses)
    tested = re.findall(r"Iteration 2, Testing net.*?Test net output #0: (\S+) = (\S+)", log, re.S)
    assert tested and tested[0][0] in ("accuracy", "loss1/accuracy")
    assert 0.0 <= float(tested[0][1]) <= 1.0


_SHAPES = """
import json, caffe
caffe.set_mode_cpu()
out = {}
for name, (path, phase) in json.loads(%r).items():
    net = caffe.Net(path, getattr(caffe, phase))
    out[name] = {blob: list(b.data.shape) for blob, b in net.blobs.items()}
print(json.dumps(out))
"""


def test_pycaffe_blob_shapes_match_ours(caffe, jobs):
    plan = {}
    for name, folder in jobs.items():
        plan[f"{name}/deploy"] = (str(folder / "deploy.prototxt"), "TEST")
        plan[f"{name}/val"] = (str(folder / "train_val.prototxt"), "TEST")
    root = next(iter(jobs.values())).parent.parent
    got = caffe.run_pycaffe(_SHAPES % json.dumps(plan), binds=(root,), timeout=300)
    for key, (path, _) in plan.items():
        net = read_text(path, caffe_pb2.NetParameter())
        expected = infer_shapes(net, {"data": (2, 1, *_val_image_size(net))}, phase=caffe_pb2.TEST)
        # Caffe adds Split layers where one blob feeds several layers; they are not ours.
        caffe_blobs = {b: tuple(s) for b, s in got[key].items() if not _SPLIT.search(b)}
        assert caffe_blobs == expected, key


_SPLIT = re.compile(r"_split_\d+$")


def _val_image_size(net: caffe_pb2.NetParameter) -> tuple[int, int]:
    """(H, W) the val Data layer produces; deploy nets have none (their Input carries it)."""
    for layer in net.layer:
        if layer.type == "Data" and layer.include[0].phase == caffe_pb2.TEST:
            crop = layer.transform_param.crop_size
            return (crop, crop) if crop else (129, 30)
    return (0, 0)  # unused: infer_shapes reads only the tops of Data layers
