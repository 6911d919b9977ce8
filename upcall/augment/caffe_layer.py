"""Real Caffe's Python layer for online augmentation (``upcall nets --augment``).

``upcall nets`` copies this file into the job folder as ``upcall_augment_layer.py`` beside
``upcall_augment.py`` (a copy of :mod:`upcall.augment.batches`), and declares it in
train_val.prototxt, TRAIN phase only, in place on the data blob::

    layer { name: "augment" type: "Python" bottom: "data" bottom: "label" top: "data"
      python_param { module: "upcall_augment_layer" layer: "OnlineAugmentLayer"
                     param_str: "<OnlineAugment settings as JSON>" }
      include { phase: TRAIN } }

Caffe's embedded Python (3.9 in the bullseye root) imports it; the caffe engine puts the job
folder on its path (``upcall.engines.caffe.root.python_env``). Batch ``i`` of a run uses
``batch_rng(seed, i)``. Caffe does not tell a layer its iteration, so the count starts at
``$UPCALL_AUGMENT_FIRST_BATCH`` (the caffe engine sets it on ``--resume`` to iteration ×
iter_size), else 0: a plain ``caffe train --snapshot`` run draws from batch 0 again. Caffe's
Data layer restarts its cursor on a resume too, so a Caffe resume is not the unbroken run
either way; the torch engine resumes both exactly.
"""

from __future__ import annotations

import os

try:
    import caffe

    _Layer = caffe.Layer
except ImportError:  # on the host this file is only read (and copied), never run by Caffe
    _Layer = object

try:  # in a job folder, beside the copy of upcall/augment/batches.py
    from upcall_augment import OnlineAugment, batch_rng
except ImportError:  # imported from the package
    from upcall.augment.batches import OnlineAugment, batch_rng


FIRST_BATCH = "UPCALL_AUGMENT_FIRST_BATCH"


class OnlineAugmentLayer(_Layer):
    """bottoms: data (N, C, H, W), label (N,); top: the augmented data (in place is fine)."""

    def setup(self, bottom, top) -> None:
        if len(bottom) != 2 or len(top) != 1:
            raise ValueError("OnlineAugmentLayer needs bottoms (data, label) and one top")
        self.augment = OnlineAugment.from_param_str(self.param_str)
        self.augment.check(tuple(bottom[0].data.shape))
        # forward passes so far: the batch index of the draws
        self.index = int(os.environ.get(FIRST_BATCH) or 0)

    def reshape(self, bottom, top) -> None:
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top) -> None:
        rng = batch_rng(self.augment.seed, self.index)
        top[0].data[...] = self.augment.apply(bottom[0].data, bottom[1].data, rng)
        self.index += 1

    def backward(self, top, propagate_down, bottom) -> None:
        pass  # the input images take no gradient
