"""``upcall digits serve``: the command line of upcall's DIGITS-compatible server.

``upcall digits`` (:mod:`upcall.digits.cli`, the client) names this module in its table of
sub-commands kept elsewhere, so the client package never imports the server.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from upcall.engines import DEFAULT_ENGINE, ENGINES

HELP = "run upcall's DIGITS-compatible server"
# the engines that train on this machine (the digits engine would hand the job to another server)
LOCAL_ENGINES = tuple(name for name in sorted(ENGINES) if name != "digits")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000, DIGITS's)")
    parser.add_argument(
        "--jobs-dir",
        type=Path,
        default=Path("digits-jobs"),
        metavar="DIR",
        help="the folder of the server's jobs, one folder each; kept across restarts "
        "(default ./digits-jobs)",
    )
    parser.add_argument(
        "--engine",
        default=DEFAULT_ENGINE,
        choices=LOCAL_ENGINES,
        help=f"the engine that trains (default {DEFAULT_ENGINE})",
    )
    parser.add_argument(
        "--data-root",
        dest="data_roots",
        action="append",
        type=Path,
        metavar="DIR",
        help="a folder whose files requests may name (server paths in lists, textfile_local_*, "
        "image_path); repeatable; default: the folder the server is started in",
    )


def run(args: argparse.Namespace) -> int:
    from upcall.digits_server.app import serve  # flask: only the server needs it

    serve(args.host, args.port, args.jobs_dir, engine=args.engine, data_roots=args.data_roots)
    return 0
