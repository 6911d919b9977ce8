"""Layer builders and fillers against Caffe's formulas, written out here in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from upcall.engines.torch.base import BuildContext
from upcall.engines.torch.fillers import fill
from upcall.engines.torch.layers import build_layer
from upcall.errors import UpcallError
from upcall.network.shapes import conv_out
from upcall.proto import caffe_pb2


def layer(text: str) -> caffe_pb2.LayerParameter:
    return text_format.Parse(text, caffe_pb2.LayerParameter())


def build(text: str, *shapes, phase=caffe_pb2.TEST, seed=0):
    ctx = BuildContext(phase=phase, generator=torch.Generator().manual_seed(seed))
    return build_layer(layer(text), [tuple(s) for s in shapes], ctx)


def filler(text: str) -> caffe_pb2.FillerParameter:
    return text_format.Parse(text, caffe_pb2.FillerParameter())


def draw(shape, text: str, seed: int = 0) -> torch.Tensor:
    return fill(shape, filler(text), generator=torch.Generator().manual_seed(seed), where="test")


# ---- fillers ---------------------------------------------------------------------------


def test_missing_filler_is_caffes_constant_zero():
    conv = build(
        'name: "c" type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 }',
        (1, 2, 5, 5),
    )
    assert conv.weight.shape == (4, 2, 3, 3)
    assert torch.count_nonzero(conv.weight) == 0 and torch.count_nonzero(conv.bias) == 0


@pytest.mark.parametrize(
    ("norm", "fan"), [("FAN_IN", 2 * 9), ("FAN_OUT", 64 * 9), ("AVERAGE", (18 + 576) / 2)]
)
def test_xavier_is_uniform_within_sqrt_3_over_fan(norm, fan):
    w = draw((64, 2, 3, 3), f'type: "xavier" variance_norm: {norm}')
    bound = math.sqrt(3 / fan)
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.08 * bound


def test_msra_gaussian_uniform_constant_and_bilinear():
    msra = draw((256, 8, 3, 3), 'type: "msra"')
    assert abs(float(msra.std()) - math.sqrt(2 / 72)) < 0.01
    g = draw((200, 300), 'type: "gaussian" std: 0.01 mean: 2')
    assert abs(float(g.mean()) - 2) < 1e-3 and abs(float(g.std()) - 0.01) < 3e-4
    u = draw((1000,), 'type: "uniform" min: -2 max: 3')
    assert u.min() >= -2 and u.max() < 3 and u.min() < -1.9 and u.max() > 2.9
    assert torch.equal(draw((3,), 'type: "constant" value: 0.1'), torch.full((3,), 0.1))
    bil = draw((1, 1, 4, 4), 'type: "bilinear"')[0, 0]
    expect = np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(bil.numpy(), expect)


@pytest.mark.parametrize(
    ("k", "row"),
    [
        (2, [0.5, 0.5]),  # f = 1, c = 1/2
        (3, [0.5, 1.0, 0.5]),  # f = 2, c = 1/2
        (4, [0.25, 0.75, 0.75, 0.25]),  # f = 2, c = 3/4
        (6, [1 / 6, 1 / 2, 5 / 6, 5 / 6, 1 / 2, 1 / 6]),  # f = 3, c = 5/6
    ],
)
def test_bilinear_is_caffes_formula_for_odd_and_even_kernels(k, row):
    bil = draw((2, 3, k, k), 'type: "bilinear"')
    assert bil.shape == (2, 3, k, k)
    for kernel in bil.reshape(-1, k, k):
        np.testing.assert_allclose(kernel.numpy(), np.outer(row, row), rtol=1e-6)


def test_fillers_follow_the_seed_and_reject_unknown_types():
    assert torch.equal(draw((5, 5), 'type: "xavier"', 7), draw((5, 5), 'type: "xavier"', 7))
    assert not torch.equal(draw((5, 5), 'type: "xavier"', 7), draw((5, 5), 'type: "xavier"', 8))
    with pytest.raises(UpcallError, match="filler type 'orthogonal'"):
        draw((2, 2), 'type: "orthogonal"')


# ---- convolution and inner product -----------------------------------------------------


def test_convolution_group_dilation_and_hw_forms():
    conv = build(
        'name: "c" type: "Convolution" convolution_param { num_output: 6 kernel_h: 3 kernel_w: 1 '
        "stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 group: 2 "
        'weight_filler { type: "gaussian" } bias_filler { type: "constant" value: 0.5 } }',
        (2, 4, 9, 7),
    )
    assert conv.weight.shape == (6, 2, 3, 1)
    x = torch.randn(2, 4, 9, 7)
    y = conv(x)
    assert y.shape == (2, 6, conv_out(9, kernel=3, stride=2, pad=1), 7)
    # group 2: output channels 0-2 see only input channels 0-1.
    ref = torch.nn.functional.conv2d(x[:, :2], conv.weight[:3], conv.bias[:3], (2, 1), (1, 0))
    torch.testing.assert_close(y[:, :3], ref)
    dilated = build(
        'name: "d" type: "Convolution" convolution_param { num_output: 1 kernel_size: 3 dilation: 2 }',
        (1, 1, 9, 9),
    )
    assert dilated(torch.zeros(1, 1, 9, 9)).shape == (1, 1, conv_out(9, kernel=3, dilation=2), 5)


def test_inner_product_flattens_from_axis_and_honours_transpose():
    ip = build(
        'name: "f" type: "InnerProduct" inner_product_param { num_output: 3 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }',
        (2, 4, 2, 2),
    )
    x = torch.randn(2, 4, 2, 2)
    assert ip.weight.shape == (3, 16)
    torch.testing.assert_close(ip(x), x.reshape(2, 16) @ ip.weight.T + ip.bias)
    tr = build(
        'name: "t" type: "InnerProduct" inner_product_param { num_output: 3 transpose: true axis: 2 weight_filler { type: "gaussian" } }',
        (2, 4, 5),
    )
    assert tr.weight.shape == (5, 3)
    x = torch.randn(2, 4, 5)
    torch.testing.assert_close(tr(x), x @ tr.weight + tr.bias)


# ---- pooling ---------------------------------------------------------------------------


def caffe_pool(x: np.ndarray, k: int, s: int, p: int, mode: str) -> np.ndarray:
    """Caffe 1.0's pooling loops (pooling_layer.cpp) for one square H×W plane."""
    h = x.shape[0]
    out = math.ceil((h + 2 * p - k) / s) + 1
    if p and (out - 1) * s >= h + p:
        out -= 1
    y = np.zeros((out, out))
    for i in range(out):
        for j in range(out):
            hs, ws = i * s - p, j * s - p
            he, we = min(hs + k, h + p), min(ws + k, h + p)
            size = (he - hs) * (we - ws)  # AVE: counts padding, not the overhang
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, h)
            window = x[hs:he, ws:we]
            y[i, j] = window.max() if mode == "MAX" else window.sum() / size
    return y


@pytest.mark.parametrize("mode", ["MAX", "AVE"])
@pytest.mark.parametrize(
    ("h", "k", "s", "p"),
    [(112, 3, 2, 0), (13, 3, 2, 1), (14, 5, 3, 2), (10, 2, 2, 1), (7, 7, 1, 0), (28, 3, 1, 1)],
)
def test_pooling_matches_caffes_loops(mode, h, k, s, p, rng):
    pool = build(
        f'name: "p" type: "Pooling" pooling_param {{ pool: {mode} kernel_size: {k} stride: {s} pad: {p} }}',
        (1, 1, h, h),
    )
    x = rng.standard_normal((h, h)).astype(np.float32)
    y = pool(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(y, caffe_pool(x, k, s, p, mode), rtol=1e-5, atol=1e-6)


def test_pooling_ceil_global_and_refusals():
    pool = build(
        'name: "p" type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }',
        (1, 64, 112, 112),
    )
    assert pool(torch.zeros(1, 64, 112, 112)).shape == (1, 64, 56, 56)  # floor would give 55
    glob = build(
        'name: "g" type: "Pooling" pooling_param { pool: AVE global_pooling: true }', (2, 3, 5, 4)
    )
    x = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(glob(x), x.mean(dim=(2, 3), keepdim=True))
    with pytest.raises(UpcallError, match="STOCHASTIC"):
        build(
            'name: "s" type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 }',
            (1, 1, 4, 4),
        )
    with pytest.raises(UpcallError, match="layer 'e': Caffe pools"):
        build('name: "e" type: "Pooling" pooling_param { kernel_size: 2 stride: 3 }', (1, 1, 6, 6))


# ---- activations and normalisation -------------------------------------------------------


def caffe_lrn(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    sq = np.pad(x**2, ((0, 0), ((size - 1) // 2, (size - 1) // 2), (0, 0), (0, 0)))
    window = sum(sq[:, i : i + x.shape[1]] for i in range(size))
    return x * (k + alpha / size * window) ** -beta


def test_lrn_across_channels_reads_caffes_alpha_default(rng):
    x = rng.standard_normal((2, 7, 3, 3))
    lrn = build(
        'name: "n" type: "LRN" lrn_param { local_size: 3 beta: 0.5 k: 2 }', x.shape
    )  # alpha 1
    np.testing.assert_allclose(
        lrn(torch.from_numpy(x)).numpy(), caffe_lrn(x, 3, 1.0, 0.5, 2), rtol=1e-10
    )
    with pytest.raises(UpcallError, match="odd local_size"):
        build('name: "n" type: "LRN" lrn_param { local_size: 4 }', x.shape)


def test_lrn_within_channel(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    lrn = build(
        'name: "n" type: "LRN" lrn_param { local_size: 3 alpha: 0.5 norm_region: WITHIN_CHANNEL }',
        x.shape,
    )
    sq = np.pad(x**2, ((0, 0), (0, 0), (1, 1), (1, 1)))
    mean = sum(sq[:, :, i : i + 5, j : j + 5] for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(
        lrn(torch.from_numpy(x)).numpy(), x * (1 + 0.5 * mean) ** -0.75, rtol=1e-10
    )


def test_relu_slope_and_dropout_by_phase():
    relu = build('name: "r" type: "ReLU" relu_param { negative_slope: 0.1 }', (4,))
    assert relu(torch.tensor([-2.0, 0.0, 3.0, -1.0])).tolist() == pytest.approx(
        [-0.2, 0.0, 3.0, -0.1]
    )
    x = torch.ones(10_000)
    train = build(
        'name: "d" type: "Dropout" dropout_param { dropout_ratio: 0.25 }',
        (10_000,),
        phase=caffe_pb2.TRAIN,
    )
    y = train(x)
    assert y.unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert 0.2 < float((y == 0).float().mean()) < 0.3
    test = build(
        'name: "d" type: "Dropout" dropout_param { dropout_ratio: 0.25 }',
        (10_000,),
        phase=caffe_pb2.TEST,
    )
    assert torch.equal(test(x), x)


def test_batch_norm_training_accumulates_caffes_sums_and_unbiased_variance(rng):
    text = (
        'name: "bn" type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 eps: 0.001 }'
    )
    x = torch.from_numpy(rng.standard_normal((4, 3, 2, 5)) * 3 + 1).float()
    bn = build(text, x.shape, phase=caffe_pb2.TRAIN)
    y = bn(x)
    mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
    expect = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 0.001)
    torch.testing.assert_close(y, expect, rtol=1e-5, atol=1e-5)
    bn(x)  # second batch: sums decay by 0.9 and add the new statistics
    torch.testing.assert_close(bn.factor, torch.tensor([1.9]))
    torch.testing.assert_close(bn.mean, mean * 1.9)
    torch.testing.assert_close(bn.variance, var * 40 / 39 * 1.9)  # m = 4·2·5 = 40
    test = build(text, x.shape)  # TEST phase: global statistics, scaled by 1/factor
    test.load_state_dict(bn.state_dict())
    torch.testing.assert_close(
        test(x), (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] * 40 / 39 + 0.001)
    )
    forced = build(
        text.replace("eps", "use_global_stats: true eps"), x.shape, phase=caffe_pb2.TRAIN
    )
    torch.testing.assert_close(
        forced(x), x / math.sqrt(0.001)
    )  # empty statistics: factor 0 → mean 0, var 0


def test_scale_defaults_to_one_and_takes_a_second_bottom():
    sc = build(
        'name: "s" type: "Scale" scale_param { bias_term: true bias_filler { type: "constant" value: 2 } }',
        (2, 3, 4),
    )
    assert sc.blob_names == ("weight", "bias") and torch.equal(sc.weight, torch.ones(3))
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(sc(x), x + 2)
    two = build('name: "s2" type: "Scale" bottom: "a" bottom: "b"', (2, 3, 4), (3,))
    assert two.blob_names == ()
    torch.testing.assert_close(
        two(x, torch.tensor([1.0, 2.0, 3.0])), x * torch.tensor([1.0, 2.0, 3.0])[:, None]
    )


# ---- plumbing ----------------------------------------------------------------------------


def test_concat_eltwise_flatten_softmax():
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    assert build('name: "c" type: "Concat" concat_param { axis: 2 }', a.shape, b.shape)(
        a, b
    ).shape == (2, 3, 8)
    torch.testing.assert_close(
        build('name: "e" type: "Eltwise" eltwise_param { coeff: 1 coeff: -2 }', a.shape, b.shape)(
            a, b
        ),
        a - 2 * b,
    )
    torch.testing.assert_close(
        build('name: "e" type: "Eltwise" eltwise_param { operation: PROD }', a.shape, b.shape)(
            a, b
        ),
        a * b,
    )
    torch.testing.assert_close(
        build('name: "e" type: "Eltwise" eltwise_param { operation: MAX }', a.shape, b.shape)(a, b),
        torch.maximum(a, b),
    )
    assert build('name: "f" type: "Flatten"', a.shape)(a).shape == (2, 12)
    torch.testing.assert_close(
        build('name: "s" type: "Softmax" softmax_param { axis: 2 }', a.shape)(a), a.softmax(2)
    )


def test_unknown_type_names_the_layer():
    with pytest.raises(
        UpcallError,
        match="layer 'foo' \\(type LSTM\\) is not implemented by the torch engine; "
        "--engine caffe runs it",
    ):
        build('name: "foo" type: "LSTM"', (1,))


# ---- loss and accuracy --------------------------------------------------------------------

SCORES = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.0, 3.0, 1.0], [1.0, 2.0, 3.0]])
LABELS = torch.tensor([0.0, 1.0, 2.0, 0.0])


@pytest.mark.parametrize(
    ("norm", "divisor"), [("VALID", 3), ("FULL", 4), ("BATCH_SIZE", 4), ("NONE", 1)]
)
def test_softmax_loss_normalisation_with_ignore_label(norm, divisor):
    loss = build(
        f'name: "l" type: "SoftmaxWithLoss" top: "loss" loss_param {{ ignore_label: 2 normalization: {norm} }}',
        SCORES.shape,
        LABELS.shape,
    )
    nll = -torch.log_softmax(SCORES, 1)[[0, 1, 3], [0, 1, 0]].sum()
    torch.testing.assert_close(loss(SCORES, LABELS), nll / divisor)


def test_softmax_loss_ignore_label_outside_the_classes():
    loss = build(
        'name: "l" type: "SoftmaxWithLoss" top: "loss" loss_param { ignore_label: 255 }',
        SCORES.shape,
        LABELS.shape,
    )
    labels = torch.tensor([0.0, 255.0, 2.0, 0.0])  # 255 is no class: that sample is skipped
    nll = -torch.log_softmax(SCORES, 1)[[0, 2, 3], [0, 2, 0]].sum()
    torch.testing.assert_close(loss(SCORES, labels), nll / 3)


def test_softmax_loss_caps_at_flt_min_and_gives_probabilities():
    loss = build('name: "l" type: "SoftmaxWithLoss" top: "loss" top: "prob"', (1, 2), (1,))
    scores = torch.tensor([[0.0, 200.0]], requires_grad=True)
    value, prob = loss(scores, torch.tensor([0.0]))
    assert float(value.detach()) == pytest.approx(-math.log(1.1754943508222875e-38), rel=1e-6)
    value.backward()  # Caffe's gradient is still p - onehot
    torch.testing.assert_close(scores.grad, torch.tensor([[-1.0, 1.0]]))
    torch.testing.assert_close(prob, torch.tensor([[0.0, 1.0]]))


def test_softmax_loss_cap_survives_huge_logits_in_float32():
    # BatchNorm with empty statistics at iteration 0 gives logits this large; the capped value
    # must not cancel to 0 (it once did, so every first validation reported loss 0).
    loss = build('name: "l" type: "SoftmaxWithLoss" top: "loss"', (1, 2), (1,))
    value = loss(torch.tensor([[0.0, 1e9]]), torch.tensor([0.0]))
    assert float(value) == pytest.approx(-math.log(1.1754943508222875e-38), rel=1e-6)


def test_accuracy_ties_count_as_wrong_top_k_and_ignore():
    acc = build('name: "a" type: "Accuracy"', SCORES.shape, LABELS.shape)
    # row 1 is a tie between the true class 1 and class 0: wrong for Caffe
    assert float(acc(SCORES, LABELS)) == pytest.approx(1 / 4)
    top2 = build(
        'name: "a" type: "Accuracy" accuracy_param { top_k: 2 }', SCORES.shape, LABELS.shape
    )
    assert float(top2(SCORES, LABELS)) == pytest.approx(3 / 4)
    ignore = build(
        'name: "a" type: "Accuracy" accuracy_param { ignore_label: 2 }', SCORES.shape, LABELS.shape
    )
    assert float(ignore(SCORES, LABELS)) == pytest.approx(1 / 3)
    with pytest.raises(UpcallError, match="top_k 5 exceeds the 3 classes"):
        build('name: "a" type: "Accuracy" accuracy_param { top_k: 5 }', SCORES.shape, LABELS.shape)
