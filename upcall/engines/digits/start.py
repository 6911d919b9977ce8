"""How the digits engine starts (its registration, :mod:`upcall.engines.digits.options`, is light)."""

from __future__ import annotations

from upcall.engines.base import Engine
from upcall.engines.digits.engine import DigitsEngine
from upcall.engines.digits.options import Options


def create(options: Options) -> Engine:
    return DigitsEngine(options)
