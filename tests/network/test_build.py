"""The net-spec builder: messages with Caffe's fields, text out and back in unchanged."""

from __future__ import annotations

from upcall.network import build as ns
from upcall.proto import caffe_pb2, read_text, to_text


def test_conv_fields_and_param_specs():
    layer = ns.conv(
        "conv2",
        "pool1",
        256,
        kernel=5,
        pad=2,
        group=2,
        weight_filler=ns.gaussian(0.01),
        bias_filler=ns.constant(0.1),
    )
    p = layer.convolution_param
    assert (layer.type, list(layer.bottom), list(layer.top)) == (
        "Convolution",
        ["pool1"],
        ["conv2"],
    )
    assert (p.num_output, list(p.kernel_size), list(p.pad), p.group) == (256, [5], [2], 2)
    assert list(p.stride) == []  # stride 1 is Caffe's default: not written
    assert (p.weight_filler.type, round(p.weight_filler.std, 6)) == ("gaussian", 0.01)
    assert round(p.bias_filler.value, 6) == 0.1
    assert [(x.lr_mult, x.decay_mult) for x in layer.param] == [(1, 1), (2, 0)]


def test_rectangular_conv_and_pool_use_h_w_fields():
    c = ns.conv("c", "data", 8, kernel=(3, 5), stride=(2, 1), pad=(1, 2), bias_term=False)
    p = c.convolution_param
    assert (p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w) == (3, 5, 2, 1, 1, 2)
    assert list(p.kernel_size) == [] and p.bias_term is False
    assert len(c.param) == 1  # one blob without a bias
    q = ns.pool("q", "c", kernel=(2, 1), stride=(2, 1)).pooling_param
    assert (q.kernel_h, q.kernel_w, q.stride_h, q.stride_w) == (2, 1, 2, 1)


def test_in_place_layers_write_to_their_bottom():
    for layer in (
        ns.relu("r", "x"),
        ns.dropout("d", "x", 0.4),
        ns.batch_norm("b", "x"),
        ns.scale("s", "x"),
    ):
        assert list(layer.top) == ["x"]
    assert [x.lr_mult for x in ns.batch_norm("b", "x").param] == [0, 0, 0]
    assert ns.scale("s", "x").scale_param.bias_term is True


def test_rules_and_heads():
    acc = ns.include(ns.accuracy("a", ["fc", "label"], top_k=5), stage="val")
    assert acc.accuracy_param.top_k == 5 and list(acc.include[0].stage) == ["val"]
    loss = ns.exclude(ns.softmax_loss("l", ["fc", "label"], loss_weight=0.3), stage="deploy")
    assert list(loss.loss_weight) == [0.30000001192092896] and list(loss.top) == ["loss"]
    data = ns.include(
        ns.data("d", batch_size=7, crop=5, mirror=True, source="/x", mean_file="/m"), phase="TRAIN"
    )
    assert data.include[0].phase == caffe_pb2.TRAIN
    assert (data.data_param.batch_size, data.data_param.backend) == (
        7,
        caffe_pb2.DataParameter.LMDB,
    )
    assert (data.transform_param.crop_size, data.transform_param.mirror) == (5, True)
    assert list(ns.input_layer("in", (1, 1, 2, 3)).input_param.shape[0].dim) == [1, 1, 2, 3]


def test_text_round_trip(tmp_path):
    net = ns.net(
        "n",
        [
            ns.include(ns.data("train-data", batch_size=4, crop=3, mirror=True), stage="train"),
            ns.conv("c", "data", 2, kernel=3, weight_filler=ns.xavier(0.1)),
            ns.lrn("n1", "c"),
            ns.pool("p", "n1", method="AVE", kernel=2, stride=2, pad=1),
            ns.pool("g", "p", global_pool=True),
            ns.ip("fc", "g", weight_filler=ns.xavier()),
            ns.concat("cat", ["fc", "fc"]),
            ns.exclude(ns.softmax_loss("loss", ["fc", "label"]), stage="deploy"),
            ns.softmax("softmax", "fc"),
        ],
    )
    text = to_text(net)
    assert 'type: "Pooling"' in text and "pool: AVE" in text and "global_pooling: true" in text
    path = tmp_path / "n.prototxt"
    path.write_text(text)
    back = read_text(path, caffe_pb2.NetParameter())
    assert back == net
    assert not back.layer[5].inner_product_param.HasField("num_output")
