"""The digits engine's registration: its options (``--digits-url`` ...); how it starts is
``start.py``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from upcall.engines.base import EngineOptions


@dataclass(frozen=True)
class Options(EngineOptions):
    """Where the DIGITS server is and how to use it; ``gpu`` is DIGITS's ``select_gpu``."""

    # e.g. http://127.0.0.1:5000; required to train
    url: str | None = field(default=None, metadata={"flag": "--digits-url"})
    # DIGITS's login: a lowercase name, no password
    username: str = field(default="upcall", metadata={"flag": "--digits-user"})
    # name the lists as server paths (the server shares this file system) instead of uploading
    local_paths: bool = field(default=False, metadata={"flag": "--digits-local-paths"})
    poll: float = 2.0  # seconds between status requests while a job trains

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--digits-url",
            dest="url",
            metavar="URL",
            help="the DIGITS server, e.g. http://127.0.0.1:5000",
        )
        group.add_argument(
            "--digits-user",
            dest="username",
            default="upcall",
            metavar="NAME",
            help="DIGITS login name (default upcall)",
        )
        group.add_argument(
            "--digits-local-paths",
            dest="local_paths",
            action="store_true",
            help="give DIGITS the lists as server paths instead of uploading them",
        )
