"""WhaleNet: a small CNN for native-size spectrograms (129×30 tutorial, 65×59 fine; no resize, no crop).

Design, for right-whale up-calls (≈1 s sweeps rising through 50–250 Hz, i.e. rows ≈6–32 of the
129 rows of 7.8 Hz, about half of the 30 time columns):
- 3×3 convolutions, each followed by Caffe-style batch norm (BatchNorm, then Scale with a bias)
  and ReLU. Batch norm makes training insensitive to the input's scale (raw 0–255 minus the mean)
  and less sensitive to the learning-rate sweep the tutorial runs.
- 2×2 max pooling after every block but the last: 129×30 → 65×15 → 33×8 → 17×4. The input is
  four times taller than wide, so halving both axes keeps the cost per block falling; an
  up-call still spans several cells of the last map in both axes, so its slope stays visible.
- The net sees all 129 rows rather than a band crop: the tutorial's per-image min–max scaling
  ties the band's contrast to the whole image, harmonics and broadband noise above 250 Hz help
  tell calls from clutter, and a row crop would need Caffe's Slice or Crop layer, which our
  schema and torch engine do not carry.
- A global max pool over the last map: a call fills a small part of the time-frequency plane,
  and averaging over the whole map would dilute it with background; max keeps the strongest
  local evidence wherever the call sits (AVE is an option; on 2,400 synthetic clips, 3 epochs,
  it reached validation AUC 0.68 against 0.86 for MAX).
- Dropout, then a classifier (InnerProduct, width set by DIGITS's rule to #classes).
No mirroring: flipping the time axis turns an up-call into a down-call, a different signal.

Options for the finer ``fine`` spectrogram (65 rows × 59 columns), measured in
``benchmarks/bench_quality.py``: ``convs`` convolutions per block, ``residual`` shortcuts around
each block (a 1×1 convolution where the width changes), and ``time_pool``: max over time only,
keeping the frequency rows for the classifier. Global max pooling throws away where in
frequency the evidence was, yet an up-sweep at 300 Hz is a hard negative and one at 100 Hz a
call; pooling over time alone also keeps the trunk fully convolutional along time, so a detector
can run it once over a long recording. Caffe's Pooling needs the kernel's width: the layer is
written with ``kernel_h: 1`` and no ``kernel_w``, which :mod:`upcall.network.zoo.prepare`
fills from the dataset's image width, as DIGITS fills the classifier's ``num_output``.

Two levers, off by default (the nets are then byte for byte as before), written in standard
Caffe 1.0 layers so the caffe and digits engines, both exports and the fully convolutional
detector run them: ``label_smoothing`` (for the few calls labelled 0) and ``background``, a
PCEN-like front end that gives conv1 the image minus its running mean along time per row.
"""

from __future__ import annotations

from upcall.network import build as ns
from upcall.proto import caffe_pb2


def channels(width: int, blocks: int) -> list[int]:
    """Output channels per block: width, 2·width, then 4·width for the rest."""
    return [width * 2 ** min(i, 2) for i in range(blocks)]


def whalenet(
    *,
    width: int = 16,
    blocks: int = 4,
    global_pool: str = "MAX",
    dropout: float = 0.5,
    train_batch: int = 64,
    val_batch: int = 100,
    convs: int = 1,
    residual: bool = False,
    time_pool: bool = False,
    label_smoothing: float = 0.0,
    background: int = 0,
) -> caffe_pb2.NetParameter:
    """WhaleNet with ``blocks`` conv–BN–ReLU blocks starting at ``width`` channels.

    Batch 64 keeps batch-norm statistics steady while giving ≈420 updates per epoch on the
    tutorial's 27,000 images; validation batch size does not affect results.
    ``label_smoothing`` ε > 0 trains on (1-ε)·cross-entropy + ε·(mean -log p over the classes);
    ``background`` W > 0 (odd) feeds conv1 the image and the image minus its W-column running
    mean per row (see :func:`_background`). Both off (0) leave the net as it was.
    """
    if blocks < 1 or width < 1 or convs < 1:
        raise ValueError(f"whalenet needs width, blocks, convs ≥ 1, got {width}, {blocks}, {convs}")
    if residual and convs < 2:
        raise ValueError("a residual WhaleNet needs convs ≥ 2 per block")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if background and (background < 3 or background % 2 == 0):
        raise ValueError(f"background must be 0 (off) or an odd width ≥ 3, got {background}")
    layers = [
        # Deliberately no mirror (see the module docstring) and no crop: native size.
        ns.include(ns.data("train-data", batch_size=train_batch), stage="train"),
        ns.include(ns.data("val-data", batch_size=val_batch), stage="val"),
    ]
    bottom, previous = "data", 1
    if background:
        layers += _background("data", background)
        bottom, previous = "front", 2
    for i, n in enumerate(channels(width, blocks), start=1):
        if convs == 1:
            layers += _conv_bn(f"conv{i}", bottom, n, relu=True)
            top = f"conv{i}"
        else:
            top = bottom
            for j in range(1, convs + 1):
                last = j == convs
                layers += _conv_bn(f"conv{i}_{j}", top, n, relu=not (residual and last))
                top = f"conv{i}_{j}"
            if residual:
                shortcut = bottom
                if previous != n:
                    layers += _conv_bn(f"proj{i}", bottom, n, relu=False, kernel=1)
                    shortcut = f"proj{i}"
                layers += [
                    ns.eltwise_sum(f"sum{i}", [top, shortcut]),
                    ns.relu(f"relu{i}", f"sum{i}"),
                ]
                top = f"sum{i}"
        bottom, previous = top, n
        if i < blocks:
            layers.append(ns.pool(f"pool{i}", bottom, kernel=2, stride=2))
            bottom = f"pool{i}"
    if time_pool:
        # kernel_w left unset: prepare() fills it with the width of this layer's input
        pool = ns.pool("time_pool", bottom, method=global_pool, kernel=1)
        pool.pooling_param.ClearField("kernel_size")
        pool.pooling_param.kernel_h = 1
    else:
        pool = ns.pool("global_pool", bottom, method=global_pool, global_pool=True)
    layers += [
        pool,
        ns.dropout("drop", pool.top[0], dropout),
        ns.ip("fc", pool.top[0], weight_filler=ns.gaussian(0.01), bias_filler=ns.constant(0)),
        ns.include(ns.accuracy("accuracy", ["fc", "label"]), stage="val"),
        *(
            _smoothed_loss("fc", label_smoothing)
            if label_smoothing
            else [ns.exclude(ns.softmax_loss("loss", ["fc", "label"]), stage="deploy")]
        ),
        ns.include(ns.softmax("softmax", "fc"), stage="deploy"),
    ]
    return ns.net("WhaleNet", layers)


def _background(bottom: str, w: int) -> list:
    """A PCEN-like front end in plain Caffe layers: ``background`` is each row's mean over the
    ``w`` columns around each column (AVE pooling 1×w, stride 1, zero padding w//2, so the map
    keeps its width), ``foreground`` the image minus it, and ``front`` both images as two channels
    (the first convolution learns how much of each it wants). It acts on every column alike, so
    the trunk stays fully convolutional along time."""
    return [
        ns.pool("background", bottom, method="AVE", kernel=(1, w), stride=1, pad=(0, w // 2)),
        ns.eltwise_sum("foreground", [bottom, "background"], coeffs=(1, -1)),
        ns.concat("front", [bottom, "foreground"]),
    ]


def _smoothed_loss(scores: str, eps: float) -> list:
    """Label smoothing ε in standard Caffe 1.0 layers. Training: (1-ε)·SoftmaxWithLoss plus
    ε·(-mean of log softmax over batch and classes), which is cross-entropy against the targets
    (1-ε)·one-hot + ε/K. Validation keeps the plain loss, so its figures stay comparable. The
    smoothing term pulls the logits towards a gap of about log(K/ε) (3.7 for ε 0.1, K 2), far
    from where softmax underflows to 0 and Log would be infinite."""
    return [
        ns.include(ns.softmax_loss("loss", [scores, "label"], loss_weight=1 - eps), stage="train"),
        ns.include(ns.softmax_loss("val_loss", [scores, "label"]), stage="val"),
        ns.include(ns.softmax("smooth_prob", scores), stage="train"),
        ns.include(ns.log("smooth_log", "smooth_prob"), stage="train"),
        ns.include(
            ns.reduction(
                "smooth_loss", "smooth_log", operation="MEAN", coeff=-1.0, loss_weight=eps
            ),
            stage="train",
        ),
    ]


def _conv_bn(name: str, bottom: str, n: int, *, relu: bool, kernel: int = 3) -> list:
    """Convolution (no bias: the Scale layer's β plays that part), batch norm, scale[, ReLU]."""
    layers = [
        ns.conv(
            name,
            bottom,
            n,
            kernel=kernel,
            pad=kernel // 2,
            bias_term=False,
            weight_filler=ns.xavier(),
        ),
        ns.batch_norm(f"bn{name.removeprefix('conv')}", name),
        ns.scale(f"scale{name.removeprefix('conv')}", name),
    ]
    return [*layers, ns.relu(f"relu{name.removeprefix('conv')}", name)] if relu else layers
