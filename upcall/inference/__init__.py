"""Inference: a trained model, whatever made it, as class probabilities for new inputs.

``load_model(path) -> Model`` (:mod:`.sources`, :mod:`.model`) is the one way in: ``classify``,
``detect``, ``export``, the DIGITS server and the report use only it. Underneath: what a model
takes (:mod:`.inputs`), class names and the positive class (:mod:`.labels`), models made
elsewhere (:mod:`.foreign`), and the backends of :class:`.predict.Predictor`: ``torch/`` (a
deploy net in PyTorch), ``onnx/`` (an exported model on ONNX Runtime, torch-free), ``caffe.py``
(real Caffe). ``classify.py`` is ``upcall classify``.
"""

from upcall.inference.model import Model
from upcall.inference.sources import load_model

__all__ = ["Model", "load_model"]
