"""A network for a job: a registry name with builder keywords, or a DIGITS-style prototxt path.

``upcall nets --networks`` and a recipe's ``network`` name one of the two; ``--net-param`` and a
recipe's ``network_params`` give a registry network's builder keywords (width, blocks, ...).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from upcall.errors import UpcallError
from upcall.model.networks import NETWORKS, Network, get
from upcall.proto import caffe_pb2, read_text


def build_network(n: Network, params: Mapping[str, object]) -> caffe_pb2.NetParameter:
    """Registry network ``n`` with builder keywords ``params`` (``--net-param``) over its own."""
    if not params:
        return n.build()
    known = [
        name
        for name, p in inspect.signature(n.build).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = [name for name in params if name not in known]
    if unknown:
        raise UpcallError(
            f"network {n.name} has no parameter {unknown[0]!r}; its parameters: {', '.join(known)}"
        )
    try:
        return functools.partial(n.build, **params)()
    except (TypeError, ValueError) as e:  # a value the builder cannot use
        raise UpcallError(f"network {n.name}: bad parameters {dict(params)}: {e}") from None


def load_network(
    spec: str, params: Mapping[str, object] | None = None
) -> tuple[str, caffe_pb2.NetParameter, dict]:
    """``(name, DIGITS-style network, how it was made)`` for a registry name or a prototxt path.

    ``params`` override a registry network's builder keywords (width, blocks, ...). A
    prototxt's job name is its ``name:`` when that is a plain word, else its file stem.
    """
    params = dict(params or {})
    if spec in NETWORKS or not (spec.endswith(".prototxt") or Path(spec).is_file()):
        n = get(spec)
        return (
            n.name,
            build_network(n, params),
            {
                "registry": n.name,
                "options": {**dict(n.options), **params},
                "native_only": n.native_only,
            },
        )
    if params:
        raise UpcallError(f"{spec}: network parameters apply to registry networks, not prototxts")
    path = Path(spec).resolve()
    net = read_text(path, caffe_pb2.NetParameter())
    name = net.name if re.fullmatch(r"[\w.-]+", net.name) else path.stem
    return name.lower(), net, {"prototxt": str(path)}


def parse_net_params(items: Sequence[str]) -> dict[str, object]:
    """``--net-param`` values ``KEY=VALUE`` → {key: value}; a value that is not JSON is text."""
    params: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UpcallError(f"--net-param must be KEY=VALUE (e.g. width=32), not {item!r}")
        try:
            params[key.strip()] = json.loads(text)
        except ValueError:
            params[key.strip()] = text  # e.g. global_pool=AVE
    return params
