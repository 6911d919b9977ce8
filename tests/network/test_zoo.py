"""The registered networks, and DIGITS's conversion into train_val and deploy nets."""

from __future__ import annotations

from collections import Counter

import pytest

from upcall.errors import UpcallError
from upcall.network import build as ns
from upcall.network.shapes import infer_shapes
from upcall.network.zoo import NETWORKS, get
from upcall.network.zoo.prepare import DataSource, prepare
from upcall.network.zoo.whalenet import channels, whalenet
from upcall.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def _source(height=256, width=256, classes=2) -> DataSource:
    return DataSource(
        "/d/train_db",
        "/d/val_db",
        "/d/mean.binaryproto",
        1,
        height,
        width,
        classes,
        f"{height}×{width}",
    )


def _prepared(name: str, **kw):
    native = NETWORKS[name].native_only
    return prepare(get(name).build(), _source(*((129, 30) if native else (256, 256))), **kw)


def _phase(layer) -> int | None:
    return layer.include[0].phase if layer.include else None


@pytest.mark.parametrize("name", list(NETWORKS))
def test_train_val_has_phase_rules_and_two_class_heads(name):
    train_val, _ = _prepared(name)
    assert all(not r.stage for x in train_val.layer for r in (*x.include, *x.exclude))
    data = {x.name: x for x in train_val.layer if x.type == "Data"}
    assert [_phase(x) for x in data.values()] == [TRAIN, TEST]
    train, val = data["train-data"], data["val-data"]
    assert (train.data_param.source, val.data_param.source) == ("/d/train_db", "/d/val_db")
    assert train.transform_param.mean_file == "/d/mean.binaryproto"
    assert train.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert val.transform_param.mirror is False
    assert all(x.accuracy_param.top_k == 1 for x in train_val.layer if x.type == "Accuracy")
    assert all(_phase(x) == TEST for x in train_val.layer if x.type == "Accuracy")
    assert all(
        x.inner_product_param.num_output in (2, 1024, 4096)
        for x in train_val.layer
        if x.type == "InnerProduct"
    )
    assert not any(x.type == "Softmax" for x in train_val.layer)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_deploy_is_input_to_softmax(name):
    _, deploy = _prepared(name)
    types = Counter(x.type for x in deploy.layer)
    assert deploy.layer[0].type == "Input" and types["Input"] == 1
    assert deploy.layer[-1].type == "Softmax" and deploy.layer[-1].name == "softmax"
    assert not types["Data"] and not types["SoftmaxWithLoss"] and not types["Accuracy"]
    assert all(not x.include and not x.exclude for x in deploy.layer)
    assert infer_shapes(deploy, {})["softmax"] == (1, 2)


def test_alexnet_as_digits_3():
    train_val, deploy = _prepared("alexnet")
    assert list(deploy.layer[0].input_param.shape[0].dim) == [1, 1, 227, 227]
    data = [x for x in train_val.layer if x.type == "Data"]
    assert [(x.data_param.batch_size, x.transform_param.crop_size) for x in data] == [
        (100, 227),
        (100, 227),
    ]
    assert data[0].transform_param.mirror is True
    names = [x.name for x in deploy.layer]
    assert names == [
        "data",
        "conv1",
        "relu1",
        "norm1",
        "pool1",
        "conv2",
        "relu2",
        "norm2",
        "pool2",
        "conv3",
        "relu3",
        "conv4",
        "relu4",
        "conv5",
        "relu5",
        "pool5",
        "fc6",
        "relu6",
        "drop6",
        "fc7",
        "relu7",
        "drop7",
        "fc8",
        "softmax",
    ]
    shapes = infer_shapes(deploy, {})
    assert [shapes[b][2] for b in ("conv1", "pool1", "pool2", "pool5")] == [55, 27, 13, 6]
    fc6 = next(x for x in deploy.layer if x.name == "fc6").inner_product_param
    assert (fc6.weight_filler.std, fc6.bias_filler.value) == (
        pytest.approx(0.005),
        pytest.approx(0.1),
    )


def test_googlenet_as_digits_without_top5():
    train_val, deploy = _prepared("googlenet")
    types = Counter(x.type for x in train_val.layer)
    assert (types["Concat"], types["SoftmaxWithLoss"], types["Accuracy"], types["LRN"]) == (
        9,
        3,
        3,
        2,
    )
    assert types["Pooling"] == 4 + 9 + 2 + 1  # stem/stage pools, one per inception, aux, pool5
    losses = {x.name: list(x.loss_weight) for x in train_val.layer if x.type == "SoftmaxWithLoss"}
    assert losses == {
        "loss1/loss": [pytest.approx(0.3)],
        "loss2/loss": [pytest.approx(0.3)],
        "loss3/loss": [1.0],
    }
    assert not any(x.name.startswith(("loss1", "loss2")) for x in deploy.layer)
    data = [x for x in train_val.layer if x.type == "Data"]
    assert [x.data_param.batch_size for x in data] == [32, 16]
    shapes = infer_shapes(deploy, {})
    assert shapes["pool1/3x3_s2"] == (1, 64, 56, 56)
    assert shapes["inception_5b/output"] == (1, 1024, 7, 7)
    assert shapes["loss3/classifier"] == (1, 2)
    tv = infer_shapes(train_val, {"data": (16, 1, 224, 224)}, phase=TEST)
    assert tv["loss1/ave_pool"] == (16, 512, 4, 4) and tv["loss1/classifier"] == (16, 2)


def test_whalenet_native_shapes_and_no_mirror():
    train_val, deploy = _prepared("whalenet")
    shapes = infer_shapes(deploy, {})
    assert list(deploy.layer[0].input_param.shape[0].dim) == [1, 1, 129, 30]
    assert [shapes[f"pool{i}"][2:] for i in (1, 2, 3)] == [(65, 15), (33, 8), (17, 4)]
    assert shapes["conv4"] == (1, 64, 17, 4) and shapes["global_pool"] == (1, 64, 1, 1)
    data = [x for x in train_val.layer if x.type == "Data"]
    assert all(not x.transform_param.mirror and not x.transform_param.crop_size for x in data)
    assert channels(8, 5) == [8, 16, 32, 32, 32]
    small = infer_shapes(
        prepare(whalenet(width=8, blocks=3, global_pool="AVE"), _source(129, 30))[1], {}
    )
    assert small["conv3"] == (1, 32, 33, 8)


def test_batch_size_override_applies_to_both_phases():
    train_val, _ = _prepared("googlenet", batch_size=2)
    assert [x.data_param.batch_size for x in train_val.layer if x.type == "Data"] == [2, 2]


def test_crop_larger_than_images_names_the_fix():
    with pytest.raises(
        UpcallError,
        match=r"alexnet needs images of at least 227×227; this "
        r"dataset is 129×30.*--size 256x256",
    ):
        prepare(get("alexnet").build(), _source(129, 30), where="alexnet")


def test_plain_caffe_train_val_gets_a_deploy_softmax():
    # BVLC style: phase rules, no deploy stage, top-5 accuracy, a stray Input layer.
    user = ns.net(
        "mine",
        [
            ns.input_layer("stray", (1, 1, 8, 8)),
            ns.include(ns.data("d1", batch_size=4), phase="TRAIN"),
            ns.include(ns.data("d2", batch_size=4), phase="TEST"),
            ns.conv("c", "data", 4, kernel=3),
            ns.relu("r", "c"),
            ns.ip("score", "c"),
            ns.include(ns.accuracy("top5", ["score", "label"], top_k=5), phase="TEST"),
            ns.softmax_loss("loss", ["score", "label"]),
        ],
    )
    train_val, deploy = prepare(user, _source(8, 8, classes=3))
    assert [x.name for x in train_val.layer] == ["d1", "d2", "c", "r", "score", "loss"]
    assert [x.name for x in deploy.layer] == ["data", "c", "r", "score", "softmax"]
    assert list(deploy.layer[-1].bottom) == ["score"]
    assert infer_shapes(deploy, {})["softmax"] == (1, 3)


def test_unsupported_layer_is_named():
    user = ns.net(
        "mine",
        [
            ns.include(ns.data("d1", batch_size=4), phase="TRAIN"),
            ns.include(ns.data("d2", batch_size=4), phase="TEST"),
        ],
    )
    user.layer.add(name="lstm", type="LSTM", bottom=["data"], top=["a", "b"])
    with pytest.raises(
        UpcallError,
        match=r"mine.prototxt: layer 'lstm' \(type LSTM\) is not implemented by the torch "
        r"engine; --engine caffe runs it",
    ):
        prepare(user, _source(8, 8), where="mine.prototxt")


def test_data_layer_without_rule_is_an_error():
    user = ns.net(
        "mine",
        [ns.data("d", batch_size=4), ns.ip("fc", "data"), ns.softmax_loss("loss", ["fc", "label"])],
    )
    with pytest.raises(UpcallError, match="data layer 'd' is not specific to train or val"):
        prepare(user, _source(8, 8))


def test_unknown_network_lists_the_known():
    with pytest.raises(UpcallError, match="unknown network 'vgg'; known: alexnet, googlenet"):
        get("vgg")


def test_whalenet_time_pool_keeps_the_rows_and_spans_the_dataset_width():
    """prepare() fills the time pool's kernel width from the images it is given."""
    for height, width, last in ((65, 59, (9, 8)), (129, 30, (17, 4))):
        net = whalenet(convs=2, residual=True, time_pool=True)
        train_val, deploy = prepare(net, _source(height, width))
        shapes = infer_shapes(deploy, {})
        assert shapes["sum4"][2:] == last
        assert shapes["time_pool"] == (1, 64, last[0], 1)
        pools = [x for x in train_val.layer if x.name == "time_pool"]
        assert pools[0].pooling_param.kernel_w == last[1]
    eltwise = [x for x in deploy.layer if x.type == "Eltwise"]
    assert [x.bottom[1] for x in eltwise] == [
        "proj1",
        "proj2",
        "proj3",
        "pool3",
    ]  # 1×1 where width changes
    with pytest.raises(ValueError, match="residual"):
        whalenet(residual=True)
