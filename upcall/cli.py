"""The ``upcall`` command: one sub-command per workflow step.

Each sub-command lives in its own module, which defines ``HELP`` (one line), ``configure(parser)``
and ``run(args) -> int``. Modules keep heavy imports (torch) inside functions so ``upcall --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from upcall import __version__
from upcall.errors import Interrupted, UpcallError

# sub-command -> module; the order is the workflow's order, as ``upcall --help`` lists it.
COMMANDS: dict[str, str] = {
    "synth": "upcall.audio.synth",
    "synth-recording": "upcall.audio.recording",
    "spectrograms": "upcall.data.render",
    "lists": "upcall.data.lists",
    "lmdb": "upcall.data.dataset",
    "explore": "upcall.data.explore",
    "nets": "upcall.model.nets",
    "train": "upcall.workflows.train",
    "classify": "upcall.results.classify",
    "report": "upcall.results.report",
    "sweep": "upcall.workflows.sweep",
    "caffe": "upcall.engines.caffe.root",
    "demo": "upcall.workflows.demo",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, the other sub-commands are bare names (their modules unimported).

    Importing a command's module costs time (scipy, torch), so ``upcall train`` imports just
    ``upcall.workflows.train`` while ``upcall --help`` still imports and lists every command.
    """
    parser = argparse.ArgumentParser(
        prog="upcall",
        description="Find North Atlantic right whale up-calls with spectrogram CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"upcall {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(chosen).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except Interrupted as e:  # stopped on Ctrl-C with a snapshot: say (once) how to go on
        print(f"upcall {args.command}: {e}", file=sys.stderr)
        return 130
    except UpcallError as e:
        print(f"upcall {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"upcall {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
