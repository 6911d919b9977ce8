"""Fixtures shared by every test module: a seeded RNG and real Caffe when it is installed."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """upcall's user cache folder (cut ONNX graphs, jobs' ONNX exports) in a fresh folder for
    the session (the commands the tests start inherit it): never the user's, whose entries
    another version of the code may have made."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def caffe():
    """The ``upcall.engines.caffe.root`` module when real Caffe can run; skips otherwise.

    With ``UPCALL_REQUIRE_CAFFE=1`` (``make test`` sets it, after installing Caffe) a missing
    Caffe fails the test instead, so the real-Caffe checks can never be skipped silently there.
    """
    from upcall.engines.caffe import root as caffe_module
    from upcall.errors import UpcallError

    try:
        caffe_module.require_caffe()
    except UpcallError as e:
        if os.environ.get("UPCALL_REQUIRE_CAFFE") == "1":
            pytest.fail(f"UPCALL_REQUIRE_CAFFE=1 but {e}")
        pytest.skip(str(e))
    return caffe_module


@pytest.fixture(scope="session")
def tiny_job(tmp_path_factory):
    """test_train's tiny network trained for 6 iterations on the torch engine; shared by the
    export and detection tests, which only read it (detection adds its cached ONNX export,
    JOB/.cache)."""
    from tests.engines.test_train import make_job
    from upcall.engines import get_engine

    job = make_job(tmp_path_factory.mktemp("tiny-job"), max_iter=6)
    get_engine("torch", threads=1).train(job)
    return job


@pytest.fixture(scope="session")
def easy_recording(tmp_path_factory):
    """Two minutes of easy synthetic recording (rec.wav) with its truth table beside it."""
    from upcall.audio.recording import RecordingSettings, write_recording

    out = tmp_path_factory.mktemp("rec") / "rec.wav"
    write_recording(out, RecordingSettings(minutes=2.0, seed=3, difficulty="easy"))
    return out
