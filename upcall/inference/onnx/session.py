"""ONNX Runtime sessions of an exported model or of a graph cut from it (torch-free)."""

from __future__ import annotations

from pathlib import Path

from upcall.errors import UpcallError


def session(path: Path, gpu: int | None, threads: int | None = None, model: bytes | None = None):
    """An InferenceSession of the model file ``path`` (or of ``model``, a graph cut from it)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UpcallError(
            f"{path}: running an ONNX model needs onnxruntime (pip install onnxruntime)"
        ) from None
    providers = ["CPUExecutionProvider"]
    if gpu is not None:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UpcallError(f"{path}: this onnxruntime has no CUDA provider; leave out the GPU")
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": gpu}))
    options = ort.SessionOptions()
    # idle pool threads sleep instead of spinning: detection reads and makes spectrograms in
    # another thread meanwhile, and the cores are often shared
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = False  # frees each map after use: ~80 MB lower peak
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # one graph at a time: a second pool only contends
    try:
        source = str(path) if model is None else model
        return ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for a bad file
        raise UpcallError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0]})") from None


def session_from_bytes(model: bytes, path: Path, threads: int | None):
    """A CPU session of a graph cut from the model at ``path`` (the fully convolutional pass)."""
    return session(path, None, threads, model=model)
