"""The real-Caffe half of tests/engines/torch/caffe_parity.py: run by the Caffe root's python3.

``python3 caffe_parity_pycaffe.py PARAMS_FILE``, a JSON file ``{"dir": folder, "cases": [{"name",
"phase", "backward", "load_weights"}, ...]}``. For each case it reads ``dir/NAME.prototxt`` and
``dir/NAME-in.npz`` (``input/<blob>``, ``param/<layer>/<i>``, ``topdiff/<blob>``), runs forward
and, with ``backward``, backward from the given top diffs (loss tops keep Caffe's loss weight),
then writes ``dir/NAME-caffe.npz`` (``blob/<blob>``, ``diff/<blob>``, ``param/<layer>/<i>``,
``pdiff/<layer>/<i>``, ``topdiff0/<output>``: an output's diff before backward) and ``dir/NAME-caffe.json``. Before each case it names it on stderr, so
that a Caffe abort (glog FATAL ends the process) can be pinned on it. Standard library, numpy and
caffe only; Python 3.9.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def run_case(caffe, case: dict, folder: str) -> dict:
    stem = folder + "/" + case["name"]
    phase = caffe.TRAIN if case["phase"] == "TRAIN" else caffe.TEST
    net = caffe.Net(stem + ".prototxt", phase)
    given = np.load(stem + "-in.npz")
    out = {}
    shapes = {}
    for layer, blobs in net.params.items():
        shapes[layer] = [list(b.data.shape) for b in blobs]
        for i, blob in enumerate(blobs):
            key = f"param/{layer}/{i}"
            if case["load_weights"] and key in given.files:
                value = given[key]
                if value.size != blob.data.size:
                    raise ValueError(f"{key}: {value.shape} values for Caffe's {blob.data.shape}")
                blob.data[...] = value.reshape(blob.data.shape)
    for key in given.files:
        if key.startswith("input/"):
            name = key[len("input/") :]
            if tuple(net.blobs[name].data.shape) != given[key].shape:
                raise ValueError(
                    f"input {name}: shape {given[key].shape}, Caffe's {net.blobs[name].data.shape}"
                )
            net.blobs[name].data[...] = given[key]
    net.forward()
    for name, blob in net.blobs.items():
        out["blob/" + name] = blob.data.copy()
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            out[f"param/{layer}/{i}"] = blob.data.copy()
    if case["backward"]:
        net.clear_param_diffs()
        for name in net.outputs:  # Caffe's loss weights: a loss top's diff, set at setup
            out["topdiff0/" + name] = net.blobs[name].diff.copy()
        for key in given.files:
            if key.startswith("topdiff/"):
                net.blobs[key[len("topdiff/") :]].diff[...] = given[key]
        net.backward()
        for key in given.files:
            if key.startswith("input/"):
                name = key[len("input/") :]
                out["diff/" + name] = net.blobs[name].diff.copy()
        for layer, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                out[f"pdiff/{layer}/{i}"] = blob.diff.copy()
    np.savez(stem + "-caffe.npz", **out)
    return {"params": shapes, "outputs": list(net.outputs)}


def main(argv: list) -> None:
    import caffe

    with open(argv[0], encoding="utf-8") as f:
        p = json.load(f)
    caffe.set_mode_cpu()
    for case in p["cases"]:
        print("parity case: " + case["name"], file=sys.stderr, flush=True)
        try:
            result = run_case(caffe, case, p["dir"])
        except Exception as e:  # a Python-side problem; a Caffe FATAL ends the process instead
            result = {"error": f"{type(e).__name__}: {e}"}
        with open(p["dir"] + "/" + case["name"] + "-caffe.json", "w", encoding="utf-8") as f:
            json.dump(result, f)
    print(json.dumps(len(p["cases"])))


if __name__ == "__main__":
    main(sys.argv[1:])
