"""The ``upcall`` command: one sub-command per workflow step.

Each sub-command lives in its own module, which defines ``HELP`` (one line), ``configure(parser)``
and ``run(args) -> int``. Modules keep heavy imports (torch) inside functions so ``upcall --help``
stays fast.

Whatever a command raises that a user can act on (an UpcallError, an OSError, an LMDB error, a
Ctrl-C, a closed output pipe) ends as one line ``upcall COMMAND: error: PATH: reason`` and a
non-zero exit status, from the first import on; ``UPCALL_DEBUG=1`` adds the traceback.

Interrupts: SIGINT (Ctrl-C) and SIGTERM (``timeout``, ``kill``, systemd) stop a command the same
way: it cleans up (finally blocks, pools terminated, a training snapshot), prints one line
(``upcall COMMAND: interrupted``, or how to go on), and then dies by that same signal, as shells
and supervisors expect of a program a signal stopped (a script's loop stops on it, bash shows
130 or 143, systemd counts SIGTERM as a clean stop). Called from Python with ``argv``,
:func:`main` returns 128 + the signal's number instead. Only this module's own imports come
before that handling: they are kept to the standard library's lightest modules.
"""

from __future__ import annotations

# Light imports only (a Ctrl-C while they load is Python's own, a traceback): the rest are
# imported inside main(), where an interrupt is ours.
import os
import signal
import sys

from upcall import __version__

# sub-command -> module; the order is the workflow's order, as ``upcall --help`` lists it.
COMMANDS: dict[str, str] = {
    "synth": "upcall.audio.synth",
    "synth-recording": "upcall.audio.recording",
    "clips": "upcall.audio.cutclips",
    "spectrograms": "upcall.data.render",
    "lists": "upcall.data.lists",
    "augment": "upcall.data.augment",
    "lmdb": "upcall.data.dataset",
    "explore": "upcall.data.explore",
    "nets": "upcall.job.nets",
    "train": "upcall.workflows.train",
    "baseline": "upcall.classical.baseline",
    "classify": "upcall.inference.classify",
    "detect": "upcall.detect.run",
    "evaluate": "upcall.detect.evaluate",
    "presence": "upcall.survey.presence",
    "review": "upcall.review.command",
    "report": "upcall.reports.report",
    "export": "upcall.export.command",
    "sweep": "upcall.workflows.sweep",
    "search": "upcall.workflows.search",
    "caffe": "upcall.engines.caffe.root",
    "digits": "upcall.digits.cli",
    "fit": "upcall.workflows.fit",
    "demo": "upcall.workflows.demo",
}


def build_parser(only: str | None = None):
    """The parser; with ``only``, the other sub-commands are bare names (their modules unimported).

    Importing a command's module costs time (scipy, torch), so ``upcall train`` imports just
    ``upcall.workflows.train`` while ``upcall --help`` still imports and lists every command.
    """
    import argparse
    import importlib

    from upcall.helpformat import DefaultsFormatter, show_defaults

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
        p = sub.add_parser(
            name, help=module.HELP, description=module.HELP, formatter_class=DefaultsFormatter
        )
        module.configure(p)
        show_defaults(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None, *, program: bool | None = None) -> int:
    """Run one command; its exit status. As the ``program`` (default: when ``argv`` is None, as
    for the ``upcall`` script and ``python -m upcall``; the thin doors such as
    ``scripts/run_sweep.py`` say so), an interrupted run dies by its signal once done."""
    program = argv is None if program is None else program
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    prog = f"upcall {command}" if command else "upcall"
    stops = _Stops(program)
    try:
        try:
            stops.install()
            # Inside the try: importing the command's module (torch, scipy) takes a moment, and
            # a Ctrl-C then must be one line too.
            args = build_parser(command).parse_args(argv)
            code = int(args._run(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not as a warning at exit
            if stops.received:  # the command swallowed it (werkzeug's server does): still ours
                raise KeyboardInterrupt
        except BaseException as e:
            code = _failed(e, prog, stops.received)
            if code is None:
                raise
        stops.live = False  # done: a signal from here on changes nothing
    except KeyboardInterrupt:  # a signal while reporting an error
        stops.live = False
        code = 128 + stops.first
        _say(f"{prog}: interrupted")
    finally:
        stops.restore()
    if program and code == 128 + stops.first:  # interrupted (the run loop's own SIGINT handler
        die_by(stops.first)  # notes nothing here: its Interrupted is the sign)
    return code


class _Stops:
    """SIGINT and SIGTERM during one main() run.

    The first interrupts the command: KeyboardInterrupt, or, for SIGTERM, whatever SIGINT's
    handler does then (the run loop's: finish the iteration, snapshot). A second one while the
    first unwinds ends the program at once by it (the shell's "Ctrl-C again"); called from
    Python, it is only noted. Once the command is done (``live`` False) they are only noted, so
    nothing escapes main() as a traceback; the program then ignores them while Python exits.
    """

    def __init__(self, program: bool) -> None:
        self.program = program
        self.received: list[int] = []  # in order
        self.live = True
        self.previous: dict[int, object] = {}  # the handlers replaced

    @property
    def first(self) -> int:
        return self.received[0] if self.received else signal.SIGINT

    def install(self) -> None:
        if not _main_thread():
            return  # only the main thread may set handlers (main() called from a thread)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self.on_stop)

    def on_stop(self, signum: int, frame) -> None:
        self.received.append(signum)
        if not self.live:
            return
        if len(self.received) > 1:
            if self.program:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        if signum == signal.SIGTERM:
            current = signal.getsignal(signal.SIGINT)
            if current == signal.SIG_IGN:  # stopping already, waiting for workers: so be it
                return
            if callable(current) and current != self.on_stop:
                current(signal.SIGINT, frame)
                return
        raise KeyboardInterrupt

    def restore(self) -> None:
        """Put back the handlers replaced; as the program, ignore the signals while Python
        exits (die_by takes its signal's default action back)."""
        self.live = False
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_IGN if self.program else handler)


def die_by(signum: int) -> None:
    """End this process by ``signum``'s default action, once what Python runs at exit has run
    (atexit functions, streams flushed): how a program that a signal stopped tells its shell."""
    import atexit
    import gc

    gc.collect()  # closes generators left suspended by the interrupt (their pools, bars)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe or stream: nothing more to say there
    signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # not reached: the signal's default action ends the process


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _failed(e: BaseException, prog: str, stops: list[int]) -> int | None:
    """Report ``e`` on one line and return the exit status; None for what is not ours to report
    (SystemExit from argparse, programming errors: those keep their traceback). Whatever ends a
    run that a stop signal reached (``stops``) is that interrupt: a worker the same SIGTERM
    ended first breaks its pool, say, before the parent's handler runs."""
    from upcall.errors import Interrupted, UpcallError

    if isinstance(e, BrokenPipeError) and _stdout_closed():
        # The reader of our output went away (`upcall train JOB | head -1`): stop quietly, as
        # the Python docs recommend, so the final flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by a closed pipe
    lmdb = sys.modules.get("lmdb")  # not imported here: an lmdb.Error means lmdb was loaded
    stopped_by = stops[0] if stops else signal.SIGINT
    if isinstance(e, Interrupted):  # stopped on Ctrl-C with a snapshot: say (once) how to go on
        message, code = str(e), 128 + stopped_by
    elif _interrupted(e) or (stops and not isinstance(e, SystemExit)):
        name = "" if stopped_by == signal.SIGINT else f" ({signal.Signals(stopped_by).name})"
        message, code = f"interrupted{name}", 128 + stopped_by
    elif isinstance(e, UpcallError):
        message, code = f"error: {e}", 1
    elif isinstance(e, OSError):
        message, code = f"error: {describe_os_error(e)}", 1
    elif isinstance(e, RuntimeError) and str(e).startswith(_PATHLIB_LOOP):
        # Python 3.11's Path.resolve() raises this, not OSError(ELOOP), on a symlink loop
        looping = str(e)[len(_PATHLIB_LOOP) :].strip("'")
        message, code = f"error: {looping}: Too many levels of symbolic links", 1
    elif lmdb is not None and isinstance(e, lmdb.Error):
        message, code = f"error: LMDB: {e}", 1
    else:
        return None
    if os.environ.get("UPCALL_DEBUG") == "1":
        import traceback

        traceback.print_exception(e)
    _say(f"{prog}: {message}")
    return code


_PATHLIB_LOOP = "Symlink loop from "


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr closed: the exit status still tells


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
