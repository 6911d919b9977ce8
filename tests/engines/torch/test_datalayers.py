"""ImageData, HDF5Data and DummyData: the torch engine's feeders give the batches real Caffe 1.0
gives (one Caffe run for every net), and jobs fed by them train on the torch engine."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from upcall.engines.torch.datalayers import make_feeder
from upcall.errors import UpcallError
from upcall.job.spec import TEST, TRAIN, load_job
from upcall.proto import caffe_pb2, read_text

FORWARDS = 3  # batches compared per net: enough to wrap around each source

PROGRAM = """
import json, sys
import numpy as np
import caffe
params = json.load(open(sys.argv[1]))
for name, phase, forwards in params:
    net = caffe.Net(name + ".prototxt", caffe.TRAIN if phase == "TRAIN" else caffe.TEST)
    out = {}
    for i in range(forwards):
        net.forward()
        for top in net.outputs:
            out[f"{top}/{i}"] = net.blobs[top].data.copy()
    np.savez(name + "-caffe.npz", **out)
"""


def _image_net(name: str, param: str, *, transform: str = "", phase: str = "TRAIN") -> str:
    return (
        f'name: "{name}"\nlayer {{ name: "d" type: "ImageData" top: "data" top: "label" '
        f'include {{ phase: {phase} }} {transform} image_data_param {{ source: "list.txt" '
        f'root_folder: "imgs/" {param} }} }}\n'
    )


NETS = {
    "color": _image_net("color", "batch_size: 4", transform="transform_param { scale: 0.5 }"),
    "gray": _image_net("gray", "batch_size: 3 is_color: false"),
    "resized": _image_net("resized", "batch_size: 3 new_height: 8 new_width: 6"),
    "shrunk": _image_net("shrunk", "batch_size: 3 new_height: 3 new_width: 3"),
    "wide": _image_net("wide", "batch_size: 2 new_height: 7 new_width: 37"),
    # 10×8 images halved: OpenCV averages 2×2 blocks instead
    "half": _image_net("half", "batch_size: 2 new_height: 5 new_width: 4").replace(
        "list.txt", "big.txt"
    ),
    "wide_gray": _image_net(
        "wide_gray", "batch_size: 2 is_color: false new_height: 9 new_width: 35"
    ),
    "crop_test": _image_net(
        "crop_test",
        "batch_size: 2",
        transform="transform_param { crop_size: 3 mean_value: 10 mean_value: 20 mean_value: 30 }",
        phase="TEST",
    ),
    "hdf5": 'name: "hdf5"\nlayer { name: "d" type: "HDF5Data" top: "data" top: "label" '
    'hdf5_data_param { source: "h5.txt" batch_size: 5 } }\n',
    # DummyData: one constant filler for two tops; legacy num/channels/height/width (zeros)
    "dummy": 'name: "dummy"\nlayer { name: "d" type: "DummyData" top: "a" top: "b" '
    "dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: 'constant' value: 1.5 } } }\n"
    'layer { name: "d2" type: "DummyData" top: "c" '
    "dummy_data_param { num: 2 channels: 1 height: 2 width: 3 } }\n",
}
PHASES = {"crop_test": "TEST"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("datalayers")
    rng = np.random.default_rng(7)
    (folder / "imgs").mkdir()
    lines = []
    for i in range(5):
        pixels = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "imgs" / f"im {i}.png")  # a space in the name
        lines.append(f"im {i}.png {i % 2}")
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    for i in range(2):
        pixels = rng.integers(0, 256, (10, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "imgs" / f"big{i}.png")
    (folder / "big.txt").write_text("big0.png 0\nbig1.png 1\n")
    names = []
    for i, rows in enumerate((3, 4)):
        with h5py.File(folder / f"part{i}.h5", "w") as f:
            f["data"] = rng.normal(size=(rows, 2, 3)).astype(np.float64)  # Caffe reads float
            f["label"] = np.arange(rows) + 10 * i
        names.append(f"part{i}.h5")
    (folder / "h5.txt").write_text("\n".join(names) + "\n")
    for name, text in NETS.items():
        (folder / f"{name}.prototxt").write_text(text)
    return folder


@pytest.fixture(scope="module")
def caffe_tops(caffe, sources) -> Path:
    (sources / "program.py").write_text(PROGRAM)
    params = [[name, PHASES.get(name, "TRAIN"), FORWARDS] for name in NETS]
    (sources / "params.json").write_text(json.dumps(params))
    caffe.run_tool(
        "python3",
        str(sources / "program.py"),
        str(sources / "params.json"),
        binds=(sources,),
        cwd=sources,
        timeout=120,
        env={"GLOG_minloglevel": "2"},
    )
    return sources


def _feeder(folder: Path, name: str):
    from upcall.job.spec import _data_spec

    net = read_text(folder / f"{name}.prototxt", caffe_pb2.NetParameter())
    phase = TEST if PHASES.get(name) == "TEST" else TRAIN
    specs = [_data_spec(net, phase, folder)] if name != "dummy" else None
    if specs is None:  # two DummyData layers: one feeder each
        one = [caffe_pb2.NetParameter(layer=[lay]) for lay in net.layer]
        specs = [_data_spec(n, phase, folder) for n in one]
    return [(s, make_feeder(s, train=phase == TRAIN, seed=0)) for s in specs]


@pytest.mark.parametrize("name", list(NETS))
def test_batches_match_caffe(caffe_tops, name):
    with np.load(caffe_tops / f"{name}-caffe.npz") as theirs:
        theirs = dict(theirs)
    atol = 0.0
    for spec, feeder in _feeder(caffe_tops, name):
        for i in range(FORWARDS):
            for top, ours in zip(spec.tops, feeder.next_batch(), strict=True):
                want = theirs[f"{top}/{i}"]
                got = ours.numpy()
                assert got.shape == want.shape, (top, i)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol, err_msg=f"{top}/{i}")


def test_shuffled_image_data_is_seeded_and_covers_every_image(sources):
    net = read_text(sources / "color.prototxt", caffe_pb2.NetParameter())
    net.layer[0].image_data_param.shuffle = True
    net.layer[0].image_data_param.batch_size = 5
    from upcall.job.spec import _data_spec

    spec = _data_spec(net, TRAIN, sources)
    a, b = (make_feeder(spec, train=True, seed=3) for _ in range(2))
    first, second = a.next_batch(), b.next_batch()
    assert (first[0] == second[0]).all()
    assert sorted(first[1].tolist()) == [0, 0, 0, 1, 1]


def _job(folder: Path, data_layers: str, test_iter: int = 1) -> Path:
    net = data_layers + (
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
        'inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }\n'
    )
    (folder / "train_val.prototxt").write_text(net)
    (folder / "solver.prototxt").write_text(
        'net: "train_val.prototxt"\nbase_lr: 0.01\nmax_iter: 4\nlr_policy: "fixed"\n'
        f"test_iter: {test_iter}\ntest_interval: 2\nsnapshot: 0\nrandom_seed: 1\n"
        'snapshot_prefix: "snap"\n'
    )
    return folder


@pytest.mark.parametrize(
    ("kind", "engine"),
    [("ImageData", "torch"), ("HDF5Data", "torch"), ("ImageData", "caffe"), ("HDF5Data", "caffe")],
)
def test_jobs_fed_by_them_train(request, sources, tmp_path, kind, engine):
    from upcall.engines import get_engine

    if engine == "caffe":
        request.getfixturevalue("caffe")  # skips without real Caffe

    for name in ("imgs", "list.txt", "h5.txt"):
        (tmp_path / name).symlink_to(sources / name)
    for i, rows in enumerate((3, 4)):  # labels 0/1: classes of the 2-way classifier
        with h5py.File(tmp_path / f"part{i}.h5", "w") as f:
            f["data"], f["label"] = np.ones((rows, 2, 3)), np.arange(rows) % 2
    if kind == "ImageData":
        param = 'image_data_param { source: "list.txt" root_folder: "imgs/" batch_size: 2 }'
    else:
        param = 'hdf5_data_param { source: "h5.txt" batch_size: 3 }'
    layers = "".join(
        f'layer {{ name: "{p}" type: "{kind}" top: "data" top: "label" '
        f"include {{ phase: {p} }} {param} }}\n"
        for p in ("TRAIN", "TEST")
    )
    job = _job(tmp_path, layers)
    spec = load_job(job)
    assert spec.train_data.kind == kind and spec.val_pass.count == (5 if kind == "ImageData" else 7)
    summary = get_engine(engine).train(job)
    assert summary.iterations == 4
    records = [json.loads(x) for x in (job / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("val_accuracy") is not None for r in records)


def test_dummy_data_trains(tmp_path):
    from upcall.engines import get_engine

    layers = (
        'layer { name: "d" type: "DummyData" top: "data" top: "label" dummy_data_param { '
        "shape { dim: 4 dim: 3 } shape { dim: 4 } data_filler { type: 'gaussian' std: 1 } "
        "data_filler { type: 'constant' value: 1 } } }\n"
    )
    job = _job(tmp_path, layers)
    summary = get_engine("torch").train(job)
    assert summary.iterations == 4


def test_hdf5_data_refuses_a_transform(sources, tmp_path):
    (tmp_path / "train_val.prototxt").write_text(
        'layer { name: "d" type: "HDF5Data" top: "data" top: "label" '
        'transform_param { scale: 2 } hdf5_data_param { source: "h5.txt" batch_size: 2 } }\n'
    )
    (tmp_path / "solver.prototxt").write_text('net: "train_val.prototxt"\n')
    with pytest.raises(UpcallError, match="HDF5Data does not transform data"):
        load_job(tmp_path)
