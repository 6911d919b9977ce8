"""Training engines behind one interface (:class:`upcall.engines.base.Engine`).

An engine takes a job directory made by ``upcall nets`` (solver.prototxt, train_val.prototxt,
deploy.prototxt, config.json), trains it, and writes the job directory of ARCHITECTURE.md §6
through the shared run loop (:mod:`upcall.engines.loop`). Reports and classification read that
directory and never ask which engine made it.

Each engine registers its package here: its light ``options.py`` declares the options (a
dataclass deriving from :class:`EngineOptions`, with its command-line flags) and its ``start.py``
has ``create(options) -> Engine``, imported only when the engine is made, so ``upcall --help``
and ``--engine caffe`` do not import torch (and the engine module imports its options, never
the reverse).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from pathlib import Path
from types import ModuleType

from upcall.engines.base import Engine, EngineOptions, JobStatus, local_status
from upcall.errors import UpcallError

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "Engine",
    "EngineOptions",
    "JobStatus",
    "add_engine_arguments",
    "get_engine",
    "local_status",
    "options_from_args",
]

# name -> package: ``.options`` declares ``Options`` (an EngineOptions dataclass), ``.start``
# has ``create(options)``
ENGINES: dict[str, str] = {
    "torch": "upcall.engines.torch",
    "caffe": "upcall.engines.caffe",
    "digits": "upcall.engines.digits",  # a DIGITS server trains it (--digits-url)
}
DEFAULT_ENGINE = "torch"


def declaration(name: str) -> ModuleType:
    """The module registered for engine ``name`` (UpcallError naming the known ones otherwise)."""
    if name not in ENGINES:
        raise UpcallError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}")
    return importlib.import_module(f"{ENGINES[name]}.options")


def get_engine(name: str, options: EngineOptions | None = None, **fields: object) -> Engine:
    """The engine ``name`` with ``options`` (or its options made from ``fields``: gpu=0 ...)."""
    module = declaration(name)
    if options is None:
        options = module.Options(**fields)
    elif not isinstance(options, module.Options):
        raise TypeError(f"engine {name!r} takes {module.Options.__name__}, not {options!r}")
    try:
        return importlib.import_module(f"{ENGINES[name]}.start").create(options)
    except ModuleNotFoundError as e:
        raise UpcallError(f"engine {name!r} cannot run in this build: {e.name} is missing") from e


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine``, the common ``--gpu`` / ``--threads`` / ``--tensorboard``, and each engine's
    own flags (``train``, ``sweep``, ``search`` and ``fit`` all take them from here)."""
    from upcall import cliargs

    parser.add_argument(
        "--engine",
        default=DEFAULT_ENGINE,
        choices=sorted(ENGINES),
        help=f"training engine (default {DEFAULT_ENGINE}); torch: embedded PyTorch, "
        "caffe: real Caffe, digits: a DIGITS server",
    )
    cliargs.add_gpu(parser, "train on CUDA device N")
    cliargs.add_threads(parser, "for training")
    parser.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help="also write the training metrics (metrics.jsonl) as TensorBoard event files "
        "under DIR/<job name>/ (needs the tensorboard package)",
    )
    for name in ENGINES:
        options = declaration(name).Options
        if _own_fields(options):
            options.add_arguments(parser.add_argument_group(f"with --engine {name}"))


def options_from_args(args: argparse.Namespace) -> EngineOptions:
    """The chosen engine's options from parsed flags; another engine's flag is a usage error."""
    options = declaration(args.engine).Options
    mine = {f.name for f in dataclasses.fields(options)}
    for name in ENGINES:
        for field in _own_fields(declaration(name).Options):
            if field.name not in mine and getattr(args, field.name, None) not in (
                None,
                field.default,
            ):
                flag = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
                raise UpcallError(f"{flag} is an option of --engine {name}, not {args.engine}")
    return options(**{name: getattr(args, name) for name in mine if hasattr(args, name)})


def _own_fields(options: type[EngineOptions]) -> list[dataclasses.Field]:
    common = {f.name for f in dataclasses.fields(EngineOptions)}
    return [f for f in dataclasses.fields(options) if f.name not in common]
