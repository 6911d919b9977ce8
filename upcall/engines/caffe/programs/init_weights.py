"""The TRAIN net as its fillers make it, seeded like Caffe's solver (run by the caffe engine).

Caffe then starts from these weights (``--weights``), so the iteration-0 validation scores the
very weights Caffe trains. Runs in the Caffe root (see :mod:`upcall.engines.caffe.programs`).

``python3 init_weights.py PARAMS_FILE``, a JSON file ``{"seed": int, "net": train_val.prototxt,
"out": .caffemodel}`` and optionally ``"weights": .caffemodel`` (copied over the fillers' by
layer name, as ``caffe train --weights`` does): writes ``out`` and prints it as JSON.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> None:
    import caffe

    with open(argv[0], encoding="utf-8") as f:
        p = json.load(f)
    caffe.set_random_seed(p["seed"])
    net = caffe.Net(p["net"], caffe.TRAIN)
    if p.get("weights"):
        net.copy_from(p["weights"])
    net.save(p["out"])
    print(json.dumps(p["out"]))


if __name__ == "__main__":
    sys.path[0] = ""  # as under `python3 -`: the working directory's modules import
    main(sys.argv[1:])
