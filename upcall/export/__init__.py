"""``upcall export``: a trained job's deploy net and snapshot as a self-contained model.

``command.py`` (the CLI), ``info.py`` (the :class:`~upcall.inference.onnx.metadata.DeployInfo` of
a job), ``onnx.py`` (an ONNX model via the torch CaffeNet; torch imported there only) and
``caffe.py`` (a folder real Caffe loads); ``cached.py`` (a job's ONNX export made once and
cached for ``upcall detect``).
"""
