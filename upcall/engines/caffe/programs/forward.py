"""The deploy net's forward passes (run by the pycaffe inference backend).

The deploy net in TEST phase, the input blob reshaped to each batch, the output blob read back
after every forward pass. Runs in the Caffe root (see :mod:`upcall.engines.caffe.programs`).

``python3 forward.py PARAMS_FILE``, a JSON file ``{"deploy": deploy.prototxt, "weights":
.caffemodel, "input": blob, "output": blob, "batch": int, "gpu": int or null, "dir": folder}``:
reads ``dir/input.npy``, writes ``dir/output.npy`` and prints the number of inputs as JSON.
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
    else:
        caffe.set_mode_cpu()
    net = caffe.Net(p["deploy"], caffe.TEST, weights=p["weights"])
    x = np.load(p["dir"] + "/input.npy")
    out = []
    for i in range(0, len(x), p["batch"]):
        batch = x[i : i + p["batch"]]
        net.blobs[p["input"]].reshape(*batch.shape)
        net.reshape()
        net.blobs[p["input"]].data[...] = batch
        net.forward()
        out.append(net.blobs[p["output"]].data.copy())
    np.save(p["dir"] + "/output.npy", np.concatenate(out))
    print(json.dumps(len(x)))


if __name__ == "__main__":
    sys.path[0] = ""  # as under `python3 -`: the working directory's modules import
    main(sys.argv[1:])
