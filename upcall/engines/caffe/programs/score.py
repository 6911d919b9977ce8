"""The TEST net's softmax scores with each snapshot's weights (run by the caffe engine).

A new net reads from the first validation record, so each model sees the same ``batches``
batches; every sample's softmax scores and label are kept. Runs in the Caffe root (see
:mod:`upcall.engines.caffe.programs`).

``python3 score.py PARAMS_FILE``, a JSON file ``{"net": train_val.prototxt, "models":
{iteration: .caffemodel}, "batches": int, "scores": blob, "labels": blob, "gpu": int or null,
"out": folder}``: writes ``out/<iteration>.npz`` (``scores`` (N, classes), ``labels`` (N,)) and
prints the sorted iterations as JSON.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main(argv: list[str]) -> None:
    import caffe

    with open(argv[0], encoding="utf-8") as f:
        p = json.load(f)
    if p["gpu"] is not None:
        caffe.set_mode_gpu()
        caffe.set_device(p["gpu"])
    for it, model in p["models"].items():
        net = caffe.Net(p["net"], caffe.TEST, weights=model)
        scores, labels = [], []
        for _ in range(p["batches"]):
            net.forward()
            z = net.blobs[p["scores"]].data
            z = z.reshape(len(z), -1)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            scores.append(z / z.sum(axis=1, keepdims=True))
            labels.append(net.blobs[p["labels"]].data.ravel().copy())
        np.savez(
            p["out"] + "/" + it + ".npz",
            scores=np.concatenate(scores),
            labels=np.concatenate(labels),
        )
    print(json.dumps(sorted(p["models"])))


if __name__ == "__main__":
    sys.path[0] = ""  # as under `python3 -`: the working directory's modules import
    main(sys.argv[1:])
