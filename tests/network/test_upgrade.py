"""Old-format nets and solvers upgrade as real Caffe's upgrade tools upgrade them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from tests.tinydata import level_dataset
from upcall import cli
from upcall.engines import get_engine
from upcall.errors import UpcallError
from upcall.job.records import read_metrics, read_summary
from upcall.network.upgrade import read_net, read_solver, upgrade_net
from upcall.proto import caffe_pb2

# A 2015-style V1 net: enum types, blobs_lr / weight_decay, transformation fields in data_param,
# named and shared params, net-level inputs.
V1_NET = """
name: "lenet2015"
input: "extra"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers {
  name: "mnist" type: DATA top: "data" top: "label"
  data_param { source: "train_db" backend: LMDB batch_size: 64 scale: 0.00390625 mirror: true }
  include { phase: TRAIN }
}
layers {
  name: "images" type: IMAGE_DATA top: "data" top: "label"
  image_data_param { source: "val.txt" batch_size: 8 mean_file: "m.binaryproto" crop_size: 6 }
  include { phase: TEST }
}
layers {
  name: "windows" type: WINDOW_DATA top: "w" top: "wl"
  window_data_param { source: "w.txt" scale: 2 mirror: false fg_threshold: 0.4 }
  exclude { phase: TRAIN }
}
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "shared_w" blob_share_mode: PERMISSIVE
  convolution_param {
    num_output: 20 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" }
  }
}
layers { name: "scale" type: POWER bottom: "conv1" top: "conv1" power_param { scale: 2 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "conv1" top: "ip" blobs_lr: 3
  inner_product_param { num_output: 10 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss" loss_weight: 1
  loss_param { ignore_label: 3 } }
"""

# A V0 net (before 2014): one `layers { layer { ... } }` per layer, a padding layer.
V0_NET = """
name: "v0"
input: "data"
input_dim: 2 input_dim: 1 input_dim: 12 input_dim: 12
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers {
  layer {
    name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 1 group: 1 biasterm: false
    weight_filler { type: "gaussian" std: 0.01 } blobs_lr: 1 weight_decay: 1
  }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 2 }
  bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.001 beta: 0.5 k: 2 }
  bottom: "pool1" top: "norm1" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "norm1" top: "norm1" }
layers { layer { name: "ip" type: "innerproduct" num_output: 3 bias_filler { value: 1 }
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 } bottom: "norm1" top: "ip" }
layers { layer { name: "cat" type: "concat" concat_dim: 1 } bottom: "ip" bottom: "ip" top: "cat" }
layers { layer { name: "prob" type: "softmax" } bottom: "cat" top: "prob" }
layers { layer { name: "train" type: "data" source: "db" meanfile: "m.binaryproto"
  batchsize: 4 cropsize: 12 mirror: true scale: 0.5 rand_skip: 3 } top: "d2" top: "l2" }
layers { layer { name: "img" type: "images" source: "list.txt" batchsize: 2 shuffle_images: true
  new_height: 16 new_width: 16 } top: "d3" top: "l3" }
layers { layer { name: "win" type: "window_data" source: "w.txt" batchsize: 2
  det_fg_threshold: 0.6 det_context_pad: 4 det_crop_mode: "square" } top: "d4" top: "l4" }
layers { layer { name: "h5" type: "hdf5_data" source: "h5.txt" batchsize: 2 } top: "d5" }
layers { layer { name: "h5out" type: "hdf5_output" hdf5_output_param { file_name: "o.h5" } }
  bottom: "d5" }
layers { layer { name: "info" type: "infogain_loss" source: "H.binaryproto" }
  bottom: "prob" bottom: "l2" }
"""

# Today's layers with the other two upgrades: net inputs with input_shape, BatchNorm's specs.
V2_NET = """
name: "v2"
input: "a" input_shape { dim: 1 dim: 2 } input: "b" input_shape { dim: 3 }
layer { name: "bn" type: "BatchNorm" bottom: "a" top: "a"
  param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } }
layer { name: "bn2" type: "BatchNorm" bottom: "a" top: "a2" param { lr_mult: 0 } }
"""


def _every_v1_type() -> str:
    names = caffe_pb2.V1LayerParameter.LayerType.keys()
    return "".join(f'layers {{ name: "l{i}" type: {n} }}\n' for i, n in enumerate(names))


NETS = {"v1": V1_NET, "v0": V0_NET, "v2": V2_NET, "types": _every_v1_type()}
SOLVERS = {
    "adam": 'net: "n.prototxt" base_lr: 0.01 solver_type: ADAM',
    "nesterov": 'net: "n.prototxt" solver_type: NESTEROV momentum: 0.9',
}


@pytest.fixture(scope="module")
def caffe_upgraded(caffe, tmp_path_factory):
    """{name: real Caffe's upgrade of NETS[name] / SOLVERS[name], as text}."""
    folder = tmp_path_factory.mktemp("upgrade")
    out = {}
    for table, tool in [(NETS, "upgrade_net_proto_text"), (SOLVERS, "upgrade_solver_proto_text")]:
        for name, text in table.items():
            (folder / f"{name}.prototxt").write_text(text)
            args = (str(folder / f"{name}.prototxt"), str(folder / f"{name}.out"))
            caffe.run_tool(tool, *args, binds=[folder], cwd=folder)
            out[name] = (folder / f"{name}.out").read_text()
    return out


def _parsed(text: str, message):
    return text_format.Parse(text, message)


@pytest.mark.parametrize("name", sorted(NETS))
def test_net_upgrades_as_real_caffe_does(name, tmp_path, caffe_upgraded):
    path = tmp_path / "net.prototxt"
    path.write_text(NETS[name])
    ours = read_net(path)
    assert ours == _parsed(caffe_upgraded[name], caffe_pb2.NetParameter())
    assert not ours.layers and not ours.input and ours.layer


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_upgrades_as_real_caffe_does(name, tmp_path, caffe_upgraded):
    path = tmp_path / "solver.prototxt"
    path.write_text(SOLVERS[name])
    ours = read_solver(path)
    assert ours == _parsed(caffe_upgraded[name], caffe_pb2.SolverParameter())
    assert not ours.HasField("solver_type")


def test_current_net_is_left_as_it_is():
    net = _parsed(
        'layer { name: "c" type: "Convolution" param { lr_mult: 1 } }', caffe_pb2.NetParameter()
    )
    before = caffe_pb2.NetParameter()
    before.CopyFrom(net)
    assert upgrade_net(net, where="x") == [] and net == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('layer { name: "a" } layers { name: "b" type: RELU }', "not both"),
        ('layers { layer { name: "c" type: "relu" num_output: 3 } }', "'num_output'"),
        ('input: "a" input_dim: 1 input_dim: 2', "four input_dim each"),
        ('layers { layer { name: "w" type: "weird" } }', "unknown type 'weird'"),
        (
            'input: "x" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1 '
            'layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "p" }'
            'layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }',
            "conv or pool",
        ),
    ],
)
def test_net_caffe_cannot_upgrade_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "old.prototxt"
    path.write_text(text)
    with pytest.raises(UpcallError, match=rf"old\.prototxt: .*{message}"):
        read_net(path)


def test_solver_with_both_types_is_refused(tmp_path):
    path = Path(tmp_path / "solver.prototxt")
    path.write_text('type: "Adam" solver_type: ADAM')
    with pytest.raises(UpcallError, match=r"solver\.prototxt: .*not both"):
        read_solver(path)


# A DIGITS custom network as written in 2015: V1 layers, transformation fields in data_param.
V1_DIGITS_NET = """
name: "lenet2015"
layers { name: "train-data" type: DATA top: "data" top: "label"
  data_param { batch_size: 4 scale: 0.00390625 } include { phase: TRAIN } }
layers { name: "val-data" type: DATA top: "data" top: "label"
  data_param { batch_size: 2 scale: 0.00390625 } include { phase: TEST } }
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 5 stride: 4 weight_filler { type: "xavier" } } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1" blobs_lr: 1 blobs_lr: 2
  inner_product_param { weight_filler { type: "xavier" } } }
layers { name: "accuracy" type: ACCURACY bottom: "ip1" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip1" bottom: "label" top: "loss" }
"""


@pytest.fixture(scope="module")
def level_data(tmp_path_factory):
    return level_dataset(tmp_path_factory.mktemp("upgrade-data"), [i % 2 for i in range(16)])


@pytest.mark.parametrize("engine", ["torch", "caffe"])
def test_v1_network_trains_on_both_engines(engine, level_data, tmp_path, request):
    if engine == "caffe":
        request.getfixturevalue("caffe")  # skips (or fails under UPCALL_REQUIRE_CAFFE=1)
    path = tmp_path / "lenet2015.prototxt"
    path.write_text(V1_DIGITS_NET)
    jobs = tmp_path / "jobs"
    argv = ["nets", "--dataset", str(level_data), "--network", str(path), "--lr", "0.01"]
    assert cli.main([*argv, "--epochs", "2", "--out", str(jobs)]) == 0
    (job,) = jobs.iterdir()
    train_val = read_net(job / "train_val.prototxt")
    conv = next(layer for layer in train_val.layer if layer.name == "conv1")
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert {layer.transform_param.scale for layer in train_val.layer[:2]} == {0.00390625}
    assert cli.main(["train", str(job), "--engine", engine, "--threads", "1"]) == 0
    summary = read_summary(job)
    assert (summary.engine, summary.iterations) == (engine, 6)
    assert all(np.isfinite(r.loss) for r in read_metrics(job) if r.kind == "train")
    if engine == "torch":
        _classifies_with_an_old_deploy(job)


def _classifies_with_an_old_deploy(job: Path) -> None:
    """The job's deploy net written in 2015 style (net inputs, V1 layers) predicts the same."""
    from upcall.inference import load_model

    x = np.random.default_rng(0).uniform(0, 255, (3, 1, 129, 30)).astype(np.float32)
    want = load_model(job).predictor.predict(x)
    body = V1_DIGITS_NET.split('layers { name: "conv1"')[1].split('layers { name: "accuracy"')[0]
    body = body.replace("inner_product_param {", "inner_product_param { num_output: 2")
    (job / "deploy.prototxt").write_text(
        'name: "lenet2015"\ninput: "data"\ninput_dim: 1 input_dim: 1 input_dim: 129 input_dim: 30\n'
        'layers { name: "conv1"' + body + 'layers { name: "softmax" type: SOFTMAX bottom: "ip1" '
        'top: "softmax" }\n'
    )
    np.testing.assert_array_equal(load_model(job).predictor.predict(x), want)


@pytest.mark.parametrize("engine", ["torch", "caffe"])
def test_job_with_old_solver_and_v1_net_trains(engine, level_data, tmp_path, request):
    """A job folder written by hand in 2015 style (solver_type, V1 layers): the engines read
    it through the same upgrade."""
    if engine == "caffe":
        request.getfixturevalue("caffe")
    job = tmp_path / "job"
    job.mkdir()
    net = V1_DIGITS_NET.replace("data_param {", "data_param { backend: LMDB")
    net = net.replace("batch_size: 4", f'batch_size: 4 source: "{level_data / "train_db"}"')
    net = net.replace("batch_size: 2", f'batch_size: 2 source: "{level_data / "val_db"}"')
    net = net.replace("inner_product_param {", "inner_product_param { num_output: 2")
    (job / "train_val.prototxt").write_text(net)
    (job / "solver.prototxt").write_text(
        'net: "train_val.prototxt" base_lr: 0.01 lr_policy: "fixed" max_iter: 3 display: 1\n'
        'snapshot_prefix: "snapshot" solver_mode: CPU solver_type: ADAGRAD random_seed: 1\n'
    )
    get_engine(engine, threads=1).train(job)
    assert (read_summary(job).engine, read_summary(job).iterations) == (engine, 3)
