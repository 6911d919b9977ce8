"""The ``upcall`` command: one sub-command per workflow step.

Each sub-command lives in its own module, which defines ``HELP`` (one line), ``configure(parser)``
and ``run(args) -> int``. Modules keep heavy imports (torch) inside functions so ``upcall --help``
stays fast.

Whatever a command raises that a user can act on (an UpcallError, an OSError, an LMDB error, a
Ctrl-C, a closed output pipe) ends as one line ``upcall COMMAND: error: PATH: reason`` and a
non-zero exit status, from the first import on; ``UPCALL_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from upcall import __version__
from upcall.errors import Interrupted, UpcallError

# sub-command -> module; the order is the workflow's order, as ``upcall --help`` lists it.
COMMANDS: dict[str, str] = {
    "synth": "upcall.audio.synth",
    "synth-recording": "upcall.audio.recording",
    "spectrograms": "upcall.data.render",
    "lists": "upcall.data.lists",
    "augment": "upcall.data.augment",
    "lmdb": "upcall.data.dataset",
    "explore": "upcall.data.explore",
    "nets": "upcall.model.nets",
    "train": "upcall.workflows.train",
    "baseline": "upcall.classical.baseline",
    "classify": "upcall.results.classify",
    "detect": "upcall.detect.run",
    "evaluate": "upcall.detect.evaluate",
    "report": "upcall.results.report",
    "export": "upcall.export.command",
    "sweep": "upcall.workflows.sweep",
    "search": "upcall.workflows.search",
    "caffe": "upcall.engines.caffe.root",
    "digits": "upcall.digits.cli",
    "fit": "upcall.workflows.fit",
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
    command = argv[0] if argv and argv[0] in COMMANDS else None
    try:
        try:
            # Inside the try: importing the command's module (torch, scipy) takes a moment, and
            # a Ctrl-C then must be one line too.
            args = build_parser(command).parse_args(argv)
            code = int(args._run(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not as a warning at exit
            return code
        except BaseException as e:
            code = _failed(e, f"upcall {command}" if command else "upcall")
            if code is None:
                raise
            return code
    except KeyboardInterrupt:  # a second Ctrl-C while reporting the first
        return 130


def _failed(e: BaseException, prog: str) -> int | None:
    """Report ``e`` on one line and return the exit status; None for what is not ours to report
    (SystemExit from argparse, programming errors: those keep their traceback)."""
    if isinstance(e, BrokenPipeError) and _stdout_closed():
        # The reader of our output went away (`upcall train JOB | head -1`): stop quietly, as
        # the Python docs recommend, so the final flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by a closed pipe
    lmdb = sys.modules.get("lmdb")  # not imported here: an lmdb.Error means lmdb was loaded
    if isinstance(e, Interrupted):  # stopped on Ctrl-C with a snapshot: say (once) how to go on
        message, code = str(e), 130
    elif _interrupted(e):
        message, code = "interrupted", 130
    elif isinstance(e, UpcallError):
        message, code = f"error: {e}", 1
    elif isinstance(e, OSError):
        message, code = f"error: {describe_os_error(e)}", 1
    elif lmdb is not None and isinstance(e, lmdb.Error):
        message, code = f"error: LMDB: {e}", 1
    else:
        return None
    if os.environ.get("UPCALL_DEBUG") == "1":
        import traceback

        traceback.print_exception(e)
    print(f"{prog}: {message}", file=sys.stderr, flush=True)
    return code


def _interrupted(e: BaseException) -> bool:
    """A Ctrl-C, or an error raised while one was being handled: a Ctrl-C in the middle of an
    import (scipy's, say) can leave a half-made module whose next use fails another way."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def describe_os_error(e: OSError) -> str:
    """``PATH: reason`` (``PATH -> PATH2: reason`` for a rename) of an OSError."""
    reason = e.strerror or str(e)
    paths = [os.fsdecode(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def _stdout_closed() -> bool:
    """Whether our stdout is a pipe whose reader has gone (POLLERR), so EPIPE was about it."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True  # no way to tell: a closed stdout is by far the likeliest


if __name__ == "__main__":
    sys.exit(main())
