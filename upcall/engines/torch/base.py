"""The base of every Caffe layer module: the build context and the blob bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from upcall.engines.torch.fillers import fill
from upcall.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


@dataclass(frozen=True)
class BuildContext:
    phase: int  # caffe_pb2.TRAIN or TEST
    generator: torch.Generator  # every filler draws from it, in file order
    # what a layer's relative file path (InfogainLoss's source) resolves against: the job
    # directory, as Caffe runs there; None: the current directory
    base: Path | None = None


class Layer(nn.Module):
    """A Caffe layer; ``blob_names`` are its blobs (parameters or buffers) in Caffe's order.

    ``forward(*bottoms)`` returns one tensor per top (a tuple when the layer has several tops).
    """

    blob_names: tuple[str, ...] = ()

    def blobs(self) -> list[torch.Tensor]:
        return [getattr(self, n) for n in self.blob_names]


def make_param(lp, shape, filler, ctx: BuildContext, what: str) -> nn.Parameter:
    """A learnable blob filled as Caffe would; ``what`` names it in errors ("weight")."""
    data = fill(tuple(shape), filler, generator=ctx.generator, where=f"layer '{lp.name}' {what}")
    return nn.Parameter(data)
