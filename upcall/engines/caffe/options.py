"""The caffe engine's registration: its options (``--caffe-bin``); how it starts is ``start.py``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from upcall.engines.base import EngineOptions


@dataclass(frozen=True)
class Options(EngineOptions):
    """Real Caffe's options: whose caffe binary runs the job."""

    # the user's own caffe binary (a CUDA build, say); None: UPCALL_CAFFE, else the bundled root
    caffe_bin: Path | None = None

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--caffe-bin",
            type=Path,
            metavar="PATH",
            help="your own caffe binary (as UPCALL_CAFFE does; default: the bundled Caffe)",
        )
