"""Fixtures shared by every test module: a seeded RNG and real Caffe when it is installed."""

from __future__ import annotations

import os

import numpy as np
import pytest


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
