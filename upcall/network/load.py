"""A network for a job: a registry name with builder keywords, or a DIGITS-style prototxt path.

``upcall nets --networks`` and a recipe's ``network`` name one of the two; ``--net-param`` and a
recipe's ``network_params`` give a registry network's builder keywords (width, blocks, ...).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from upcall.errors import UpcallError
from upcall.network.upgrade import read_net
from upcall.network.zoo import NETWORKS, Network, get
from upcall.proto import caffe_pb2


def build_network(n: Network, params: Mapping[str, object]) -> caffe_pb2.NetParameter:
    """Registry network ``n`` with builder keywords ``params`` (``--net-param``) over its own."""
    if not params:
        return n.build()
    defaults = {
        name: p.default
        for name, p in inspect.signature(n.build).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    for name, value in params.items():
        if name not in defaults:
            raise UpcallError(
                f"network {n.name} has no parameter {name!r}; its parameters: {', '.join(defaults)}"
            )
        _check_type(n.name, name, value, defaults[name])
    try:
        return functools.partial(n.build, **params)()
    except (TypeError, ValueError) as e:  # a value the builder cannot use
        raise UpcallError(f"network {n.name}: bad parameters {dict(params)}: {e}") from None


def _check_type(network: str, name: str, value: object, default: object) -> None:
    """UpcallError naming ``name`` when ``value`` is not of its default's kind (a builder given
    ``width="x"`` fails deep inside with a message that names no parameter)."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):  # widths, block counts, batch sizes: 0 builds nothing
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= min(default, 1)
        kind = "a whole number" + (" ≥ 1" if default >= 1 else "")
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok, kind = ok and math.isfinite(value), "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "text"
    else:
        return  # no default to go by: the builder checks it
    if not ok:
        raise UpcallError(
            f"network {network}: parameter {name} must be {kind} (default {default!r}), "
            f"not {value!r}"
        )


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
    net = read_net(path)  # an old-format net comes out in today's format
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
