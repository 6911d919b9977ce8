"""The networks upcall knows by name: registry name → builder of a DIGITS-style network.

Each builder returns a NetParameter in DIGITS's "standard network" form: Data layers named
train-data / val-data with stage rules, classifier width unset. :mod:`upcall.network.zoo.prepare`
turns one into train_val.prototxt and deploy.prototxt for a dataset, as DIGITS does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from upcall.errors import UpcallError
from upcall.network.zoo.alexnet import alexnet
from upcall.network.zoo.googlenet import googlenet
from upcall.network.zoo.whalenet import whalenet
from upcall.proto import caffe_pb2

__all__ = ["NETWORKS", "Network", "get"]


@dataclass(frozen=True)
class Network:
    name: str
    build: Callable[[], caffe_pb2.NetParameter]
    description: str
    # Designed for the native spectrogram: squashed (e.g. 256×256) datasets are refused, because
    # the stretched image no longer matches the receptive fields and costs ~17× more compute.
    native_only: bool = False
    options: tuple[tuple[str, object], ...] = ()  # builder keyword arguments, for config.json


def _whalenet(name: str, description: str, **options) -> Network:
    return Network(
        name,
        functools.partial(whalenet, **options),
        description,
        native_only=True,
        options=tuple(sorted(options.items())),
    )


NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network("alexnet", alexnet, "AlexNet as in DIGITS 3 (crop 227, batch 100/100)"),
        Network("googlenet", googlenet, "GoogLeNet as in DIGITS (crop 224, batch 32/16)"),
        _whalenet(
            "whalenet", "WhaleNet for 129×30 spectrograms, width 16, 4 blocks", width=16, blocks=4
        ),
        _whalenet("whalenet-small", "WhaleNet, width 8, 3 blocks (fastest)", width=8, blocks=3),
        _whalenet("whalenet-wide", "WhaleNet, width 32, 4 blocks", width=32, blocks=4),
    )
}


def get(name: str) -> Network:
    """The registered network ``name``; UpcallError listing the known names otherwise."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise UpcallError(
            f"unknown network {name!r}; known: {', '.join(NETWORKS)} (or a .prototxt path)"
        ) from None
