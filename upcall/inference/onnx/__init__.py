"""ONNX Runtime inference of an exported model (``upcall export JOB --format onnx``), torch-free.

``metadata.py``: :class:`DeployInfo`, what a deployment needs beside the graph (input transform,
input size, spectrogram settings, class names); ``predict.py``: the ``onnx`` Predictor backend.
"""
