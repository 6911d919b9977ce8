"""The top-level scripts' way in (``preprocess-aiff.py``, ``scripts/run_sweep.py``).

They keep the tutorial's names and usage and run an ``upcall`` command. Run by a Python that
lacks upcall's packages (the system's ``python3`` rather than the virtualenv's), they say so in
one line and how to fix it, instead of a ModuleNotFoundError traceback. Standard library only,
as :mod:`upcall.cli`'s own imports are, so that this much works in any Python.
"""

from __future__ import annotations

import sys


def run(command: str, argv: list[str], *, script: str) -> int:
    """``upcall COMMAND ARGV...`` as the program; exit status 1 with one line when a package
    upcall needs is missing from this Python."""
    try:
        from upcall.cli import main

        return main([command, *argv], program=True)
    except ModuleNotFoundError as e:
        if (e.name or "").partition(".")[0] == "upcall":
            raise  # upcall's own module: a broken checkout, not a missing environment
        print(
            f"{script}: this Python ({sys.executable}) lacks upcall's packages (no module "
            f"{e.name!r}): run `make venv`, then `.venv/bin/python {script} ...`",
            file=sys.stderr,
        )
        return 1
