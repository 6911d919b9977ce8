"""How the caffe engine starts (its registration, :mod:`upcall.engines.caffe.options`, is light)."""

from __future__ import annotations

from upcall.engines.base import Engine
from upcall.engines.caffe.engine import CaffeEngine
from upcall.engines.caffe.options import Options


def create(options: Options) -> Engine:
    return CaffeEngine(options)
