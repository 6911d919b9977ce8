"""Figures: the one place that picks matplotlib's file-only backend and saves PNGs atomically."""

from __future__ import annotations

import os
from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | os.PathLike, **savefig_args) -> None:
    """Write ``fig`` to ``path`` atomically as PNG, then close it."""
    from upcall.fsutil import atomic_path

    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", **savefig_args)
    finally:
        plt.close(fig)


def png_bytes(fig, **savefig_args) -> bytes:
    """``fig`` as PNG bytes (for a page that embeds its figures), then close it."""
    import io

    plt = pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", **savefig_args)
    finally:
        plt.close(fig)
    return buf.getvalue()
